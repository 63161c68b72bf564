//! Large pools and memory (issue 16): loads a zone of real `oned` processes on loopback with many
//! users and VMs through the API, then measures `one.vmpool.info` (short bodies) and
//! `one.vmpool.infoextended` (full bodies) on the leader, and every server's memory
//! (`VmRSS`, `VmHWM`, threads from `/proc/PID/status`).
//!
//! `oneha-pools --templates 100000 --vms 10000`; `--hold` keeps the zone up afterwards for `perf` or
//! `strace` (it prints each server's pid) until stdin closes. `oneha-pools etcd --keys 100000`
//! puts the same number of ~200-byte values into one etcd member and prints its memory.
//!
//! 100k users cost the leader 100k argon2id hashes (about 40 a second on 2 cores), and
//! `one.user.allocate` takes only the `core` driver: so the default load is 100k VM templates of
//! about 200 bytes each instead (`--templates`), and `--users` adds real users.

use std::io::Read;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cli::Client;
use testkit::zone::Zone;
use xmlrpc::Value;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A OneHA zone.
    Oned,
    /// One etcd member (Debian's etcd-server), loaded through its HTTP/JSON gateway.
    Etcd,
}

#[derive(Parser)]
#[command(name = "oneha-pools", about = "OneHA large pools and memory")]
struct Args {
    #[arg(value_enum, default_value_t = Mode::Oned)]
    mode: Mode,
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Users (`core` driver: each costs the leader an argon2id hash, ~25 ms of a core).
    #[arg(long, default_value_t = 0)]
    users: u64,
    /// VM templates of ~200 bytes, the stand-in for users when loading 100k objects quickly.
    #[arg(long, default_value_t = 100_000)]
    templates: u64,
    #[arg(long, default_value_t = 10_000)]
    vms: u64,
    /// Dummy hosts the scheduler deploys the VMs on (each holds 800 of them); 0 leaves them
    /// PENDING, without placement or monitoring records.
    #[arg(long, default_value_t = 13)]
    hosts: u64,
    /// etcd keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Pool calls timed for each median.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Keep the zone up after measuring, until stdin closes.
    #[arg(long)]
    hold: bool,
}

/// `VmRSS`, `VmHWM` (KiB) and `Threads` of `pid`.
fn memory(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

fn print_memory(label: &str, pid: u32) {
    let (rss, hwm, threads) = memory(pid);
    println!(
        "{label} pid {pid}: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {threads} threads",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

/// Runs `op(n)` for n in 0..count from `clients` threads; prints the rate.
fn parallel(
    label: &str,
    count: u64,
    clients: usize,
    op: Arc<dyn Fn(usize, u64) -> bool + Send + Sync>,
) {
    if count == 0 {
        return;
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (next, errors, op) = (next.clone(), errors.clone(), op.clone());
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                if !op(c, n) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {count} in {secs:.1}s = {:.0}/s, {} errors",
        count as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
}

/// Median and min of `calls` timed runs of `op`, in ms, and the answer's size.
/// The pool calls timed, and what they print.
const POOL_METHODS: [(&str, &str); 2] = [
    ("one.vmpool.info", "short bodies"),
    ("one.vmpool.infoextended", "full bodies"),
];

fn timed(calls: usize, op: impl Fn() -> usize) -> (f64, f64, usize) {
    let mut ms = Vec::new();
    let mut size = 0;
    for _ in 0..calls {
        let t = Instant::now();
        size = op();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[ms.len() / 2], ms[0], size)
}

fn oned(args: &Args) {
    let zone = Zone::bootstrap(args.servers);
    let leader = zone.leader();
    let endpoint = zone.servers[leader].endpoint();
    let session = zone.servers[leader].session();
    let clients: Arc<Vec<Client>> = Arc::new(
        (0..args.clients)
            .map(|_| Client::new(endpoint.clone(), session.clone(), Duration::from_secs(60)))
            .collect(),
    );
    for (i, s) in zone.servers.iter().enumerate() {
        print_memory(&format!("server {i} at start"), s.pid().unwrap_or(0));
    }
    let c = clients.clone();
    parallel(
        "one.user.allocate",
        args.users,
        args.clients,
        Arc::new(move |i, n| {
            c[i].call(
                wire::method::USER_ALLOCATE,
                vec![
                    Value::String(format!("u{n}")),
                    Value::String(format!("pw-u{n}")),
                    Value::String(String::new()),
                ],
            )
            .is_ok()
        }),
    );
    let c = clients.clone();
    parallel(
        "one.template.allocate",
        args.templates,
        args.clients,
        Arc::new(move |i, n| {
            let text = format!(
                "NAME = \"t{n}\"\nCPU = 1\nMEMORY = 128\nDESCRIPTION = \"a template of about two \
                 hundred bytes, the size of the values put into etcd\"\nLABELS = \"bench,t{n}\""
            );
            c[i].call(wire::method::TEMPLATE_ALLOCATE, vec![Value::String(text)])
                .is_ok()
        }),
    );
    for h in 0..args.hosts {
        clients[0]
            .call(
                wire::method::HOST_ALLOCATE,
                vec![
                    Value::String(format!("host{h}")),
                    Value::String("dummy".into()),
                    Value::String("dummy".into()),
                    Value::Int(-1),
                ],
            )
            .unwrap_or_else(|e| panic!("one.host.allocate: {e:?}"));
    }
    let c = clients.clone();
    parallel(
        "one.vm.allocate",
        args.vms,
        args.clients,
        Arc::new(move |i, n| {
            let text = format!(
                "NAME = \"vm-{n}\"\nCPU = 0.01\nVCPU = 1\nMEMORY = 16\nLABELS = \"bench\"\n\
                 CONTEXT = [ NETWORK = \"YES\", SSH_PUBLIC_KEY = \"ssh-ed25519 AAAA{n}\" ]"
            );
            c[i].call(
                wire::method::VM_ALLOCATE,
                vec![Value::String(text), Value::Bool(false)],
            )
            .is_ok()
        }),
    );
    let client = &clients[0];
    if args.hosts > 0 {
        wait_running(client, args.vms);
    }
    zone.wait_caught_up();
    let pool = |method: &str| {
        let v = client
            .call(
                method,
                vec![
                    Value::Int(-2),
                    Value::Int(-1),
                    Value::Int(-1),
                    Value::Int(-1),
                ],
            )
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
        match v {
            Value::String(s) => s.len(),
            other => panic!("{method} returned {other:?}"),
        }
    };
    for (method, what) in POOL_METHODS {
        pool(method);
        let (median, min, size) = timed(args.calls, || pool(method));
        println!(
            "{method} ({what}) on the leader: median {median:.1} ms, min {min:.1} ms over {} calls, {:.1} MiB",
            args.calls,
            size as f64 / (1024.0 * 1024.0)
        );
    }
    // The server's part: until the whole answer arrived, without the client's parse; as kept,
    // and after one VM changed (renamed, untimed, before each call).
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let raw = |method: &str| {
        let body = xmlrpc::write_call(&xmlrpc::MethodCall {
            method: method.to_string(),
            params: [
                Value::String(session.clone()),
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
            ]
            .to_vec(),
        });
        let mut answer = Vec::new();
        agent
            .post(&endpoint)
            .set("Content-Type", "text/xml")
            .send_string(&body)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
            .into_reader()
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        answer.len()
    };
    let renamed = AtomicU64::new(0);
    let rename_one = || {
        let n = renamed.fetch_add(1, Ordering::Relaxed);
        let vm = (n % args.vms.max(1)) as i32;
        client
            .call(
                "one.vm.rename",
                vec![Value::Int(vm), Value::String(format!("renamed-{n}"))],
            )
            .unwrap_or_else(|e| panic!("one.vm.rename: {e:?}"));
    };
    for (method, what) in POOL_METHODS {
        raw(method);
        let (median, min, _) = timed(args.calls, || raw(method));
        println!(
            "{method} ({what}) on the leader, no parse, unchanged: median {median:.1} ms, min {min:.1} ms"
        );
        let mut ms = Vec::new();
        for _ in 0..args.calls {
            rename_one();
            let t = Instant::now();
            raw(method);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{method} ({what}) on the leader, no parse, after one VM renamed: median {:.1} ms, min {:.1} ms",
            ms[ms.len() / 2],
            ms[0]
        );
    }
    for (i, s) in zone.servers.iter().enumerate() {
        let role = if i == leader { "leader" } else { "follower" };
        print_memory(&format!("server {i} ({role}) loaded"), s.pid().unwrap_or(0));
    }
    if args.hold {
        for (i, s) in zone.servers.iter().enumerate() {
            println!("server {i}: pid {:?} {}", s.pid(), s.endpoint());
        }
        println!("holding the zone until stdin closes");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
}

/// Waits (up to 10 minutes) until the scheduler and the dummy driver have made `vms` VMs
/// RUNNING.
fn wait_running(client: &Client, vms: u64) {
    let started = Instant::now();
    loop {
        let running = client
            .call(
                wire::method::VMPOOL_INFO,
                vec![
                    Value::Int(-2),
                    Value::Int(-1),
                    Value::Int(-1),
                    Value::Int(3),
                ],
            )
            .map(|v| match v {
                Value::String(s) => s
                    .matches("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
                    .count() as u64,
                _ => 0,
            })
            .unwrap_or(0);
        if running >= vms {
            println!(
                "every VM RUNNING after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("{running} of {vms} VMs RUNNING after 10 minutes; measuring anyway");
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// One etcd member on loopback ports, with its data in a temporary directory.
fn etcd(args: &Args) {
    let (dir, _tmp) = testkit::zone::temp_dir("oneha-pools-etcd-");
    let client = testkit::zone::free_port();
    let peer = testkit::zone::free_port();
    let mut child = std::process::Command::new("etcd")
        .args([
            "--name",
            "e0",
            "--data-dir",
            &dir.join("data").to_string_lossy(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-cluster",
            &format!("e0=http://127.0.0.1:{peer}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd on the PATH (Debian's etcd-server)");
    let url = format!("http://127.0.0.1:{client}/v3/kv/put");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent
        .post(&url)
        .send_string(r#"{"key":"cHJvYmU=","value":"eA=="}"#)
        .is_err()
    {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    print_memory("etcd at start", child.id());
    let value = "v".repeat(200);
    let b64 = base64(value.as_bytes());
    let (url2, agent2) = (url.clone(), agent.clone());
    parallel(
        "etcd put (HTTP/JSON gateway)",
        args.keys,
        args.clients,
        Arc::new(move |_, n| {
            let key = base64(format!("/users/u{n}").as_bytes());
            agent2
                .post(&url2)
                .send_string(&format!(r#"{{"key":"{key}","value":"{b64}"}}"#))
                .is_ok()
        }),
    );
    print_memory("etcd loaded", child.id());
    if args.hold {
        println!(
            "etcd pid {} on {client}; holding until stdin closes",
            child.id()
        );
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.mode {
        Mode::Oned => oned(&args),
        Mode::Etcd => etcd(&args),
    }
    ExitCode::SUCCESS
}
