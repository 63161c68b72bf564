//! The RAFT section's log retention, as OpenNebula defines it: every LOG_PURGE_TIMEOUT, every
//! server purges its log so that the newest LOG_RETENTION applied records stay, deleting at most
//! LIMIT_PURGE records per run and never a record that is not applied (nor one past the newest
//! snapshot, which a lagging follower would otherwise need).
//!
//! openraft's own purge after snapshots is turned off (`max_in_snapshot_log_to_keep`); this task
//! asks for purges instead. The log store records the purge and deletes the rows in the
//! background, so neither heartbeats nor writes wait for it.

use std::time::Duration;

use consensus::Raft;
use tracing::info;

use crate::config::RaftConfig;

/// The last index to purge now, if any: the newest `retention` applied records stay, at most
/// `limit` go, and nothing past the snapshot.
pub fn purge_upto(
    applied: Option<u64>,
    purged: Option<u64>,
    snapshot: Option<u64>,
    retention: u64,
    limit: u64,
) -> Option<u64> {
    let applied = applied?;
    let snapshot = snapshot?;
    // Records 0..=applied exist; keep (applied - retention, applied].
    let keep_from = applied.checked_sub(retention)?.checked_add(1)?;
    let target = (keep_from - 1).min(snapshot);
    let first = purged.map(|p| p + 1).unwrap_or(0);
    let upto = target.min(first.saturating_add(limit).saturating_sub(1));
    (upto >= first && purged.is_none_or(|p| upto > p)).then_some(upto)
}

/// The purge could not be asked for: Raft has stopped (the supervisor restarts the task).
#[derive(Debug, thiserror::Error)]
#[error("asking Raft to purge the log up to {upto}: {reason}")]
pub struct PurgeError {
    pub upto: u64,
    pub reason: String,
}

/// The retention task: every LOG_PURGE_TIMEOUT, asks Raft to purge what [`purge_upto`] allows.
pub async fn run(raft: Raft, cfg: RaftConfig) -> Result<(), PurgeError> {
    let (retention, limit, every) = (cfg.log_retention, cfg.limit_purge, cfg.log_purge_timeout);
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (applied, purged, snapshot, last) = {
            let m = raft.metrics();
            let m = m.borrow();
            (
                m.last_applied.map(|l| l.index),
                m.purged.map(|l| l.index),
                m.snapshot.map(|l| l.index),
                m.last_log_index,
            )
        };
        let Some(upto) = purge_upto(applied, purged, snapshot, retention, limit) else {
            continue;
        };
        raft.trigger()
            .purge_log(upto)
            .await
            .map_err(|e| PurgeError {
                upto,
                reason: e.to_string(),
            })?;
        let from = purged.map(|p| p + 1).unwrap_or(0);
        telemetry::m::PURGES.inc();
        telemetry::m::PURGED_RECORDS.add(upto + 1 - from);
        info!(
            records = upto + 1 - from,
            log_from = upto + 1,
            log_to = ?last,
            "purging obsolete log records"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_applied_records_and_purges_at_most_the_limit() {
        // 1000 applied, keep 100: records up to 900 may go, but 50 per run.
        assert_eq!(purge_upto(Some(1000), None, Some(1000), 100, 50), Some(49));
        assert_eq!(
            purge_upto(Some(1000), Some(49), Some(1000), 100, 50),
            Some(99)
        );
        assert_eq!(
            purge_upto(Some(1000), Some(849), Some(1000), 100, 500),
            Some(900)
        );
        assert_eq!(
            purge_upto(Some(1000), Some(900), Some(1000), 100, 500),
            None
        );
    }

    #[test]
    fn never_purges_past_the_snapshot_or_below_the_retention() {
        assert_eq!(
            purge_upto(Some(1000), None, Some(300), 100, 10_000),
            Some(300)
        );
        assert_eq!(purge_upto(Some(1000), None, None, 100, 10_000), None);
        assert_eq!(purge_upto(Some(90), None, Some(90), 100, 10_000), None);
        assert_eq!(purge_upto(None, None, Some(90), 100, 10_000), None);
        // Indexes start at 0: 0..=100 are 101 records, so index 0 may go.
        assert_eq!(purge_upto(Some(99), None, Some(99), 100, 10_000), None);
        assert_eq!(purge_upto(Some(100), None, Some(100), 100, 10_000), Some(0));
        assert_eq!(purge_upto(Some(101), None, Some(101), 100, 10_000), Some(1));
    }
}
