//! The workloads of issue 16, each run against a fresh OneHA zone and a fresh etcd cluster, and
//! the results gathered into one markdown table per workload (two for `writes-user`).
//!
//! etcd's side: serializable `Range` on followers (`reads-follower`), linearizable `Range` on
//! every member (`reads-linear`), `Put` on the leader (every `writes-*`, a write that hashes
//! nothing), and for `writes-user` also `Auth/UserAdd` on the leader, etcd's own user creation
//! with a bcrypt hash, the fair anchor of `one.user.allocate`'s argon2id hash
//! ([`HASHED`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use testkit::zone::Zone;
use xmlrpc::Value;

use crate::etcd::{Etcd, Kv};
use crate::load::{self, drive, drive_count, median, Op, Stats, Target};
use crate::rpc::{Conn, Rpc};

/// Every workload. A pass runs the reads first, on a store the write runs have not grown yet,
/// then the writes, then what kills servers, then the fills on fresh clusters. `writes-user`
/// fills two tables: itself (against etcd `Put`) and [`HASHED`] (against etcd `Auth/UserAdd`).
pub const WORKLOADS: &[&str] = &[
    "reads-follower",
    "reads-linear",
    "writes-user",
    "writes-vm",
    "writes-template",
    "fsync",
    "failover",
    "planned-stop",
    "rss",
    "vmpool",
];

/// The second table of `writes-user`: `one.user.allocate` against a write that hashes a password
/// too, etcd's `Auth/UserAdd`.
pub const HASHED: &str = "writes-user-hashed";
const HASHED_TITLE: &str = "Durable writes with a password hash: `one.user.allocate` (argon2id) on the leader vs etcd `Auth/UserAdd` (bcrypt) on the leader";

/// The tables workload `w` fills.
fn tables_of(w: &str) -> Vec<&str> {
    if w == "writes-user" {
        vec![w, HASHED]
    } else {
        vec![w]
    }
}

/// Per-attempt timeout of the failover probes, the same for both systems: a client that gives
/// up quickly and retries, so the measure is the cluster's, not the client's patience.
const RETRY_TIMEOUT: Duration = Duration::from_millis(250);
/// Per-call timeout of the load runs.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How many in flight while filling the stores for `rss` and `vmpool`.
const FILL_IN_FLIGHT: usize = 64;
/// Progress is printed every this many objects while filling.
const FILL_SLICE: u64 = 5000;

pub struct Plan {
    pub secs: f64,
    pub write_levels: Vec<usize>,
    pub read_levels: Vec<usize>,
    pub rounds: usize,
    pub users: u64,
    pub vms: u64,
    pub vmpool_calls: usize,
    pub workloads: Vec<String>,
    /// Run `rss` and `vmpool` (which fill the stores) in the first pass only.
    pub fill_once: bool,
}

impl Plan {
    fn has(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

const ETCD: &str = "etcd";
const ONEHA: &str = "OneHA";

/// A row's figures: column → one value per pass.
type Row = (String, BTreeMap<String, Vec<f64>>);

/// The figures of every pass: (table, title, rows), in the order they were first recorded.
#[derive(Default)]
pub struct Results {
    tables: Vec<(String, String, Vec<Row>)>,
}

impl Results {
    fn add(&mut self, table: &str, title: &str, row: &str, column: &str, value: f64) {
        let t = match self.tables.iter().position(|t| t.0 == table) {
            Some(i) => i,
            None => {
                self.tables
                    .push((table.to_string(), title.to_string(), Vec::new()));
                self.tables.len() - 1
            }
        };
        let rows = &mut self.tables[t].2;
        let r = match rows.iter().position(|r| r.0 == row) {
            Some(i) => i,
            None => {
                rows.push((row.to_string(), BTreeMap::new()));
                rows.len() - 1
            }
        };
        rows[r].1.entry(column.to_string()).or_default().push(value);
    }

    /// Every workload that produced no number at all (for `--smoke`).
    pub fn missing(&self, plan: &Plan, etcd: bool) -> Vec<String> {
        let mut missing = Vec::new();
        for w in plan.workloads.iter().flat_map(|w| tables_of(w)) {
            // strace may be missing, or not allowed to attach (no CAP_SYS_PTRACE): said above.
            if w == "fsync" && !strace_works() {
                continue;
            }
            let Some(t) = self.tables.iter().find(|t| t.0 == w) else {
                missing.push(format!("{w}: no table"));
                continue;
            };
            let has = |col: &str| {
                t.2.iter()
                    .filter(|(row, _)| !row.starts_with("fill"))
                    .any(|(_, cols)| {
                        cols.iter()
                            .any(|(c, v)| c.starts_with(col) && v.iter().any(|x| x.is_finite()))
                    })
            };
            if !has(ONEHA) {
                missing.push(format!("{w}: no OneHA figure"));
            }
            let oneha_only = w == "vmpool";
            if etcd && !oneha_only && !has(ETCD) {
                missing.push(format!("{w}: no etcd figure"));
            }
        }
        missing
    }

    /// One markdown table per workload: the mean over the passes (and the range when there are
    /// several), and each OneHA column's ratio to etcd's.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for (_, title, rows) in &self.tables {
            let mut columns: Vec<String> = Vec::new();
            for (_, cols) in rows {
                for c in cols.keys() {
                    if !columns.contains(c) {
                        columns.push(c.clone());
                    }
                }
            }
            // OneHA's columns first, etcd last.
            columns.sort_by_key(|c| (c == ETCD, c.clone()));
            let has_etcd = columns.iter().any(|c| c == ETCD);
            let oneha: Vec<&String> = columns.iter().filter(|c| *c != ETCD).collect();
            out.push_str(&format!("\n#### {title}\n\n| | "));
            out.push_str(&columns.join(" | "));
            if has_etcd {
                for c in &oneha {
                    out.push_str(&format!(" | {c} / etcd"));
                }
            }
            out.push_str(" |\n|---|");
            let n = columns.len() + if has_etcd { oneha.len() } else { 0 };
            out.push_str(&"---:|".repeat(n));
            out.push('\n');
            for (row, cols) in rows {
                out.push_str(&format!("| {row} |"));
                for c in &columns {
                    out.push_str(&format!(" {} |", cell(cols.get(c))));
                }
                // Ratios of the client's CPU, of fill rates or of round counts say nothing.
                let compared = !(row == "rounds" || row.contains("client") || row.contains("fill"));
                if has_etcd {
                    let e = cols.get(ETCD).map(|v| mean(v)).filter(|_| compared);
                    for c in &oneha {
                        let ratio = match (cols.get(*c).map(|v| mean(v)), e) {
                            (Some(a), Some(b)) if b.is_finite() && b != 0.0 && a.is_finite() => {
                                format!("{:.2}x", a / b)
                            }
                            _ => "-".to_string(),
                        };
                        out.push_str(&format!(" {ratio} |"));
                    }
                }
                out.push('\n');
            }
        }
        out
    }
}

fn mean(v: &[f64]) -> f64 {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        return f64::NAN;
    }
    finite.iter().sum::<f64>() / finite.len() as f64
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".to_string()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(values: Option<&Vec<f64>>) -> String {
    let Some(v) = values else {
        return "-".to_string();
    };
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    match finite.len() {
        0 => "-".to_string(),
        1 => num(finite[0]),
        _ => {
            let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{} ({}–{})", num(mean(&finite)), num(lo), num(hi))
        }
    }
}

/// The title of a write table (a `writes-*` workload, or [`HASHED`]).
fn write_title(w: &str) -> String {
    if w == HASHED {
        return HASHED_TITLE.to_string();
    }
    let method = match w {
        "writes-user" => "one.user.allocate",
        "writes-vm" => "one.vm.allocate",
        _ => "one.template.allocate",
    };
    format!("Durable writes: `{method}` on the leader vs etcd `Put` on the leader")
}

/// Records a load run's figures as rows `{prefix}: ops/s`, `p50 ms`, `p99 ms`, server CPU.
fn record_load(
    results: &mut Results,
    (table, title): (&str, &str),
    prefix: &str,
    column: &str,
    s: &Stats,
    cpu: bool,
    say: bool,
) {
    if say && s.client_saturated() {
        eprintln!("    WARNING: the load client is saturated (raise --client-threads)");
    }
    if say {
        eprintln!(
        "    {column} {prefix}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, client CPU {:.0}%, server CPU {:.3} s/1k",
        s.ops_per_sec(),
        s.ms(0.5),
        s.ms(0.99),
        s.errors,
        s.client_cpu * 100.0,
        s.server_cpu_per_1k()
    );
        if let Some(e) = &s.first_error {
            eprintln!("      first error: {e}");
        }
    }
    results.add(
        table,
        title,
        &format!("{prefix}: ops/s"),
        column,
        s.ops_per_sec(),
    );
    results.add(
        table,
        title,
        &format!("{prefix}: p50 ms"),
        column,
        s.ms(0.5),
    );
    results.add(
        table,
        title,
        &format!("{prefix}: p99 ms"),
        column,
        s.ms(0.99),
    );
    if cpu {
        results.add(
            table,
            title,
            &format!("{prefix}: server CPU s / 1k"),
            column,
            s.server_cpu_per_1k(),
        );
    }
    results.add(
        table,
        title,
        &format!("{prefix}: load client CPU %"),
        column,
        s.client_cpu * 100.0,
    );
}

/// One OneHA pass: a fresh 3-server zone, every selected workload, then the zone is dropped.
pub fn oneha_pass(rt: &tokio::runtime::Runtime, plan: &Plan, results: &mut Results, pass: usize) {
    eprintln!("=== pass {pass}: OneHA, fresh 3-server zone");
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let session = zone.servers[0].session();
    let admin = zone.servers[leader].client();
    let reader = testkit::zone::allocate(&admin, "bench-reader").unwrap_or(0) as i32;
    let vm = admin
        .call(
            wire::method::VM_ALLOCATE,
            vec![Value::String(
                "NAME = \"bench-reader\"\nCPU = 1\nMEMORY = 64".into(),
            )],
        )
        .ok()
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as i32;
    zone.wait_caught_up();
    let ports = |zone: &Zone| zone.servers.iter().map(|s| s.port).collect::<Vec<u16>>();
    let pids = |zone: &Zone| {
        zone.servers
            .iter()
            .filter_map(|s| s.pid())
            .collect::<Vec<u32>>()
    };
    let rpcs = |ports: &[u16], n: usize, conn: Conn, linear: bool| -> Vec<Target> {
        (0..n)
            .map(|i| {
                let rpc = Rpc::new(ports[i % ports.len()], &session, conn, CALL_TIMEOUT);
                Target::OneHa(if linear { rpc.leader_reads() } else { rpc })
            })
            .collect()
    };
    let run = |what: &str| format!("p{pass}{what}");

    if plan.has("reads-follower") {
        eprintln!("--- reads-follower");
        zone.wait_caught_up();
        let leader = zone.leader();
        let followers: Vec<u16> = (0..zone.servers.len())
            .filter(|&i| i != leader)
            .map(|i| zone.servers[i].port)
            .collect();
        for (name, op) in [
            ("one.user.info", Op::UserInfo(reader)),
            ("one.vm.info", Op::VmInfo(vm)),
        ] {
            for &level in &plan.read_levels {
                for conn in [Conn::Keep, Conn::New] {
                    let s = drive(
                        rt,
                        rpcs(&followers, level, conn, false),
                        op,
                        plan.secs,
                        "r",
                        &pids(&zone),
                    );
                    let prefix = format!("`{name}`, {level} in flight");
                    let table = ("reads-follower", READS_TITLE);
                    record_load(results, table, &prefix, conn.label(), &s, false, true);
                }
            }
        }
    }

    if plan.has("reads-linear") {
        eprintln!("--- reads-linear");
        let all = ports(&zone);
        for &level in &plan.read_levels {
            for conn in [Conn::Keep, Conn::New] {
                let s = drive(
                    rt,
                    rpcs(&all, level, conn, true),
                    Op::UserInfo(reader),
                    plan.secs,
                    "l",
                    &pids(&zone),
                );
                let prefix = format!("{level} in flight");
                let table = ("reads-linear", LINEAR_TITLE);
                record_load(results, table, &prefix, conn.label(), &s, false, true);
            }
        }
    }

    for (w, op) in [
        ("writes-user", Op::UserAllocate),
        ("writes-vm", Op::VmAllocate),
        ("writes-template", Op::TemplateAllocate),
    ] {
        if !plan.has(w) {
            continue;
        }
        eprintln!("--- {w}");
        for &level in &plan.write_levels {
            for conn in [Conn::Keep, Conn::New] {
                let leader = zone.leader();
                let targets = rpcs(&[zone.servers[leader].port], level, conn, false);
                let s = drive(
                    rt,
                    targets,
                    op,
                    plan.secs,
                    &run(&format!("{w}{level}{conn:?}")),
                    &pids(&zone),
                );
                let prefix = format!("{level} in flight");
                for (k, t) in tables_of(w).into_iter().enumerate() {
                    let table = (t, write_title(t));
                    let say = k == 0;
                    record_load(results, (t, &table.1), &prefix, conn.label(), &s, true, say);
                }
                if matches!(op, Op::UserAllocate) {
                    let tag = run(&format!("{w}{level}{conn:?}drain"));
                    drain_oneha(rt, zone.servers[leader].port, &session, &tag);
                }
            }
        }
    }

    if plan.has("fsync") {
        eprintln!("--- fsync");
        let leader = zone.leader();
        if let Some(pid) = zone.servers[leader].pid() {
            let targets = rpcs(&[zone.servers[leader].port], 1, Conn::Keep, false);
            let calls = strace_syncs(pid, || {
                drive(
                    rt,
                    targets,
                    Op::TemplateAllocate,
                    plan.secs,
                    &run("fsync"),
                    &[],
                )
            });
            record_sync(results, ONEHA, calls);
        }
    }

    if plan.has("failover") {
        eprintln!("--- failover (SIGKILL of the leader)");
        for r in 0..plan.rounds {
            let took = oneha_stop_leader(
                rt,
                &mut zone,
                &session,
                libc::SIGKILL,
                &run(&format!("fk{r}")),
            );
            eprintln!("    round {r}: next acknowledged write after {took:.0} ms");
            results.add(
                "failover",
                FAILOVER_TITLE,
                &format!("round {r} ms"),
                ONEHA,
                took,
            );
        }
    }
    if plan.has("planned-stop") {
        eprintln!("--- planned-stop (SIGTERM of the leader)");
        for r in 0..plan.rounds {
            let took = oneha_stop_leader(
                rt,
                &mut zone,
                &session,
                libc::SIGTERM,
                &run(&format!("ft{r}")),
            );
            eprintln!("    round {r}: next acknowledged write after {took:.0} ms");
            results.add(
                "planned-stop",
                PLANNED_TITLE,
                &format!("round {r} ms"),
                ONEHA,
                took,
            );
        }
    }

    let fill = !plan.fill_once || pass == 1;
    if fill && (plan.has("rss") || plan.has("vmpool")) {
        // A fresh zone, so that the store holds what the table says and nothing the load runs
        // left.
        drop(zone);
        eprintln!("--- fresh 3-server zone for rss / vmpool");
        let zone = Zone::bootstrap(3);
        let leader = zone.leader();
        let port = zone.servers[leader].port;
        // A new zone has its own oneadmin password.
        let session = zone.servers[0].session();
        let title = rss_title(plan);
        let mut filled = true;
        if plan.has("rss") {
            eprintln!("--- rss: {} users", plan.users);
            let s = fill_count(
                rt,
                || Target::OneHa(Rpc::new(port, &session, Conn::Keep, CALL_TIMEOUT)),
                Op::UserAllocate,
                plan.users,
                &run("fu"),
            );
            eprintln!(
                "    {} users in {:.0} s ({:.0}/s)",
                s.ok,
                s.secs,
                s.ops_per_sec()
            );
            results.add("rss", &title, "fill: users/s", ONEHA, s.ops_per_sec());
            filled &= s.ok == plan.users;
        }
        eprintln!("--- rss: {} VMs", plan.vms);
        let s = fill_count(
            rt,
            || Target::OneHa(Rpc::new(port, &session, Conn::Keep, CALL_TIMEOUT)),
            Op::VmAllocate,
            plan.vms,
            &run("fv"),
        );
        eprintln!(
            "    {} VMs in {:.0} s ({:.0}/s)",
            s.ok,
            s.secs,
            s.ops_per_sec()
        );
        filled &= s.ok == plan.vms;
        zone.wait_caught_up();
        if plan.has("rss") {
            results.add("rss", &title, "fill: VMs/s", ONEHA, s.ops_per_sec());
            if filled {
                record_rss(results, &title, ONEHA, &pids(&zone));
            } else {
                eprintln!("    the fill failed: no RSS figure");
            }
        }
        if plan.has("vmpool") {
            eprintln!("--- vmpool");
            let mut rpc = Rpc::new(port, &session, Conn::Keep, CALL_TIMEOUT);
            let all = || {
                vec![
                    Value::Int(-2),
                    Value::Int(-1),
                    Value::Int(-1),
                    Value::Int(-1),
                ]
            };
            for (method, row) in [
                (
                    "one.vmpool.infoextended",
                    "`one.vmpool.infoextended(-2,-1,-1,-1)` (full bodies)",
                ),
                (
                    wire::method::VMPOOL_INFO,
                    "`one.vmpool.info(-2,-1,-1,-1)` (short bodies)",
                ),
            ] {
                let (mut ms, mut received) = (Vec::new(), Vec::new());
                let (mut bytes, mut count) = (0, 0);
                for _ in 0..plan.vmpool_calls {
                    let t = Instant::now();
                    if let Ok(v) = rt.block_on(rpc.call(method, all())) {
                        ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        if let Some(d) = rpc.answered_in() {
                            received.push(d.as_secs_f64() * 1000.0);
                        }
                        let body = v.as_str().unwrap_or_default();
                        bytes = body.len();
                        count = body.matches("<VM>").count();
                    }
                }
                if ms.is_empty() {
                    eprintln!("    {method}: every call failed");
                    continue;
                }
                let m = median(&mut ms);
                let r = median(&mut received);
                eprintln!(
                    "    {method}: median {m:.1} ms over {} calls ({r:.1} ms until the whole \
                     answer arrived), {count} VMs, {bytes} bytes",
                    ms.len()
                );
                let title = format!(
                    "`one.vmpool.info*` on the leader with {count} VMs (median of {} calls)",
                    plan.vmpool_calls
                );
                results.add("vmpool", &title, &format!("{row}: median ms"), ONEHA, m);
                results.add(
                    "vmpool",
                    &title,
                    &format!("{row}: median ms until the whole answer arrived (no parse)"),
                    ONEHA,
                    r,
                );
                results.add(
                    "vmpool",
                    &title,
                    &format!("{row}: MiB"),
                    ONEHA,
                    bytes as f64 / (1024.0 * 1024.0),
                );
            }
            // What pool answers (and the bodies the leader keeps for them) add to memory.
            let mut rss: Vec<f64> = pids(&zone)
                .iter()
                .filter_map(|&p| load::rss_mib(p))
                .collect();
            rss.sort_by(f64::total_cmp);
            eprintln!("    after the pool calls: VmRSS MiB {rss:?}");
            if let Some(hi) = rss.last() {
                let title = "VmRSS after the `one.vmpool.info*` calls";
                results.add("vmpool", title, "largest server MiB", ONEHA, *hi);
            }
        }
    }
}

const READS_TITLE: &str =
    "Reads on followers: `one.user.info` / `one.vm.info` vs etcd serializable `Range`";
const LINEAR_TITLE: &str = "Linearizable reads on every server: `one.user.info` with `X-OneHA-Read: leader` vs etcd linearizable `Range`";
const FAILOVER_TITLE: &str = "Failover: SIGKILL of the leader → next acknowledged write (ms)";
const PLANNED_TITLE: &str = "Planned stop: SIGTERM of the leader → next acknowledged write (ms)";
const FSYNC_TITLE: &str = "fsync-family syscalls per write on the leader, 1 in flight (strace -f)";

fn rss_title(plan: &Plan) -> String {
    format!(
        "VmRSS per server after {} users + {} VMs (etcd: as many keys, 600-byte values)",
        plan.users, plan.vms
    )
}

fn record_sync(results: &mut Results, column: &str, calls: Option<(u64, u64)>) {
    match calls {
        Some((syncs, writes)) if writes > 0 => {
            let per = syncs as f64 / writes as f64;
            eprintln!("    {column}: {syncs} sync calls / {writes} writes = {per:.2}");
            results.add("fsync", FSYNC_TITLE, "per write", column, per);
        }
        _ => eprintln!("    {column}: no strace figure (is strace installed?)"),
    }
}

fn record_rss(results: &mut Results, title: &str, column: &str, pids: &[u32]) {
    let mut rss: Vec<f64> = pids.iter().filter_map(|&p| load::rss_mib(p)).collect();
    rss.sort_by(f64::total_cmp);
    eprintln!("    {column} VmRSS MiB: {rss:?}");
    if let (Some(lo), Some(hi)) = (rss.first(), rss.last()) {
        results.add("rss", title, "largest server MiB", column, *hi);
        results.add("rss", title, "smallest server MiB", column, *lo);
    }
}

/// Runs `make()` workers until `count` calls are acknowledged (or an error streak).
fn fill_count(
    rt: &tokio::runtime::Runtime,
    make: impl Fn() -> Target,
    op: Op,
    count: u64,
    run: &str,
) -> Stats {
    let started = Instant::now();
    let mut total = Stats::default();
    let mut chunk = 0;
    while total.ok < count {
        // Slices, for progress; tags stay unique through `chunk`.
        let slice = (count - total.ok).min(FILL_SLICE);
        let workers = (FILL_IN_FLIGHT as u64).min(slice) as usize;
        let targets = (0..workers).map(|_| make()).collect();
        let s = drive_count(rt, targets, op, slice, &format!("{run}c{chunk}"));
        chunk += 1;
        total.ok += s.ok;
        total.errors += s.errors;
        if count > FILL_SLICE {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "    {} / {count} in {secs:.0} s ({:.0}/s)",
                total.ok,
                total.ok as f64 / secs
            );
        }
        if s.ok == 0 {
            eprintln!(
                "    fill stopped: no call succeeded ({} errors; first: {})",
                s.errors,
                s.first_error.as_deref().unwrap_or("-")
            );
            break;
        }
    }
    total.secs = started.elapsed().as_secs_f64();
    total
}

/// Signals the leader, probes writes through the others until one is acknowledged, restarts
/// the stopped server and waits for the zone to be whole again; the gap in ms.
fn oneha_stop_leader(
    rt: &tokio::runtime::Runtime,
    zone: &mut Zone,
    session: &str,
    signal: i32,
    run: &str,
) -> f64 {
    zone.wait_caught_up();
    let leader = zone.leader();
    let others: Vec<u16> = (0..zone.servers.len())
        .filter(|&i| i != leader)
        .map(|i| zone.servers[i].port)
        .collect();
    let pid = zone.servers[leader].pid();
    let mut probes: Vec<Target> = others
        .iter()
        .map(|&p| Target::OneHa(Rpc::new(p, session, Conn::New, RETRY_TIMEOUT)))
        .collect();
    let t0 = Instant::now();
    if let Some(pid) = pid {
        crate::sys::signal(pid, signal);
    }
    let took = probe_until_written(rt, t0, &mut probes, Op::TemplateAllocate, run);
    // Reap it through the zone once it has exited, so a SIGTERM is never sent twice to a live
    // oned (`Server::stop` signals, then checks the exit status of an orderly stop).
    if let Some(pid) = pid {
        wait_exited(pid);
    }
    if signal == libc::SIGKILL {
        zone.servers[leader].kill();
    } else {
        zone.servers[leader].stop();
    }
    zone.servers[leader].start();
    zone.wait_caught_up();
    took
}

/// Waits (at most a minute) until `pid` is a zombie or gone.
fn wait_exited(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                if state == Some("Z") || state == Some("X") {
                    return;
                }
            }
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `op` through each of `probes` in turn until one is acknowledged (at most a minute);
/// the ms since `t0`.
fn probe_until_written(
    rt: &tokio::runtime::Runtime,
    t0: Instant,
    probes: &mut [Target],
    op: Op,
    tag: &str,
) -> f64 {
    let mut n = 0;
    loop {
        n += 1;
        let i = n % probes.len();
        if rt
            .block_on(probes[i].once(op, &format!("{tag}-{n}")))
            .is_ok()
        {
            return t0.elapsed().as_secs_f64() * 1000.0;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            eprintln!("    no write acknowledged within 60 s");
            return f64::NAN;
        }
    }
}

/// Whether `strace` can trace a command here.
pub fn strace_works() -> bool {
    std::process::Command::new("strace")
        .args(["-f", "-e", "trace=none", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `f` with `strace -c -f` attached to `pid`: (fsync-family calls, acknowledged calls).
fn strace_syncs(pid: u32, f: impl FnOnce() -> Stats) -> Option<(u64, u64)> {
    let out = tempfile::NamedTempFile::new().ok()?;
    let mut strace = std::process::Command::new("strace")
        .args([
            "-c",
            "-f",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync",
            "-o",
        ])
        .arg(out.path())
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // strace attaches asynchronously; give it a moment to reach every thread.
    std::thread::sleep(Duration::from_millis(500));
    let stats = f();
    // SIGINT makes strace detach and write its summary.
    crate::sys::signal(strace.id(), libc::SIGINT);
    let _ = strace.wait();
    let text = std::fs::read_to_string(out.path()).ok()?;
    let calls = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.last()?;
            if [
                "fsync",
                "fdatasync",
                "sync_file_range",
                "msync",
                "syncfs",
                "sync",
            ]
            .contains(name)
            {
                f.get(3)?.parse::<u64>().ok()
            } else {
                None
            }
        })
        .sum();
    Some((calls, stats.ok))
}

/// Waits until etcd's leader acknowledges a `Put`. etcd 3.4 runs bcrypt in its apply loop, one
/// `UserAdd` after another, so a run of them leaves that loop tens of seconds behind the client
/// (a `Put` answers only once applied): the next run would measure the backlog, not etcd (the
/// twelfth round's `fsync` figure did).
fn drain_etcd(rt: &tokio::runtime::Runtime, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let started = Instant::now();
    let mut kv = rt.block_on(async { Kv::new(port, CALL_TIMEOUT) });
    while Instant::now() < deadline {
        if rt
            .block_on(kv.put(b"drain".to_vec(), load::VALUE.to_vec()))
            .is_ok()
        {
            let waited = started.elapsed().as_secs_f64();
            if waited > 1.0 {
                eprintln!("    etcd caught up with its queued writes in {waited:.1} s");
            }
            return;
        }
    }
    eprintln!("    etcd did not catch up with its queued writes within 300 s");
}

/// Waits until the leader has hashed any password a `one.user.allocate` run left queued (at most
/// its `MAX_QUEUED_HASHES`), as [`drain_etcd`] does for etcd: one more call waits its turn
/// behind them, so the next run starts on an idle leader. It prints the wait (0.04-0.08 s
/// measured: a run ends once its calls in flight answered). `tag` makes the users' names unique.
fn drain_oneha(rt: &tokio::runtime::Runtime, port: u16, session: &str, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = Instant::now();
    let mut rpc = Target::OneHa(Rpc::new(port, session, Conn::Keep, CALL_TIMEOUT));
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        if rt
            .block_on(rpc.once(Op::UserAllocate, &format!("{tag}-{n}")))
            .is_ok()
        {
            let waited = started.elapsed().as_secs_f64();
            eprintln!("    the leader's password queue drained in {waited:.2} s");
            return;
        }
        // Refused at once while the queue is full: ask again a little later.
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("    the leader did not finish its queued password hashes within 120 s");
}

/// One etcd pass: a fresh 3-member cluster, the etcd side of every selected workload.
pub fn etcd_pass(rt: &tokio::runtime::Runtime, plan: &Plan, results: &mut Results, pass: usize) {
    eprintln!("=== pass {pass}: etcd, fresh 3-member cluster");
    let mut etcd = Etcd::start(rt);
    let leader = etcd.leader(rt);
    let kvs = |ports: &[u16], n: usize| -> Vec<Target> {
        (0..n)
            .map(|i| {
                Target::Etcd(rt.block_on(async { Kv::new(ports[i % ports.len()], CALL_TIMEOUT) }))
            })
            .collect()
    };
    {
        let mut kv = rt.block_on(async { Kv::new(etcd.port(leader), CALL_TIMEOUT) });
        let _ = rt.block_on(kv.put(b"reader".to_vec(), load::VALUE.to_vec()));
        // Serializable reads on a follower see the key only once it has applied it.
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..etcd.len() {
            let mut kv = rt.block_on(async { Kv::new(etcd.port(i), CALL_TIMEOUT) });
            while rt.block_on(kv.range(b"reader".to_vec(), true)) != Ok(1)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let run = |what: &str| format!("p{pass}{what}");
    let followers: Vec<u16> = (0..etcd.len())
        .filter(|&i| i != leader)
        .map(|i| etcd.port(i))
        .collect();
    let all: Vec<u16> = (0..etcd.len()).map(|i| etcd.port(i)).collect();
    if plan.has("reads-follower") {
        eprintln!("--- reads-follower (etcd serializable Range)");
        for &level in &plan.read_levels {
            let s = drive(
                rt,
                kvs(&followers, level),
                Op::Range { serializable: true },
                plan.secs,
                "r",
                &etcd.pids(),
            );
            // The same etcd figure faces both OneHA reads.
            for name in ["one.user.info", "one.vm.info"] {
                let prefix = format!("`{name}`, {level} in flight");
                let say = name == "one.user.info";
                let table = ("reads-follower", READS_TITLE);
                record_load(results, table, &prefix, ETCD, &s, false, say);
            }
        }
    }
    if plan.has("reads-linear") {
        eprintln!("--- reads-linear (etcd linearizable Range)");
        for &level in &plan.read_levels {
            let s = drive(
                rt,
                kvs(&all, level),
                Op::Range {
                    serializable: false,
                },
                plan.secs,
                "l",
                &etcd.pids(),
            );
            let prefix = format!("{level} in flight");
            let table = ("reads-linear", LINEAR_TITLE);
            record_load(results, table, &prefix, ETCD, &s, false, true);
        }
    }
    let writes: Vec<&str> = ["writes-user", "writes-vm", "writes-template"]
        .into_iter()
        .filter(|w| plan.has(w))
        .collect();
    // A write run on the leader, `level` in flight.
    let on_leader = |op: Op, tag: &str, level: usize| {
        drive(
            rt,
            kvs(&[etcd.port(leader)], level),
            op,
            plan.secs,
            &run(&format!("{tag}{level}")),
            &etcd.pids(),
        )
    };
    if !writes.is_empty() {
        eprintln!("--- writes (etcd Put)");
        for &level in &plan.write_levels {
            let s = on_leader(Op::Put, "w", level);
            let prefix = format!("{level} in flight");
            for (k, w) in writes.iter().enumerate() {
                let table = (*w, write_title(w));
                record_load(
                    results,
                    (table.0, &table.1),
                    &prefix,
                    ETCD,
                    &s,
                    true,
                    k == 0,
                );
            }
        }
    }
    if plan.has("writes-user") {
        eprintln!("--- {HASHED} (etcd Auth/UserAdd, bcrypt)");
        for &level in &plan.write_levels {
            let s = on_leader(Op::UserAdd, "ua", level);
            let prefix = format!("{level} in flight");
            let table = (HASHED, write_title(HASHED));
            record_load(results, (HASHED, &table.1), &prefix, ETCD, &s, true, true);
            drain_etcd(rt, etcd.port(leader));
        }
    }
    if plan.has("fsync") {
        eprintln!("--- fsync (etcd)");
        if let Some(pid) = etcd.pid(leader) {
            let targets = kvs(&[etcd.port(leader)], 1);
            let calls = strace_syncs(pid, || {
                drive(rt, targets, Op::Put, plan.secs, &run("fsync"), &[])
            });
            record_sync(results, ETCD, calls);
        }
    }
    for (w, signal, title) in [
        ("failover", libc::SIGKILL, FAILOVER_TITLE),
        ("planned-stop", libc::SIGTERM, PLANNED_TITLE),
    ] {
        if !plan.has(w) {
            continue;
        }
        eprintln!("--- {w} (etcd)");
        for r in 0..plan.rounds {
            let leader = etcd.leader(rt);
            let mut probes: Vec<Target> = (0..etcd.len())
                .filter(|&i| i != leader)
                .map(|i| Target::Etcd(rt.block_on(async { Kv::new(etcd.port(i), RETRY_TIMEOUT) })))
                .collect();
            // Connect the probes first: gRPC keeps its connections, and the followers stay up.
            for p in &mut probes {
                let _ = rt.block_on(p.once(Op::Range { serializable: true }, ""));
            }
            let t0 = Instant::now();
            if let Some(pid) = etcd.pid(leader) {
                crate::sys::signal(pid, signal);
            }
            let tag = run(&format!("{w}{r}"));
            let took = probe_until_written(rt, t0, &mut probes, Op::Put, &tag);
            eprintln!("    round {r}: next acknowledged put after {took:.0} ms");
            results.add(w, title, &format!("round {r} ms"), ETCD, took);
            etcd.signal_and_reap(leader, signal);
            etcd.restart(rt, leader);
        }
    }
    let fill = !plan.fill_once || pass == 1;
    if fill && plan.has("rss") {
        let keys = plan.users + plan.vms;
        drop(etcd);
        eprintln!("--- rss: {keys} keys (etcd, fresh cluster)");
        let etcd = Etcd::start(rt);
        let port = etcd.port(etcd.leader(rt));
        let s = fill_count(
            rt,
            || Target::Etcd(rt.block_on(async { Kv::new(port, CALL_TIMEOUT) })),
            Op::Put,
            keys,
            &run("fill"),
        );
        eprintln!(
            "    {} keys in {:.0} s ({:.0}/s)",
            s.ok,
            s.secs,
            s.ops_per_sec()
        );
        results.add(
            "rss",
            &rss_title(plan),
            "fill: keys/s",
            ETCD,
            s.ops_per_sec(),
        );
        if s.ok == keys {
            record_rss(results, &rss_title(plan), ETCD, &etcd.pids());
        } else {
            eprintln!("    the fill failed: no RSS figure");
        }
    }
}

/// Orders the failover tables' rows into min / median / max, once every pass is in.
pub fn summarize_rounds(results: &mut Results) {
    for (name, _, rows) in &mut results.tables {
        if name != "failover" && name != "planned-stop" {
            continue;
        }
        let mut per_column: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (_, cols) in rows.iter() {
            for (c, v) in cols {
                per_column
                    .entry(c.clone())
                    .or_default()
                    .extend(v.iter().copied().filter(|x| x.is_finite()));
            }
        }
        let mut summary = Vec::new();
        for (label, pick) in [("min", 0usize), ("median", 1), ("max", 2), ("rounds", 3)] {
            let mut cols = BTreeMap::new();
            for (c, v) in &mut per_column {
                v.sort_by(f64::total_cmp);
                let x = match (pick, v.len()) {
                    (3, n) => n as f64,
                    (_, 0) => f64::NAN,
                    (0, _) => v[0],
                    (1, n) => v[n / 2],
                    (_, n) => v[n - 1],
                };
                cols.insert(c.clone(), vec![x]);
            }
            summary.push((label.to_string(), cols));
        }
        *rows = summary;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(workloads: &[&str]) -> Plan {
        Plan {
            secs: 1.0,
            write_levels: vec![1],
            read_levels: vec![16],
            rounds: 1,
            users: 1,
            vms: 1,
            vmpool_calls: 1,
            workloads: workloads.iter().map(|w| w.to_string()).collect(),
            fill_once: true,
        }
    }

    #[test]
    fn a_table_shows_the_mean_the_range_and_the_ratio_to_etcd() {
        let mut r = Results::default();
        r.add("writes-vm", "Writes", "1 in flight: ops/s", ONEHA, 100.0);
        r.add("writes-vm", "Writes", "1 in flight: ops/s", ONEHA, 300.0);
        r.add("writes-vm", "Writes", "1 in flight: ops/s", ETCD, 100.0);
        r.add(
            "writes-vm",
            "Writes",
            "1 in flight: load client CPU %",
            ONEHA,
            5.0,
        );
        r.add(
            "writes-vm",
            "Writes",
            "1 in flight: load client CPU %",
            ETCD,
            5.0,
        );
        let md = r.markdown();
        assert!(md.contains("#### Writes"), "{md}");
        assert!(md.contains("| | OneHA | etcd | OneHA / etcd |"), "{md}");
        assert!(
            md.contains("| 1 in flight: ops/s | 200 (100–300) | 100 | 2.00x |"),
            "{md}"
        );
        // The client's CPU is shown, not compared.
        assert!(
            md.contains("| 1 in flight: load client CPU % | 5.00 | 5.00 | - |"),
            "{md}"
        );
    }

    #[test]
    fn rounds_become_min_median_max() {
        let mut r = Results::default();
        for (i, ms) in [300.0, 100.0, 200.0].into_iter().enumerate() {
            r.add("failover", "F", &format!("round {i} ms"), ONEHA, ms);
        }
        summarize_rounds(&mut r);
        let md = r.markdown();
        assert!(md.contains("| min | 100 |"), "{md}");
        assert!(md.contains("| median | 200 |"), "{md}");
        assert!(md.contains("| max | 300 |"), "{md}");
    }

    #[test]
    fn smoke_flags_a_workload_without_a_figure() {
        let mut r = Results::default();
        r.add("failover", "F", "round 0 ms", ONEHA, 100.0);
        r.add("failover", "F", "round 0 ms", ETCD, f64::NAN);
        let p = plan(&["failover", "vmpool"]);
        let missing = r.missing(&p, true);
        assert_eq!(
            missing,
            vec![
                "failover: no etcd figure".to_string(),
                "vmpool: no table".to_string()
            ]
        );
        assert_eq!(r.missing(&p, false), vec!["vmpool: no table".to_string()]);
    }

    #[test]
    fn writes_user_needs_its_hashed_table_too() {
        let mut r = Results::default();
        for column in [ONEHA, ETCD] {
            r.add("writes-user", "W", "1 in flight: ops/s", column, 10.0);
        }
        r.add(HASHED, "H", "1 in flight: ops/s", ONEHA, 10.0);
        let p = plan(&["writes-user"]);
        assert_eq!(
            r.missing(&p, true),
            vec![format!("{HASHED}: no etcd figure")]
        );
        r.add(HASHED, "H", "1 in flight: ops/s", ETCD, 10.0);
        assert!(r.missing(&p, true).is_empty());
    }
}
