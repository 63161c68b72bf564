//! The load engine: `n` workers in flight as tasks of one runtime (current-thread by default:
//! cheaper per call than a thread each; the client's own CPU is measured so that a saturated
//! client shows), plus the process probes (`/proc/PID/stat`, `/proc/PID/status`).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xmlrpc::Value;

use crate::etcd::Kv;
use crate::rpc::Rpc;

/// Threads of the client's runtime, for the saturation warning.
pub static CLIENT_THREADS: AtomicUsize = AtomicUsize::new(1);

/// What one call does.
#[derive(Clone, Copy)]
pub enum Op {
    UserAllocate,
    VmAllocate,
    TemplateAllocate,
    UserInfo(i32),
    VmInfo(i32),
    Put,
    Range {
        serializable: bool,
    },
    /// etcd's `Auth/UserAdd`: a user with a bcrypt-hashed password.
    UserAdd,
}

/// Where a worker sends its calls.
pub enum Target {
    OneHa(Rpc),
    Etcd(Kv),
}

/// The value stored by etcd puts: about the size of a user's body in OneHA's pool.
pub const VALUE: &[u8] = &[b'v'; 600];

impl Target {
    /// One call; `tag` makes names and keys unique across workers and runs.
    pub async fn once(&mut self, op: Op, tag: &str) -> Result<(), String> {
        match self {
            Target::OneHa(rpc) => {
                let (method, params) = match op {
                    Op::UserAllocate => (
                        wire::method::USER_ALLOCATE,
                        vec![
                            Value::String(format!("u{tag}")),
                            Value::String(format!("pw-{tag}")),
                            Value::String(String::new()),
                        ],
                    ),
                    Op::VmAllocate => (
                        wire::method::VM_ALLOCATE,
                        vec![Value::String(format!(
                            "NAME = \"v{tag}\"\nCPU = 1\nMEMORY = 64"
                        ))],
                    ),
                    Op::TemplateAllocate => (
                        wire::method::TEMPLATE_ALLOCATE,
                        vec![Value::String(format!(
                            "NAME = \"t{tag}\"\nCPU = 1\nMEMORY = 64"
                        ))],
                    ),
                    Op::UserInfo(id) => (wire::method::USER_INFO, vec![Value::Int(id)]),
                    Op::VmInfo(id) => (wire::method::VM_INFO, vec![Value::Int(id)]),
                    Op::Put | Op::Range { .. } | Op::UserAdd => {
                        return Err("not a OneHA call".into())
                    }
                };
                rpc.call(method, params).await.map(|_| ())
            }
            Target::Etcd(kv) => match op {
                Op::Put => kv.put(format!("k{tag}").into_bytes(), VALUE.to_vec()).await,
                Op::UserAdd => kv.user_add(format!("u{tag}"), format!("pw-{tag}")).await,
                Op::Range { serializable } => kv
                    .range(b"reader".to_vec(), serializable)
                    .await
                    .and_then(|n| match n {
                        1 => Ok(()),
                        n => Err(format!("{n} keys")),
                    }),
                _ => Err("not an etcd call".into()),
            },
        }
    }
}

/// What a run measured.
#[derive(Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    /// Sorted latencies of the successful calls, in microseconds.
    pub latencies: Vec<u64>,
    /// CPU seconds of this process (the load client) over the run, per wall second.
    pub client_cpu: f64,
    /// utime+stime of the server processes over the run, in seconds.
    pub server_cpu: f64,
    /// What the first failed call said.
    pub first_error: Option<String>,
}

impl Stats {
    pub fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }

    /// Percentile `p` (0..=1) of the latencies, in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    /// The load client used most of its threads' CPU: the figure may be the client's limit.
    pub fn client_saturated(&self) -> bool {
        self.client_cpu > 0.85 * CLIENT_THREADS.load(Ordering::Relaxed) as f64
    }

    /// Server CPU seconds per 1000 acknowledged calls.
    pub fn server_cpu_per_1k(&self) -> f64 {
        if self.ok == 0 {
            return f64::NAN;
        }
        self.server_cpu * 1000.0 / self.ok as f64
    }
}

/// Runs `targets.len()` workers doing `op` for `secs`, each on its own target; `run` keeps tags
/// unique across runs of one cluster.
pub fn drive(
    rt: &tokio::runtime::Runtime,
    targets: Vec<Target>,
    op: Op,
    secs: f64,
    run: &str,
    server_pids: &[u32],
) -> Stats {
    let cpu_before = crate::sys::self_cpu();
    let servers_before: f64 = server_pids.iter().map(|&p| proc_cpu(p)).sum();
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(secs);
    let outcomes = rt.block_on(async {
        let workers: Vec<_> = targets
            .into_iter()
            .enumerate()
            .map(|(w, mut target)| {
                let run = run.to_string();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    let mut mine = Vec::new();
                    let mut failed = 0u64;
                    let mut first = None;
                    while Instant::now() < stop {
                        n += 1;
                        let t = Instant::now();
                        match target.once(op, &format!("{run}-{w}-{n}")).await {
                            Ok(()) => mine.push(t.elapsed().as_micros() as u64),
                            Err(e) => {
                                failed += 1;
                                first.get_or_insert(e);
                            }
                        }
                    }
                    (mine, failed, first)
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(workers.len());
        for w in workers {
            if let Ok(o) = w.await {
                outcomes.push(o);
            }
        }
        outcomes
    });
    let secs = started.elapsed().as_secs_f64();
    let servers_after: f64 = server_pids.iter().map(|&p| proc_cpu(p)).sum();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for (mine, failed, first) in outcomes {
        latencies.extend(mine);
        errors += failed;
        first_error = first_error.or(first);
    }
    latencies.sort_unstable();
    Stats {
        ok: latencies.len() as u64,
        errors,
        secs,
        latencies,
        client_cpu: (crate::sys::self_cpu() - cpu_before) / secs,
        server_cpu: servers_after - servers_before,
        first_error,
    }
}

/// `targets` workers sharing `count` acknowledged calls; a worker gives up after 20 failures
/// in a row (the cluster is gone).
pub fn drive_count(
    rt: &tokio::runtime::Runtime,
    targets: Vec<Target>,
    op: Op,
    count: u64,
    run: &str,
) -> Stats {
    let started = Instant::now();
    // Claimed calls: a worker takes a ticket before a call and returns it if the call fails.
    let left = Arc::new(AtomicI64::new(i64::try_from(count).unwrap_or(i64::MAX)));
    let outcomes = rt.block_on(async {
        let workers: Vec<_> = targets
            .into_iter()
            .enumerate()
            .map(|(w, mut target)| {
                let (run, left) = (run.to_string(), left.clone());
                tokio::spawn(async move {
                    let (mut n, mut ok, mut failed, mut streak) = (0u64, 0u64, 0u64, 0);
                    let mut first = None;
                    while streak < 20 && left.fetch_sub(1, Ordering::Relaxed) > 0 {
                        n += 1;
                        match target.once(op, &format!("{run}-{w}-{n}")).await {
                            Ok(()) => {
                                ok += 1;
                                streak = 0;
                            }
                            Err(e) => {
                                left.fetch_add(1, Ordering::Relaxed);
                                failed += 1;
                                streak += 1;
                                first.get_or_insert(e);
                            }
                        }
                    }
                    (ok, failed, first)
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(workers.len());
        for w in workers {
            if let Ok(o) = w.await {
                outcomes.push(o);
            }
        }
        outcomes
    });
    Stats {
        ok: outcomes.iter().map(|o| o.0).sum(),
        errors: outcomes.iter().map(|o| o.1).sum(),
        first_error: outcomes.into_iter().find_map(|o| o.2),
        secs: started.elapsed().as_secs_f64(),
        ..Stats::default()
    }
}

/// utime + stime of process `pid` (all its threads) in seconds, 0 when it is gone.
pub fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks as f64 / crate::sys::clock_ticks()
}

/// VmRSS of process `pid` in MiB, `None` when it is gone.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Median of `v` (sorted here), NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
