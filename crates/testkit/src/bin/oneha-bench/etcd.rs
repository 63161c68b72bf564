//! The anchor: a 3-member etcd cluster (Debian's `etcd-server`) on loopback, driven through its
//! native gRPC API (`etcdserverpb.KV/Put`, `/Range`, `Auth/UserAdd`, `Maintenance/Status`) on
//! kept-alive HTTP/2 connections, as etcd's own clients do. The few messages are written by hand
//! (field numbers of etcd's `rpc.proto`, `kv.proto` and `auth.proto`), so no `protoc` is needed
//! to build.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use testkit::zone::{lease_port, PortLease};

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    #[prost(int64, tag = "4")]
    pub count: i64,
}

/// `authpb.UserAddOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

/// etcd bcrypt-hashes `password` (cost 10 by default) unless `options.no_password`. Etcd 3.4
/// takes it without auth enabled.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(message, optional, tag = "3")]
    pub options: Option<UserAddOptions>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserAddResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

/// A gRPC client of one member, on one HTTP/2 connection (cheap to clone: calls multiplex).
#[derive(Clone)]
pub struct Kv {
    grpc: tonic::client::Grpc<Channel>,
}

impl Kv {
    /// A lazily connecting client of the member at `port`; every call times out after `timeout`.
    pub fn new(port: u16, timeout: Duration) -> Kv {
        // The URL is made here from a port number: it always parses.
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("etcd endpoint")
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        Kv {
            grpc: tonic::client::Grpc::new(endpoint.connect_lazy()),
        }
    }

    async fn unary<Q, R>(&mut self, path: &'static str, message: Q) -> Result<R, String>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(|e| e.to_string())?;
        self.grpc
            .unary(
                tonic::Request::new(message),
                PathAndQuery::from_static(path),
                ProstCodec::default(),
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| e.to_string())
    }

    pub async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        self.unary::<_, PutResponse>("/etcdserverpb.KV/Put", PutRequest { key, value })
            .await
            .map(|_| ())
    }

    pub async fn range(&mut self, key: Vec<u8>, serializable: bool) -> Result<usize, String> {
        self.unary::<_, RangeResponse>("/etcdserverpb.KV/Range", RangeRequest { key, serializable })
            .await
            .map(|r| r.kvs.len())
    }

    /// Creates user `name` with a (bcrypt-hashed) password, as `etcdctl user add` does.
    pub async fn user_add(&mut self, name: String, password: String) -> Result<(), String> {
        let request = AuthUserAddRequest {
            name,
            password,
            // Sent, as `etcdctl user add` sends it.
            options: Some(UserAddOptions { no_password: false }),
        };
        self.unary::<_, AuthUserAddResponse>("/etcdserverpb.Auth/UserAdd", request)
            .await
            .map(|_| ())
    }

    /// Whether this member says it leads.
    pub async fn is_leader(&mut self) -> bool {
        match self
            .unary::<_, StatusResponse>("/etcdserverpb.Maintenance/Status", StatusRequest {})
            .await
        {
            Ok(s) => s
                .header
                .is_some_and(|h| h.member_id != 0 && h.member_id == s.leader),
            Err(_) => false,
        }
    }
}

/// A 3-member etcd cluster with the same timing as the OneHA zone the bench starts
/// (`--heartbeat-interval 100 --election-timeout 1000`; fsync on, etcd's default).
pub struct Etcd {
    members: Vec<Option<Child>>,
    client_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    dir: tempfile::TempDir,
    _leases: Vec<PortLease>,
}

impl Etcd {
    pub fn installed() -> bool {
        Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn start(rt: &tokio::runtime::Runtime) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let leases: Vec<PortLease> = (0..6).map(|_| lease_port()).collect();
        let ports: Vec<u16> = leases.iter().map(|l| l.port).collect();
        let mut etcd = Etcd {
            members: Vec::new(),
            client_ports: ports[..3].to_vec(),
            peer_ports: ports[3..].to_vec(),
            dir,
            _leases: leases,
        };
        for i in 0..3 {
            let child = etcd.spawn(i);
            etcd.members.push(Some(child));
        }
        etcd.wait_writable(rt, 0);
        etcd
    }

    fn spawn(&self, i: usize) -> Child {
        let cluster = (0..3)
            .map(|k| format!("e{k}=http://127.0.0.1:{}", self.peer_ports[k]))
            .collect::<Vec<_>>()
            .join(",");
        let client = format!("http://127.0.0.1:{}", self.client_ports[i]);
        let peer = format!("http://127.0.0.1:{}", self.peer_ports[i]);
        Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("e{i}")))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (apt-get install etcd-server)")
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn port(&self, i: usize) -> u16 {
        self.client_ports[i]
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].as_ref().map(Child::id)
    }

    pub fn pids(&self) -> Vec<u32> {
        (0..self.len()).filter_map(|i| self.pid(i)).collect()
    }

    /// Waits until a put through member `i` is acknowledged.
    pub fn wait_writable(&self, rt: &tokio::runtime::Runtime, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut kv = rt.block_on(async { Kv::new(self.port(i), Duration::from_secs(2)) });
        while rt
            .block_on(kv.put(b"ready".to_vec(), b"1".to_vec()))
            .is_err()
        {
            assert!(Instant::now() < deadline, "etcd member {i} takes no put");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a member that says it leads; its index.
    pub fn leader(&self, rt: &tokio::runtime::Runtime) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for i in 0..self.len() {
                if self.members[i].is_none() {
                    continue;
                }
                let mut kv = rt.block_on(async { Kv::new(self.port(i), Duration::from_secs(1)) });
                if rt.block_on(kv.is_leader()) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no etcd leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to member `i` and waits for its exit.
    pub fn signal_and_reap(&mut self, i: usize, signal: i32) {
        if let Some(mut child) = self.members[i].take() {
            crate::sys::signal(child.id(), signal);
            let _ = child.wait();
        }
    }

    /// Restarts member `i` on its data directory and waits until it takes a put.
    pub fn restart(&mut self, rt: &tokio::runtime::Runtime, i: usize) {
        let child = self.spawn(i);
        self.members[i] = Some(child);
        self.wait_writable(rt, i);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in self.members.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
