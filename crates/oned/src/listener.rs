//! The accept loop, with a limit on everything a client controls: connections (in total and per
//! address), how long it may take to send a call's headers, how long a connection may stay idle,
//! and how many calls it may make on one connection. `/RPC2` calls in flight are limited in
//! `http.rs`, per address and in total.
//!
//! Past the connection limits, a few connections are still taken on a reserve that serves only
//! the calls of the other servers of the zone (`/raft`, `/oneha`): a flood of client connections
//! must never cut the heartbeats that keep the zone's leader. A connection past the reserve too
//! gets a short `503` and is closed at once.
//!
//! With TLS on, each connection's handshake runs in its own task, bounded by `TIMEOUT`, and its
//! calls learn whether the client presented a certificate the zone's CA signed ([`ClientCert`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::limits::Limits;
use crate::tls::ClientCert;

/// Connections taken past the limits, for the zone's own servers only.
const PEER_RESERVE: usize = 64;
/// Header and idle time of a connection on the peers' reserve.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Refusals being written at once; past this a connection is closed without a word.
const REFUSERS: usize = 64;

/// What a handler learns about the connection its call came on.
#[derive(Clone)]
pub struct ConnInfo {
    pub addr: SocketAddr,
    /// Taken on the peers' reserve: only `/raft` and `/oneha` calls are served.
    pub peer_only: bool,
    pub gate: Arc<Gate>,
}

/// Counts of what each address holds, against the limits.
pub struct Gate {
    limits: Limits,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    conns: usize,
    reserved: usize,
    refusing: usize,
    conns_by_addr: HashMap<IpAddr, usize>,
    requests: usize,
    requests_by_addr: HashMap<IpAddr, usize>,
}

enum Admission {
    Full(ConnGuard),
    PeerOnly(ConnGuard),
    Refuse(String, RefuseGuard),
    Drop,
}

/// Why a call was not taken: the message the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy(pub String);

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            state: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is one statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(self: &Arc<Gate>, ip: IpAddr) -> Admission {
        let mut c = self.counts();
        let from_addr = c.conns_by_addr.get(&ip).copied().unwrap_or(0);
        let over = if c.conns >= self.limits.max_conn {
            Some(format!(
                "too many connections to this server (MAX_CONN = {})",
                self.limits.max_conn
            ))
        } else if from_addr >= self.limits.max_conn_per_address {
            Some(format!(
                "too many connections from {ip} (MAX_CONN_PER_ADDRESS = {})",
                self.limits.max_conn_per_address
            ))
        } else {
            None
        };
        match over {
            None => {
                c.conns += 1;
                *c.conns_by_addr.entry(ip).or_insert(0) += 1;
                Admission::Full(ConnGuard {
                    gate: self.clone(),
                    ip,
                    reserved: false,
                })
            }
            Some(_) if c.reserved < PEER_RESERVE => {
                c.reserved += 1;
                Admission::PeerOnly(ConnGuard {
                    gate: self.clone(),
                    ip,
                    reserved: true,
                })
            }
            Some(why) if c.refusing < REFUSERS => {
                c.refusing += 1;
                Admission::Refuse(why, RefuseGuard(self.clone()))
            }
            Some(_) => Admission::Drop,
        }
    }

    /// Takes a slot for one `/RPC2` call from `ip`, or says why not.
    pub fn begin_request(self: &Arc<Gate>, ip: IpAddr) -> Result<RequestGuard, Busy> {
        let mut c = self.counts();
        if c.requests >= self.limits.max_requests {
            return Err(Busy(format!(
                "server busy: {} calls in progress (MAX_REQUESTS), try again later",
                self.limits.max_requests
            )));
        }
        let from_addr = c.requests_by_addr.get(&ip).copied().unwrap_or(0);
        if from_addr >= self.limits.max_requests_per_address {
            return Err(Busy(format!(
                "server busy: {} calls in progress from {ip} (MAX_REQUESTS_PER_ADDRESS), try again later",
                self.limits.max_requests_per_address
            )));
        }
        c.requests += 1;
        *c.requests_by_addr.entry(ip).or_insert(0) += 1;
        Ok(RequestGuard {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections held now (outside the reserve), for tests and status.
    pub fn connections(&self) -> usize {
        self.counts().conns
    }
}

fn release(map: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

pub struct ConnGuard {
    gate: Arc<Gate>,
    ip: IpAddr,
    reserved: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        if self.reserved {
            c.reserved = c.reserved.saturating_sub(1);
        } else {
            c.conns = c.conns.saturating_sub(1);
            release(&mut c.conns_by_addr, self.ip);
        }
    }
}

pub struct RefuseGuard(Arc<Gate>);

impl Drop for RefuseGuard {
    fn drop(&mut self) {
        let mut c = self.0.counts();
        c.refusing = c.refusing.saturating_sub(1);
    }
}

pub struct RequestGuard {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        c.requests = c.requests.saturating_sub(1);
        release(&mut c.requests_by_addr, self.ip);
    }
}

/// When a connection last moved a byte, and whether a call on it is being handled.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

struct CallInProgress(Arc<Activity>);

impl CallInProgress {
    fn new(a: Arc<Activity>) -> CallInProgress {
        a.busy.fetch_add(1, Ordering::Relaxed);
        CallInProgress(a)
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that records when it last made progress.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open calls finish (up to 5 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept): wait a little rather
                // than spin, and keep serving the connections already open.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.admit(addr.ip()) {
            Admission::Full(guard) => {
                let info = ConnInfo {
                    addr,
                    peer_only: false,
                    gate: gate.clone(),
                };
                tokio::spawn(serve_conn(
                    stream,
                    info,
                    app.clone(),
                    tls.clone(),
                    stop_rx.clone(),
                    guard,
                ));
            }
            Admission::PeerOnly(guard) => {
                debug!(%addr, "connection past the limits: taken for zone servers only");
                let info = ConnInfo {
                    addr,
                    peer_only: true,
                    gate: gate.clone(),
                };
                tokio::spawn(serve_conn(
                    stream,
                    info,
                    app.clone(),
                    tls.clone(),
                    stop_rx.clone(),
                    guard,
                ));
            }
            Admission::Refuse(why, guard) => {
                debug!(%addr, reason = %why, "connection refused");
                tokio::spawn(refuse(stream, why, guard));
            }
            Admission::Drop => drop(stream),
        }
    }
    stop_tx.send_replace(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Tells a client over the limits why, in a few bytes and at most a second, then closes.
async fn refuse(mut stream: TcpStream, why: String, _guard: RefuseGuard) {
    let body = format!("{why}\n");
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // The client over the limits went away or stopped reading: nothing for the server to do.
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "the refusal could not be written"),
        Err(_) => debug!("the refusal was not read within 1 s"),
    }
}

async fn serve_conn(
    stream: TcpStream,
    info: ConnInfo,
    app: Router,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    _guard: ConnGuard,
) {
    if let Err(e) = stream.set_nodelay(true) {
        // Only on a connection already reset: the call that follows fails on its own.
        debug!(client = %info.addr, error = %e, "TCP_NODELAY could not be set");
    }
    let activity = Arc::new(Activity::new());
    let tracked = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let Some(acceptor) = tls else {
        return drive(TokioIo::new(tracked), info, app, None, activity, stop).await;
    };
    let addr = info.addr;
    // The handshake counts as sending the head: TIMEOUT bounds it.
    let timeout = info.gate.limits().timeout;
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tracked)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            debug!(client = %addr, "connection closed during the TLS handshake");
            return;
        }
        Ok(Err(e)) => {
            // A peer whose certificate the CA did not sign ends here.
            warn!(client = %addr, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            debug!(client = %addr, "TLS handshake timed out (TIMEOUT)");
            return;
        }
    };
    let cert = ClientCert {
        verified: tls
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|c| !c.is_empty()),
    };
    drive(TokioIo::new(tls), info, app, Some(cert), activity, stop).await
}

/// Serves the calls of one connection until it ends, is idle too long, or the server stops.
async fn drive<I>(
    io: I,
    info: ConnInfo,
    app: Router,
    cert: Option<ClientCert>,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut limits = info.gate.limits().clone();
    if info.peer_only {
        // A reserve connection must show at once that it carries a zone server's call, and
        // gives its place back soon: a flood that fills the reserve has to keep refilling it.
        limits.timeout = limits.timeout.min(RESERVE_TIMEOUT);
        limits.keepalive_timeout = limits.keepalive_timeout.min(RESERVE_TIMEOUT);
    }
    let served = Arc::new(AtomicU64::new(0));
    let max_calls = limits.keepalive_max_conn;
    let svc_activity = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        if let Some(cert) = cert {
            req.extensions_mut().insert(cert);
        }
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let busy = CallInProgress::new(svc_activity.clone());
        let app = app.clone();
        async move {
            let res = app.oneshot(req.map(axum::body::Body::new)).await;
            drop(busy);
            let mut resp = match res {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if n >= max_calls {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let tick =
        (limits.keepalive_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep(tick) => {
                // Idle between calls, or a client that stopped reading its answer.
                if activity.busy.load(Ordering::Relaxed) == 0
                    && activity.idle_for() >= limits.keepalive_timeout
                {
                    debug!("closing an idle connection (KEEPALIVE_TIMEOUT)");
                    return;
                }
            }
        }
    }
}

/// Warns when the process may open fewer descriptors than the connection limits need: the
/// limits must be reached before the descriptors run out, or the API stops answering everyone.
pub fn check_fd_limit(limits: &Limits) {
    let text = match std::fs::read_to_string("/proc/self/limits") {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "cannot read /proc/self/limits: the descriptor limit is not checked");
            return;
        }
    };
    // "unlimited" parses as no number: nothing to warn about.
    let soft = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    let needed = limits.max_conn + PEER_RESERVE + REFUSERS + 256;
    match soft {
        Some(n) if n < needed => warn!(
            open_files = n,
            needed, "the descriptor limit is below what MAX_CONN needs: raise LimitNOFILE or lower MAX_CONN"
        ),
        _ => {}
    }
}
