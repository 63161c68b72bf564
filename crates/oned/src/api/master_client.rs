//! The calls a federation slave makes to its master as oneadmin (`one.zone.updatedb`,
//! `one.market.allocatedb`, `one.marketapp.dropdb`...), as OpenNebula's `Client::client()`
//! does from a slave's pools, and the wait for their change to come back through the
//! federated log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xmlrpc::{MethodCall, Response, Value};

use super::{code, fail, Ctx, Failure};

/// How often a slave looks for the master's change to come back when no entry applied here
/// wakes it (a solo slave has no log to wait on).
const ARRIVAL_POLL: Duration = Duration::from_millis(50);

/// The largest answer read from another zone. Its calls answer ids, booleans and error
/// messages; a broken or hostile peer must not make this server buffer without end.
const MAX_PEER_ANSWER: usize = 1 << 20;

/// The master's `/RPC2` (`FEDERATION/MASTER_ONED`), reached with oneadmin's credentials.
#[derive(Clone)]
pub struct MasterClient {
    http: reqwest::Client,
    endpoint: String,
    one_auth: PathBuf,
    timeout: Duration,
}

impl MasterClient {
    pub fn new(
        http: reqwest::Client,
        config: &crate::config::Config,
        one_auth: PathBuf,
    ) -> MasterClient {
        MasterClient {
            http,
            endpoint: config.master_oned.clone(),
            one_auth,
            timeout: config.write_deadline(),
        }
    }

    pub fn of(ctx: &Ctx) -> MasterClient {
        MasterClient::new(ctx.http.clone(), &ctx.config, ctx.one_auth.clone())
    }

    /// Calls `method` with oneadmin's session and `params`: the master's value on success,
    /// otherwise why not (its own message when it answered).
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        let (user, password) = crate::credentials::load_or_create_one_auth(&self.one_auth)
            .map_err(|e| format!("reading oneadmin's credentials: {e}"))?;
        let mut all = vec![Value::String(format!("{user}:{password}"))];
        all.extend(params);
        let request = xmlrpc::write_call(&MethodCall {
            method: method.into(),
            params: all,
        });
        let sent = self.http.post(&self.endpoint).timeout(self.timeout);
        let mut values = post_call(sent, request).await?;
        if values.len() < 2 {
            return Err(format!("unexpected answer {values:?}"));
        }
        let value = values.swap_remove(1);
        if values.first().and_then(Value::as_bool) == Some(true) {
            return Ok(value);
        }
        Err(value.as_str().unwrap_or_default().to_string())
    }
}

/// Sends an XML-RPC `request` through `post` (its endpoint, timeout and any header set) to
/// another zone's `/RPC2`: the values of OpenNebula's answer array, or why there are none.
pub(crate) async fn post_call(
    post: reqwest::RequestBuilder,
    request: String,
) -> Result<Vec<Value>, String> {
    let mut response = post
        .header("content-type", "text/xml")
        .body(request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let too_large = || format!("the answer is larger than {MAX_PEER_ANSWER} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PEER_ANSWER as u64)
    {
        return Err(too_large());
    }
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if answer.len() + chunk.len() > MAX_PEER_ANSWER {
            return Err(too_large());
        }
        answer.extend_from_slice(&chunk);
    }
    match xmlrpc::parse_response(&answer).map_err(|e| e.to_string())? {
        Response::Success(Value::Array(values)) => Ok(values),
        Response::Success(other) => Err(format!("unexpected answer {other:?}")),
        Response::Fault { code, message } => Err(format!("fault {code}: {message}")),
    }
}

/// Waits until `here` holds on this server's database, which the master's federated log
/// brings; past the write deadline the error tells the operator what to check.
pub async fn until_here(
    ctx: &Ctx,
    what: &str,
    here: impl Fn(&sqlstore::Conn) -> Result<bool, sqlstore::SqlError> + Clone + Send + 'static,
) -> Result<(), Failure> {
    let deadline = Instant::now() + ctx.config.write_deadline();
    loop {
        // Taken before the read: an entry applied between the read and the wait still wakes it.
        let next = ctx.cluster.last_applied().map_or(1, |i| i + 1);
        if ctx.read(here.clone()).await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(
                code::ACTION,
                format!(
                    "The federation master took the change of {what} but it has not come back \
                     to this zone yet: check that the master can reach this zone's ENDPOINT \
                     (onezone show {} on the master)",
                    ctx.config.zone_id
                ),
            ));
        }
        // The change comes back as an entry of this zone's log (`one.zone.fedreplicate`):
        // woken by the next one applied here rather than a poll's period later.
        if ctx.cluster.raft().is_some() {
            let _ = ctx.cluster.wait_applied(next, ARRIVAL_POLL).await;
        } else {
            tokio::time::sleep(ARRIVAL_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A peer on loopback that answers one request with `head`, the XML-RPC answer `body` and
    /// `filler` spaces after it, then closes.
    async fn peer(head: &'static str, body: &'static str, filler: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = filler;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        format!("http://{addr}/RPC2")
    }

    const ANSWER: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><array>\
        <data><value><boolean>1</boolean></value><value><i4>7</i4></value></data></array>\
        </value></param></params></methodResponse>";

    async fn call(endpoint: &str) -> Result<Vec<Value>, String> {
        let http = reqwest::Client::new();
        post_call(http.post(endpoint), "<methodCall/>".into()).await
    }

    #[tokio::test]
    async fn a_small_answer_is_read() {
        let head = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
        let values = call(&peer(head, ANSWER, 0).await).await.unwrap();
        assert_eq!(values.get(1).and_then(Value::as_i64), Some(7));
    }

    #[tokio::test]
    async fn an_answer_beyond_the_cap_is_refused_whether_or_not_its_length_is_told() {
        let told = "HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n";
        let err = call(&peer(told, ANSWER, 5_000_000).await)
            .await
            .unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        let untold = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
        let err = call(&peer(untold, ANSWER, 5_000_000).await)
            .await
            .unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }
}
