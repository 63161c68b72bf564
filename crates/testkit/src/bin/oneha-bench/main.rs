//! Issue 16's measurements: OneHA against etcd on the same machine, in one run, the same load
//! client driving both. Results are printed as markdown tables for `docs/benchmarks.md`.
//!
//! `oneha-bench compare` runs the selected workloads against a fresh 3-server OneHA zone (the
//! `oned` built next to this binary, or `$ONEHA_ONED`), then against a fresh 3-member etcd
//! cluster, and again, A B A B, so that drift of a shared machine hits both alike. OneHA is
//! driven over `/RPC2` both with a new connection per call (OpenNebula's Ruby CLI) and with
//! kept-alive connections (pyone, Terraform, Sunstone); etcd through its native gRPC API on
//! kept-alive connections, as its users run it. Both fsync their logs; both elect with a
//! 1000 ms timeout and 100 ms heartbeats. Progress goes to stderr, the tables to stdout.
//!
//! `oneha-bench compare --smoke` is CI's: every workload briefly, checking only that each
//! produced a figure.

mod etcd;
mod load;
mod rpc;
mod suite;
mod sys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use suite::{Plan, Results, WORKLOADS};

#[derive(Parser)]
#[command(
    name = "oneha-bench",
    about = "OneHA against etcd: load, failover, CPU, memory"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the workloads on OneHA and etcd, alternating, and prints one table per workload.
    Compare(Compare),
}

#[derive(clap::Args)]
struct Compare {
    /// Seconds per load run.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Passes of OneHA then etcd (2: A B A B).
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Workloads to run, comma-separated (default: all): writes-user, writes-vm,
    /// writes-template, reads-follower, reads-linear, fsync, failover, planned-stop, rss, vmpool.
    /// writes-user is compared with etcd `Put` and with etcd `Auth/UserAdd` (a bcrypt hash).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Calls in flight of the write runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32, 64, 128])]
    writes: Vec<usize>,
    /// Calls in flight of the read runs.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64])]
    reads: Vec<usize>,
    /// Leader stops per pass for `failover` and `planned-stop`.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Users created before measuring RSS (each an argon2id hash on the leader).
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// VMs created before measuring RSS and `one.vmpool.info`.
    #[arg(long, default_value_t = 10_000)]
    vms: u64,
    /// `one.vmpool.info*` calls whose median is reported.
    #[arg(long, default_value_t = 7)]
    vmpool_calls: usize,
    /// Fill the stores (rss, vmpool) in every pass, not only the first.
    #[arg(long)]
    fill_every_pass: bool,
    /// Threads of the load client's runtime (1: one current-thread runtime, the cheapest per
    /// call; raise it if a run prints that the client is saturated).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Only OneHA.
    #[arg(long)]
    no_etcd: bool,
    /// CI: every workload for a moment (1 s runs, 1 round, small stores, one pass); fails only
    /// if a workload produced no figure.
    #[arg(long)]
    smoke: bool,
}

fn main() -> ExitCode {
    let Command::Compare(mut c) = Args::parse().command;
    if c.smoke {
        c.secs = 1.0;
        c.passes = 1;
        c.writes = vec![1, 16];
        c.reads = vec![16];
        c.rounds = 1;
        c.users = 20;
        c.vms = 100;
        c.vmpool_calls = 3;
    }
    let workloads = if c.only.is_empty() {
        WORKLOADS.iter().map(|w| w.to_string()).collect()
    } else {
        c.only.clone()
    };
    if let Some(w) = workloads.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        eprintln!(
            "oneha-bench: unknown workload {w}; known: {}",
            WORKLOADS.join(", ")
        );
        return ExitCode::from(2);
    }
    let plan = Plan {
        secs: c.secs,
        write_levels: c.writes,
        read_levels: c.reads,
        rounds: c.rounds,
        users: c.users,
        vms: c.vms,
        vmpool_calls: c.vmpool_calls,
        workloads,
        fill_once: !c.fill_every_pass,
    };
    let etcd = !c.no_etcd && etcd::Etcd::installed();
    if !c.no_etcd && !etcd {
        eprintln!("oneha-bench: etcd is not installed (apt-get install etcd-server): skipping the etcd side");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oneha-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let mut results = Results::default();
    for pass in 1..=c.passes {
        suite::oneha_pass(&rt, &plan, &mut results, pass);
        if etcd {
            suite::etcd_pass(&rt, &plan, &mut results, pass);
        }
    }
    suite::summarize_rounds(&mut results);
    println!("{}", results.markdown());
    eprintln!(
        "oneha-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let missing = results.missing(&plan, etcd);
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("oneha-bench: {m}");
        }
        if c.smoke {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
