//! Link proxies: one HTTP proxy in front of each server, registered in the zone as that server's
//! endpoint, so every server-to-server call (Raft RPCs and forwarded writes) passes through the
//! proxy of the server it is meant for. Each call names its sender (`x-oneha-source`), so a proxy
//! can drop exactly the calls of a cut link: the fault suite's network partitions.
//!
//! A call on a cut link gets no answer until the sender gives up, as with a partition that
//! drops packets; it is never delivered later. Clients of the API reach servers directly.
//!
//! A proxy can also be taken down while its server is dead ([`Network::down`]): its port then
//! refuses connections, as the host of a crashed `oned` does, which is what lets the servers'
//! fast failover see the crash (a proxy that accepts and answers 502 would hide it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// How long a call on a cut link is held before the proxy drops it; longer than any peer timeout.
const HOLD: Duration = Duration::from_secs(5);
/// Peer calls carry snapshot chunks of a few MiB.
const MAX_BODY: usize = 64 << 20;
use wire::header::SOURCE as SOURCE_HEADER;

/// The proxies of one zone and which links are cut. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Runtime,
    /// Directed links `(from, to)` that drop calls.
    cut: Mutex<BTreeSet<(u64, u64)>>,
    client: reqwest::Client,
    /// Each server's proxy: its address, and its accept loop while it is up.
    proxies: Mutex<BTreeMap<u64, Proxy>>,
}

struct Proxy {
    addr: SocketAddr,
    link: Link,
    serving: Option<tokio::task::AbortHandle>,
}

#[derive(Clone)]
struct Link {
    net: Network,
    /// The server behind this proxy.
    to: u64,
    upstream: String,
}

impl Network {
    pub fn new() -> Network {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("proxy HTTP client");
        Network {
            inner: Arc::new(Inner {
                runtime,
                cut: Mutex::new(BTreeSet::new()),
                client,
                proxies: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Starts the proxy of server `id`, which listens on 127.0.0.1:`port`; returns the `/RPC2`
    /// endpoint to register for it.
    pub fn add_server(&self, id: u64, port: u16) -> String {
        let listener = self
            .inner
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let link = Link {
            net: self.clone(),
            to: id,
            upstream: format!("http://127.0.0.1:{port}"),
        };
        let serving = self.serve(listener, link.clone());
        self.inner.proxies.lock().expect("proxies").insert(
            id,
            Proxy {
                addr,
                link,
                serving: Some(serving),
            },
        );
        format!("http://{addr}/RPC2")
    }

    fn serve(&self, listener: tokio::net::TcpListener, link: Link) -> tokio::task::AbortHandle {
        let app = Router::new().fallback(relay).with_state(link);
        self.inner
            .runtime
            .spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
            .abort_handle()
    }

    /// Closes server `id`'s proxy port, so new connections to it are refused (its server is
    /// dead). Connections already open stay, and get 502 from the dead server.
    pub fn down(&self, id: u64) {
        let mut proxies = self.inner.proxies.lock().expect("proxies");
        if let Some(task) = proxies.get_mut(&id).and_then(|p| p.serving.take()) {
            task.abort();
            // The listener is dropped when the aborted task is; wait until the port refuses.
            let addr = proxies[&id].addr;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(addr).is_ok() && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Opens server `id`'s proxy port again, on the same address.
    pub fn up(&self, id: u64) {
        let mut proxies = self.inner.proxies.lock().expect("proxies");
        let Some(p) = proxies.get_mut(&id) else {
            return;
        };
        if p.serving.is_some() {
            return;
        }
        let addr = p.addr;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match self
                .inner
                .runtime
                .block_on(tokio::net::TcpListener::bind(addr))
            {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("rebind proxy {addr}: {e}"),
            }
        };
        p.serving = Some(self.serve(listener, p.link.clone()));
    }

    /// Opens every proxy port that is down.
    pub fn up_all(&self) {
        let ids: Vec<u64> = self
            .inner
            .proxies
            .lock()
            .expect("proxies")
            .keys()
            .copied()
            .collect();
        for id in ids {
            self.up(id);
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&self, a: u64, b: u64) {
        let mut cut = self.inner.cut.lock().expect("cut set");
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Cuts every link between a server of `side` and one of `other`.
    pub fn partition(&self, side: &[u64], other: &[u64]) {
        for &a in side {
            for &b in other {
                self.cut(a, b);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner.cut.lock().expect("cut set").clear();
    }

    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.inner
            .cut
            .lock()
            .expect("cut set")
            .contains(&(from, to))
    }

    /// The cut links, for reports.
    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.inner
            .cut
            .lock()
            .expect("cut set")
            .iter()
            .copied()
            .collect()
    }
}

impl Default for Network {
    fn default() -> Network {
        Network::new()
    }
}

/// Waits while `from -> to` is cut, up to [`HOLD`]; true if the link is up.
async fn link_up(net: &Network, from: Option<u64>, to: u64) -> bool {
    let Some(from) = from else { return true };
    let start = tokio::time::Instant::now();
    while net.is_cut(from, to) {
        if start.elapsed() >= HOLD {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn relay(State(link): State<Link>, req: Request) -> Response {
    let from = req
        .headers()
        .get(SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The call must not reach the server while the link is cut; held calls are then dropped,
    // so the sender sees a timeout, as on a real partition.
    if from.is_some_and(|f| link.net.is_cut(f, link.to)) {
        let _ = link_up(&link.net, from, link.to).await;
        return (StatusCode::BAD_GATEWAY, "link cut").into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::BAD_REQUEST, "body").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let mut out = link
        .net
        .inner
        .client
        .request(parts.method, format!("{}{path}", link.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != HeaderName::from_static("host") && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let Ok(bytes) = answer.bytes().await else {
        return (StatusCode::BAD_GATEWAY, "answer").into_response();
    };
    // The answer travels back over the reverse link.
    if from.is_some_and(|f| link.net.is_cut(link.to, f)) {
        let _ = link_up(&link.net, Some(link.to), from.unwrap_or_default()).await;
        return (StatusCode::BAD_GATEWAY, "link cut").into_response();
    }
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
    }
    resp
}
