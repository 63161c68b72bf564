//! Load and failover measurements against a real zone of `oned` processes on loopback (built
//! next to this binary, or `$ONEHA_ONED`). Results go in `docs/benchmarks.md`.
//!
//! - `oneha-bench write`: concurrent `one.user.allocate` calls for `--secs`: throughput and
//!   latency percentiles;
//! - `oneha-bench read`: concurrent `one.user.info` calls (local reads), or with `--leader-reads`
//!   linearizable ones through the leader;
//! - `oneha-bench failover`: kills the leader `--rounds` times while a client writes, and reports
//!   the time from the kill to the next acknowledged write.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cli::Client;
use testkit::zone::{allocate, Zone, FOLLOWER, LEADER};
use xmlrpc::Value;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Write,
    Read,
    Failover,
    /// The same write load against a 3-member etcd (Debian's etcd-server) on loopback, through
    /// its HTTP/JSON gateway: the anchor.
    EtcdWrite,
    /// etcd's failover, measured the same way.
    EtcdFailover,
}

#[derive(Clone, Copy, ValueEnum)]
enum Via {
    /// Every client talks to the leader.
    Leader,
    /// Clients are spread over every server (followers forward writes).
    All,
}

/// What `write` creates.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Object {
    /// `one.user.allocate`: includes an argon2id hash of the password on the leader.
    User,
    /// `one.template.allocate`: the replication path alone.
    Template,
}

#[derive(Parser)]
#[command(name = "oneha-bench", about = "OneHA load and failover measurements")]
struct Args {
    mode: Mode,
    #[arg(long, default_value_t = 3)]
    servers: usize,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 15)]
    secs: u64,
    #[arg(long, value_enum, default_value_t = Via::Leader)]
    via: Via,
    /// Reads with `X-OneHA-Read: leader` (linearizable).
    #[arg(long)]
    leader_reads: bool,
    /// Failover rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// What `write` creates.
    #[arg(long, value_enum, default_value_t = Object::User)]
    object: Object,
}

/// Per-attempt timeout of the failover client, the same for both systems: a client that gives
/// up quickly and retries, so the measure is the cluster's, not the client's patience.
const RETRY_TIMEOUT: Duration = Duration::from_millis(250);

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Runs `op(client, n)` from `clients` threads for `secs` and prints throughput and latency;
/// `op` returns whether the call succeeded.
fn drive(
    label: &str,
    clients: usize,
    secs: u64,
    op: Arc<dyn Fn(usize, u64) -> bool + Send + Sync>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, errors, latencies, op) =
                (stop.clone(), errors.clone(), latencies.clone(), op.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    if op(c, n) {
                        mine.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().expect("latency list").extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().expect("latency list").clone();
    lat.sort_unstable();
    println!(
        "{label}{} ops in {elapsed:.1}s = {:.0} ops/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; errors {}",
        lat.len(),
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        errors.load(Ordering::Relaxed)
    );
}

fn load(zone: &Zone, args: &Args) {
    let leader = zone.leader();
    let endpoints: Vec<String> = match args.via {
        Via::Leader => vec![zone.servers[leader].endpoint()],
        Via::All => zone.servers.iter().map(|s| s.endpoint()).collect(),
    };
    let session = zone.servers[0].session();
    let reader_id = allocate(&zone.servers[leader].client(), "bench-reader").unwrap_or(0);
    zone.wait_caught_up();
    let clients: Vec<Client> = (0..args.clients)
        .map(|c| {
            let client = Client::new(
                endpoints[c % endpoints.len()].clone(),
                session.clone(),
                Duration::from_secs(30),
            );
            if args.leader_reads {
                client.with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE)
            } else {
                client
            }
        })
        .collect();
    let write = matches!(args.mode, Mode::Write);
    let object = args.object;
    drive(
        "",
        args.clients,
        args.secs,
        Arc::new(move |c, n| {
            if write && object == Object::Template {
                let text = format!("NAME = \"b{c}-{n}\"\nCPU = 1\nMEMORY = 64");
                clients[c]
                    .call(wire::method::TEMPLATE_ALLOCATE, vec![Value::String(text)])
                    .is_ok()
            } else if write {
                allocate(&clients[c], &format!("b{c}-{n}")).is_ok()
            } else {
                clients[c]
                    .call(wire::method::USER_INFO, vec![Value::Int(reader_id as i32)])
                    .is_ok()
            }
        }),
    );
}

fn failover(zone: &mut Zone, rounds: usize) {
    let mut times = Vec::new();
    for r in 0..rounds {
        let leader = zone.leader();
        let others: Vec<usize> = (0..zone.servers.len()).filter(|&i| i != leader).collect();
        let killed = Instant::now();
        zone.servers[leader].kill();
        let mut n = 0;
        let took = loop {
            n += 1;
            let via = others[n % others.len()];
            let client = zone.servers[via].client_with_timeout(RETRY_TIMEOUT);
            if allocate(&client, &format!("f{r}-{n}")).is_ok() {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no write for 60 s"
            );
        };
        println!(
            "round {r}: killed leader {leader}; next acknowledged write after {} ms",
            took.as_millis()
        );
        times.push(took.as_millis() as u64);
        zone.servers[leader].start();
        zone.wait_caught_up();
        zone.wait_until(Duration::from_secs(30), "every server is a voter", || {
            zone.up().iter().all(|&i| {
                zone.servers[i]
                    .raft_status()
                    .is_some_and(|s| s.state == LEADER || s.state == FOLLOWER)
            })
        });
    }
    times.sort_unstable();
    println!(
        "failover over {rounds} rounds: min {} ms, median {} ms, max {} ms",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// A 3-member etcd cluster on loopback with etcd's default timing (heartbeat 100 ms, election
/// 1000 ms: the same as the OneHA zone the bench starts).
struct Etcd {
    members: Vec<(std::process::Child, u16)>,
    names: Vec<String>,
    _dir: tempfile::TempDir,
    _leases: Vec<testkit::zone::PortLease>,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let leases: Vec<_> = (0..6).map(|_| testkit::zone::lease_port()).collect();
        let ports: Vec<u16> = leases.iter().map(|l| l.port).collect();
        let names: Vec<String> = (0..3).map(|i| format!("e{i}")).collect();
        let cluster = (0..3)
            .map(|i| format!("e{i}=http://127.0.0.1:{}", ports[3 + i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members: Vec::new(),
            names,
            _dir: dir,
            _leases: leases,
        };
        for i in 0..3 {
            let child = etcd.spawn(i, ports[i], ports[3 + i], &cluster);
            etcd.members.push((child, ports[i]));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcd.put(0, "ready", "1") {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn spawn(&self, i: usize, client: u16, peer: u16, cluster: &str) -> std::process::Child {
        let data = self._dir.path().join(format!("e{i}"));
        std::process::Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd (apt-get install etcd-server)")
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.members[i].1)
    }

    fn put(&self, i: usize, key: &str, value: &str) -> bool {
        self.put_within(i, key, value, Duration::from_secs(5))
    }

    fn put_within(&self, i: usize, key: &str, value: &str, timeout: Duration) -> bool {
        use std::fmt::Write as _;
        let b64 = |s: &str| {
            const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for chunk in s.as_bytes().chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for k in 0..4 {
                    if k <= chunk.len() {
                        let _ = out.write_char(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        };
        ureq::AgentBuilder::new()
            .timeout(timeout)
            .build()
            .post(&self.url(i, "/v3/kv/put"))
            .send_string(&format!(
                r#"{{"key":"{}","value":"{}"}}"#,
                b64(key),
                b64(value)
            ))
            .is_ok()
    }

    /// The index of the member that says it leads.
    fn leader(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            let Ok(resp) = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(1))
                .build()
                .post(&self.url(i, "/v3/maintenance/status"))
                .send_string("{}")
            else {
                continue;
            };
            let body = resp.into_string().unwrap_or_default();
            let field = |name: &str| {
                body.split(&format!("\"{name}\":\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string)
            };
            if field("member_id").is_some() && field("member_id") == field("leader") {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for (c, _) in &mut self.members {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn etcd_write(args: &Args) {
    let etcd = Etcd::start();
    let leader = etcd.leader().unwrap_or(0);
    let via = args.via;
    drive(
        "etcd: ",
        args.clients,
        args.secs,
        Arc::new(move |c, n| {
            let member = match via {
                Via::Leader => leader,
                Via::All => c % 3,
            };
            etcd.put(member, &format!("b{c}-{n}"), "value")
        }),
    );
}

fn etcd_failover(rounds: usize) {
    let mut etcd = Etcd::start();
    let mut times = Vec::new();
    for r in 0..rounds {
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(l) = etcd.leader() {
                break l;
            }
            assert!(Instant::now() < deadline, "no etcd leader");
            std::thread::sleep(Duration::from_millis(50));
        };
        let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let killed = Instant::now();
        let _ = etcd.members[leader].0.kill();
        let _ = etcd.members[leader].0.wait();
        let mut n = 0;
        let took = loop {
            n += 1;
            if etcd.put_within(others[n % 2], &format!("f{r}-{n}"), "v", RETRY_TIMEOUT) {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no put for 60 s"
            );
        };
        println!(
            "etcd round {r}: killed member {leader}; next acknowledged put after {} ms",
            took.as_millis()
        );
        times.push(took.as_millis() as u64);
        // Restart the member on its data dir; it rejoins as a follower.
        let cluster = (0..3)
            .map(|i| format!("e{i}=http://127.0.0.1:{}", etcd._leases[3 + i].port))
            .collect::<Vec<_>>()
            .join(",");
        let port = etcd.members[leader].1;
        let child = etcd.spawn(leader, port, etcd._leases[3 + leader].port, &cluster);
        etcd.members[leader].0 = child;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcd.put(leader, "rejoined", "1") {
            assert!(Instant::now() < deadline, "etcd member did not rejoin");
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = &etcd.names;
    }
    times.sort_unstable();
    println!(
        "etcd failover over {rounds} rounds: min {} ms, median {} ms, max {} ms",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.mode {
        Mode::EtcdWrite => etcd_write(&args),
        Mode::EtcdFailover => etcd_failover(args.rounds),
        Mode::Write | Mode::Read => load(&Zone::bootstrap(args.servers), &args),
        Mode::Failover => failover(&mut Zone::bootstrap(args.servers), args.rounds),
    }
    ExitCode::SUCCESS
}
