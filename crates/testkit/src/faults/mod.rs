//! The fault-injection suite: a real zone, clients on every server, faults from a seeded
//! schedule, then checks that nothing acknowledged was lost and no replica diverged.
//! See `docs/fault-testing.md`.

mod checks;
mod round;
pub mod schedule;
pub mod workload;

pub use round::{run_round, RoundConfig, RoundReport};
