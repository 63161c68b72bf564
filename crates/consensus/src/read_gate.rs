//! Whether a server that restarted may serve reads from its own state database yet.
//!
//! The committed log id is saved lazily (with the next append, see [`crate::LogStore`]), and in
//! a zone the state database is written without fsync. So after a power cut a server can come
//! back with its state behind what it served before the cut, and openraft re-applies only up to
//! the committed id it finds on disk. Serving local reads at once would show a client state
//! older than it saw before: reads would go backwards.
//!
//! A server applies only entries of its own fsynced log, so everything it could have applied
//! before the cut is at or below the last index of its durable log at boot. Until its state has
//! applied that far the gate is closed: local reads are served as leader reads instead. A
//! truncation lowers the mark (the entries it removes were never committed, so never applied).
//! Once open, the gate stays open for the life of the process, except for what this server
//! showed through the leader: a read it passed on to the leader (while the gate was closed, or
//! because its log was far behind) answered with the leader's newer state, and local reads wait
//! until this server has applied that much ([`ReadGate::shown`]), or a client reading here
//! twice would see its second read go back in time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct ReadGate(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    open: AtomicBool,
    /// The applied index that opens the gate.
    mark: AtomicU64,
    /// The newest state an answer of this server reflected that came from the leader.
    shown: AtomicU64,
    /// The highest applied index seen by [`ReadGate::is_open`].
    reached: AtomicU64,
}

impl ReadGate {
    /// A gate waiting for `last` (the durable log's last index at boot) to be applied; open at
    /// once for an empty log.
    pub fn at_boot(last: Option<u64>) -> ReadGate {
        ReadGate(Arc::new(Inner {
            open: AtomicBool::new(last.is_none()),
            mark: AtomicU64::new(last.unwrap_or(0)),
            shown: AtomicU64::new(0),
            reached: AtomicU64::new(0),
        }))
    }

    /// A gate that is open already (tests of the log alone).
    pub fn open() -> ReadGate {
        ReadGate::at_boot(None)
    }

    /// Whether local reads may be served, given the applied index (asked only while the gate is
    /// closed or this server showed more than it applied, so an open gate costs three atomic
    /// loads).
    pub fn is_open(&self, applied: impl FnOnce() -> Option<u64>) -> bool {
        let inner = &self.0;
        let shown = inner.shown.load(Ordering::Acquire);
        if inner.open.load(Ordering::Acquire) && shown <= inner.reached.load(Ordering::Acquire) {
            return true;
        }
        let applied = applied();
        let now = applied.unwrap_or(0);
        inner.reached.fetch_max(now, Ordering::AcqRel);
        if !inner.open.load(Ordering::Acquire) {
            let mark = inner.mark.load(Ordering::Acquire);
            if applied.is_none_or(|a| a < mark) {
                return false;
            }
            inner.open.store(true, Ordering::Release);
            tracing::info!(
                applied_at_least = mark,
                "the state has caught up with the log found at start: serving local reads"
            );
        }
        now >= shown
    }

    /// This server answered with the leader's state as of `index` (a call it passed on): its
    /// local reads wait until it has applied that far.
    pub fn shown(&self, index: u64) {
        self.0.shown.fetch_max(index, Ordering::AcqRel);
    }

    /// The log is truncated from `index` on: what it held there was never committed, so never
    /// applied, and need not be waited for.
    pub(crate) fn truncated_from(&self, index: u64) {
        match index.checked_sub(1) {
            Some(below) => {
                self.0.mark.fetch_min(below, Ordering::AcqRel);
            }
            None => self.0.open.store(true, Ordering::Release),
        }
    }

    /// The applied index the gate waits for, or `None` once it is open.
    pub fn waits_for(&self) -> Option<u64> {
        if self.0.open.load(Ordering::Acquire) {
            None
        } else {
            Some(self.0.mark.load(Ordering::Acquire))
        }
    }
}

/// Raises a leader's read index to the gate's mark while the gate is closed, and waits (up to
/// `deadline`) until that is applied.
///
/// openraft restores a server whose vote was a committed one for itself as the leader at start,
/// with no election, and its read index is then its commit index as found on disk (or its first
/// entry of the term, an old one): saved lazily, it can be below writes this server acknowledged
/// before the restart. Those are all in its log at boot, at or below the mark.
pub(crate) async fn past_the_gate(
    raft: &crate::Raft,
    gate: &ReadGate,
    read: u64,
    deadline: std::time::Duration,
) -> Result<u64, crate::ReadError> {
    let Some(mark) = gate.waits_for() else {
        return Ok(read);
    };
    if read >= mark {
        return Ok(read);
    }
    match raft
        .wait(Some(deadline))
        .applied_index_at_least(Some(mark), "the log found at start applied")
        .await
    {
        Ok(_) => Ok(mark),
        Err(openraft::metrics::WaitError::Timeout(..)) => Err(crate::ReadError::NoQuorum(deadline)),
        Err(e) => Err(crate::ReadError::Fatal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_once_the_boot_index_is_applied_and_stays_open() {
        let gate = ReadGate::at_boot(Some(10));
        assert!(!gate.is_open(|| None));
        assert!(!gate.is_open(|| Some(9)));
        assert_eq!(gate.waits_for(), Some(10));
        assert!(gate.is_open(|| Some(10)));
        // Open for good: the applied index is not even asked again.
        assert!(gate.is_open(|| panic!("asked after opening")));
        assert_eq!(gate.waits_for(), None);
    }

    /// Found by the MySQL fault round of seed 1: a restarted follower far behind passed a read
    /// on to the leader, then opened its gate on the log it had at boot and answered the same
    /// client's next read from a state older than the leader's answer.
    #[test]
    fn what_the_leader_answered_for_this_server_is_waited_for() {
        let gate = ReadGate::at_boot(Some(10));
        assert!(!gate.is_open(|| Some(5)));
        // A read passed on to the leader showed its state at 40.
        gate.shown(40);
        assert!(!gate.is_open(|| Some(10)), "the boot mark is not enough");
        assert!(!gate.is_open(|| Some(39)));
        assert!(gate.is_open(|| Some(40)));
        assert!(gate.is_open(|| panic!("asked once past what was shown")));
        // Shown again later, beyond what is applied: local reads wait once more.
        gate.shown(55);
        assert!(!gate.is_open(|| Some(50)));
        assert!(gate.is_open(|| Some(56)));
        // Shown below what was reached: nothing to wait for.
        gate.shown(20);
        assert!(gate.is_open(|| panic!("asked for an index already reached")));
    }

    #[test]
    fn an_empty_log_needs_no_wait() {
        assert!(ReadGate::at_boot(None).is_open(|| None));
    }

    #[test]
    fn a_truncated_tail_is_not_waited_for() {
        let gate = ReadGate::at_boot(Some(10));
        gate.truncated_from(7);
        assert_eq!(gate.waits_for(), Some(6));
        // A later truncation above the mark changes nothing.
        gate.truncated_from(9);
        assert_eq!(gate.waits_for(), Some(6));
        assert!(gate.is_open(|| Some(6)));

        let whole = ReadGate::at_boot(Some(3));
        whole.truncated_from(0);
        assert!(whole.is_open(|| None));
    }
}
