//! Runs the fault-injection suite against real `oned` processes (built next to this binary, or
//! `$ONEHA_ONED`). One round with `--seed`, or rounds with fresh random seeds for `--minutes`.
//! Exits 1 on the first failed round, printing the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use testkit::faults::{run_federated_round, run_round, FederatedRoundConfig, RoundConfig};

#[derive(Parser)]
#[command(name = "oneha-faults", about = "OneHA fault-injection suite")]
struct Args {
    /// Seed of a single round (its fault schedule); random rounds when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of faults per round.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Servers in the zone (3 or 5); random rounds alternate 3 and 5 when not given.
    #[arg(long)]
    servers: Option<usize>,
    /// Keep running rounds with random seeds for this many minutes.
    #[arg(long)]
    minutes: Option<u64>,
    /// Self-test of the checker: register reads go to any server's local (stale) state instead
    /// of the leader, so a round with partitions must FAIL with a linearizability violation.
    #[arg(long)]
    unsafe_reads: bool,
    /// Crash-safety rounds: frequent SIGKILLs only, with a log window of 30 records.
    #[arg(long)]
    crash: bool,
    /// Power-cut rounds: every server's var/ on a lossy filesystem, cuts of one server, a
    /// minority and all of them, during backups and restores (needs root and /dev/fuse).
    #[arg(long)]
    power: bool,
    /// The power-cut campaign: power-cut rounds with random seeds until this many cuts passed.
    #[arg(long)]
    trials: Option<usize>,
    /// Self-test of the power-cut checks: disks that acknowledge fsync and keep nothing, so a
    /// round must FAIL with acknowledged writes lost. Implies --power.
    #[arg(long)]
    lying_disks: bool,
    /// Federated rounds: two 3-server zones federated (a master and a slave), faults in both,
    /// users created through every server; every zone must end with the same federated tables
    /// and every acknowledged user.
    #[arg(long, conflicts_with_all = ["unsafe_reads", "crash", "power", "trials", "lying_disks", "servers"])]
    federated: bool,
}

/// What a round is.
#[derive(Clone, Copy)]
struct Kind {
    unsafe_reads: bool,
    crash: bool,
    power: bool,
    lying_disks: bool,
    federated: bool,
}

/// Runs one round; the power cuts it made if it passed.
fn round(seed: u64, secs: u64, servers: usize, kind: Kind) -> Option<usize> {
    if kind.federated {
        return federated_round(seed, secs);
    }
    let cfg = RoundConfig {
        seed,
        duration: Duration::from_secs(secs),
        servers,
        leader_reads: !kind.unsafe_reads,
        crash: kind.crash,
        power: kind.power,
        lying_disks: kind.lying_disks,
        // Disks that lose writes make every VM figure wrong too: that self-test needs none.
        vm_clients: if kind.lying_disks { 0 } else { 2 },
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| run_round(&cfg)));
    let replay = format!(
        "oneha-faults --seed {seed} --secs {secs} --servers {servers}{}{}{}",
        if kind.unsafe_reads {
            " --unsafe-reads"
        } else {
            ""
        },
        if kind.crash { " --crash" } else { "" },
        if kind.lying_disks {
            " --lying-disks"
        } else if kind.power {
            " --power"
        } else {
            ""
        }
    );
    match outcome {
        Ok(report) if report.violations.is_empty() => {
            println!(
                "PASS seed {seed} servers {servers} {secs}s ({} steps, {} power cuts, {:.0}s in all)\n{}",
                report.steps,
                report.power_cuts,
                started.elapsed().as_secs_f64(),
                report.summary
            );
            Some(report.power_cuts)
        }
        Ok(report) => {
            println!(
                "FAIL seed {seed} servers {servers}: {} violation(s)\n{}\n{}\nreplay: {replay}",
                report.violations.len(),
                report.violations.join("\n"),
                report.summary
            );
            None
        }
        Err(_) => {
            println!("FAIL seed {seed} servers {servers}: the round panicked (see above)\nreplay: {replay}");
            None
        }
    }
}

fn federated_round(seed: u64, secs: u64) -> Option<usize> {
    let started = Instant::now();
    let cfg = FederatedRoundConfig {
        seed,
        duration: Duration::from_secs(secs),
    };
    let replay = format!("oneha-faults --federated --seed {seed} --secs {secs}");
    match catch_unwind(AssertUnwindSafe(|| run_federated_round(&cfg))) {
        Ok(report) if report.violations.is_empty() => {
            println!(
                "PASS federated seed {seed} {secs}s ({} steps, {:.0}s in all)\n{}",
                report.steps,
                started.elapsed().as_secs_f64(),
                report.summary
            );
            Some(0)
        }
        Ok(report) => {
            println!(
                "FAIL federated seed {seed}: {} violation(s)\n{}\n{}\nreplay: {replay}",
                report.violations.len(),
                report.violations.join("\n"),
                report.summary
            );
            None
        }
        Err(_) => {
            println!(
                "FAIL federated seed {seed}: the round panicked (see above)\nreplay: {replay}"
            );
            None
        }
    }
}

fn random_seed() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.servers {
        if n != 3 && n != 5 {
            eprintln!("--servers must be 3 or 5");
            return ExitCode::from(2);
        }
    }
    let power = args.power || args.trials.is_some() || args.lying_disks;
    if power {
        if let Err(e) = testkit::faults::lossy_disks_available() {
            eprintln!("power-cut rounds need root and /dev/fuse: {e}");
            return ExitCode::from(2);
        }
    }
    let kind = Kind {
        unsafe_reads: args.unsafe_reads,
        crash: args.crash,
        power,
        lying_disks: args.lying_disks,
        federated: args.federated,
    };
    if let Some(seed) = args.seed {
        return match round(seed, args.secs, args.servers.unwrap_or(3), kind) {
            Some(_) => ExitCode::SUCCESS,
            None => ExitCode::FAILURE,
        };
    }
    let budget =
        args.minutes
            .map(|m| Duration::from_secs(60 * m))
            .unwrap_or(if args.trials.is_some() {
                Duration::MAX
            } else {
                Duration::from_secs(60)
            });
    let start = Instant::now();
    let (mut n, mut cuts) = (0usize, 0usize);
    while start.elapsed() < budget && args.trials.is_none_or(|t| cuts < t) {
        let servers = args
            .servers
            .unwrap_or(if n.is_multiple_of(2) { 3 } else { 5 });
        let seed = random_seed();
        // Every third random round is a crash-safety round unless asked otherwise.
        let kind = Kind {
            crash: kind.crash || (!power && !kind.federated && n % 3 == 2),
            ..kind
        };
        match round(seed, args.secs, servers, kind) {
            Some(c) => cuts += c,
            None => return ExitCode::FAILURE,
        }
        n += 1;
        if power {
            println!("campaign: {cuts} power cuts passed in {n} rounds");
        }
    }
    println!(
        "all {n} rounds passed in {:.1} minutes{}",
        start.elapsed().as_secs_f64() / 60.0,
        if power {
            format!(", {cuts} power cuts")
        } else {
            String::new()
        }
    );
    ExitCode::SUCCESS
}
