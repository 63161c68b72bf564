//! Runs the fault-injection suite against real `oned` processes (built next to this binary, or
//! `$ONEHA_ONED`). One round with `--seed`, or rounds with fresh random seeds for `--minutes`.
//! Exits 1 on the first failed round, printing the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use testkit::faults::{run_round, RoundConfig};

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
}

fn round(seed: u64, secs: u64, servers: usize, unsafe_reads: bool, crash: bool) -> bool {
    let cfg = RoundConfig {
        seed,
        duration: Duration::from_secs(secs),
        servers,
        leader_reads: !unsafe_reads,
        crash,
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| run_round(&cfg)));
    let replay = format!(
        "oneha-faults --seed {seed} --secs {secs} --servers {servers}{}{}",
        if unsafe_reads { " --unsafe-reads" } else { "" },
        if crash { " --crash" } else { "" }
    );
    match outcome {
        Ok(report) if report.violations.is_empty() => {
            println!(
                "PASS seed {seed} servers {servers} {secs}s ({} steps, {:.0}s in all)\n{}",
                report.steps,
                started.elapsed().as_secs_f64(),
                report.summary
            );
            true
        }
        Ok(report) => {
            println!(
                "FAIL seed {seed} servers {servers}: {} violation(s)\n{}\n{}\nreplay: {replay}",
                report.violations.len(),
                report.violations.join("\n"),
                report.summary
            );
            false
        }
        Err(_) => {
            println!("FAIL seed {seed} servers {servers}: the round panicked (see above)\nreplay: {replay}");
            false
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
    match (args.seed, args.minutes) {
        (Some(seed), _) => {
            if round(
                seed,
                args.secs,
                args.servers.unwrap_or(3),
                args.unsafe_reads,
                args.crash,
            ) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        (None, minutes) => {
            let budget = Duration::from_secs(60 * minutes.unwrap_or(1));
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < budget {
                let servers = args
                    .servers
                    .unwrap_or(if n.is_multiple_of(2) { 3 } else { 5 });
                let seed = random_seed();
                // Every third random round is a crash-safety round unless asked otherwise.
                let crash = args.crash || n % 3 == 2;
                if !round(seed, args.secs, servers, args.unsafe_reads, crash) {
                    return ExitCode::FAILURE;
                }
                n += 1;
            }
            println!(
                "all {n} rounds passed in {:.1} minutes",
                start.elapsed().as_secs_f64() / 60.0
            );
            ExitCode::SUCCESS
        }
    }
}
