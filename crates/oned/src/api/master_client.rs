//! The calls a federation slave makes to its master as oneadmin (`one.zone.updatedb`,
//! `one.market.allocatedb`, `one.marketapp.dropdb`...), as OpenNebula's `Client::client()`
//! does from a slave's pools, and the wait for their change to come back through the
//! federated log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xmlrpc::{MethodCall, Response, Value};

use super::{code, fail, Ctx, Failure};

/// How often a slave looks for the master's change to come back.
const ARRIVAL_POLL: Duration = Duration::from_millis(50);

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
    let answer = post
        .header("content-type", "text/xml")
        .body(request)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
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
        tokio::time::sleep(ARRIVAL_POLL).await;
    }
}
