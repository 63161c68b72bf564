//! The load client's side of `/RPC2`: XML-RPC over HTTP/1.1 with hyper's low-level client,
//! either on one kept-alive connection per in-flight call (pyone, Terraform, Sunstone) or on a
//! new connection per call (OpenNebula's Ruby CLI).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpSocket;
use xmlrpc::{MethodCall, Response, Value};

/// How the client connects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Conn {
    /// A new TCP connection per call.
    New,
    /// One kept-alive connection, reopened after an error.
    Keep,
}

impl Conn {
    pub fn label(self) -> &'static str {
        match self {
            Conn::New => "OneHA new conn",
            Conn::Keep => "OneHA keep-alive",
        }
    }
}

/// The next source address of [`Rpc::connect`].
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// One client connection slot to one server.
pub struct Rpc {
    addr: SocketAddr,
    session: String,
    conn: Conn,
    leader_read: bool,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// From sending the last call to holding its whole answer, before parsing it.
    answered_in: Option<Duration>,
}

impl Rpc {
    pub fn new(port: u16, session: &str, conn: Conn, timeout: Duration) -> Rpc {
        Rpc {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: session.to_string(),
            conn,
            leader_read: false,
            timeout,
            sender: None,
            answered_in: None,
        }
    }

    /// How long the last call took until its whole answer arrived, not counting this client's
    /// parse of it (which, for an answer of megabytes, is no time the server spent).
    pub fn answered_in(&self) -> Option<Duration> {
        self.answered_in
    }

    /// Sends `X-OneHA-Read: leader` with every call (linearizable reads).
    pub fn leader_reads(mut self) -> Rpc {
        self.leader_read = true;
        self
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        // Each new connection leaves a TIME_WAIT socket on this side when it closes; thousands a
        // second from one source address exhaust the ephemeral ports within a run, so the
        // connections come from 127.0.0.2-127.0.0.251 in turn (all loopback).
        let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
        let source = SocketAddr::from(([127, 0, 0, 2 + (n % 250) as u8], 0));
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.bind(source).map_err(|e| e.to_string())?;
        let stream = socket.connect(self.addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// `method(session, params...)`: the value of a `[true, value, ...]` answer, or why not.
    pub async fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        match tokio::time::timeout(self.timeout, self.call_inner(method, params)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err("timed out".to_string())
            }
        }
    }

    async fn call_inner(&mut self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(self.session.clone()));
        all.extend(params);
        let body = xmlrpc::write_call(&MethodCall {
            method: method.to_string(),
            params: all,
        });
        let mut sender = match self.sender.take() {
            Some(s) if self.conn == Conn::Keep && !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = hyper::Request::post("/RPC2")
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "text/xml");
        if self.leader_read {
            request = request.header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let sent = std::time::Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let raw = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.answered_in = Some(sent.elapsed());
        if self.conn == Conn::Keep {
            self.sender = Some(sender);
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        match xmlrpc::parse_response(&raw) {
            Ok(Response::Fault { code, message }) => Err(format!("fault {code}: {message}")),
            Ok(success) => xmlrpc::one::result(success).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}
