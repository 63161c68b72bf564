//! The fault-injection suite: a real zone, clients on every server, faults from a seeded
//! schedule, then checks that nothing acknowledged was lost and no replica diverged.
//! See `docs/fault-testing.md`.

mod checks;
mod federated;
mod power;
mod round;
pub mod schedule;
pub mod vms;
mod votes;
pub mod workload;

pub use federated::{run_federated_round, FederatedRoundConfig};
pub use round::{run_round, RoundConfig, RoundReport};

/// Whether power-cut rounds can run here: a lossy filesystem mounts (root and `/dev/fuse`).
pub fn lossy_disks_available() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    lossyfs::Mount::new(dir.path())
        .map(drop)
        .map_err(|e| format!("mounting a lossy filesystem: {e}"))
}
