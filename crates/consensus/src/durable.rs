//! How far this server's log is on disk.
//!
//! openraft 0.9 waits for the leader's own fsync of an append before it replicates it, so a
//! write costs the leader's fsync and then a follower's, one after the other. A leader's log
//! store may instead report its own appends flushed as soon as they are queued
//! ([`crate::LogStore::flush_in_parallel_when_leading`]): the fsync then runs while the entries
//! travel to the followers, as etcd does. Raft stays safe because nothing may depend on an
//! entry before a majority holds it *on disk*, and the leader's copy is one of the majority:
//! - a follower's acknowledgement of an index reaches openraft only once the leader's log is on
//!   disk up to it ([`crate::network`]), so the commit index, which a majority's
//!   acknowledgements move, never passes the leader's durable log when other voters exist;
//! - the state machine applies an entry only once it is on disk here ([`crate::StateMachine`]),
//!   which covers a zone of one voter, whose commit index is its own log.
//!
//! - a server never resumes its own leadership at start ([`crate::LogStore`]'s `read_vote`):
//!   its followers may hold a tail it lost, and leading the same term again it would write
//!   other entries under those log ids, which the followers would take for the ones they hold.
//!
//! A leader that crashes before its fsync lost only entries nobody applied or acknowledged.

use openraft::LogId;
use tokio::sync::watch;

/// The newest entry on disk, and whether a write of the log failed since (then nothing more
/// will be: the server must stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OnDisk {
    last: Option<LogId<u64>>,
    failed: bool,
}

/// The log writer's side.
#[derive(Debug)]
pub(crate) struct DurableSender(watch::Sender<OnDisk>);

impl DurableSender {
    pub(crate) fn new(last: Option<LogId<u64>>) -> DurableSender {
        DurableSender(watch::Sender::new(OnDisk {
            last,
            failed: false,
        }))
    }

    /// Entries up to `last` are on disk.
    pub(crate) fn written(&self, last: LogId<u64>) {
        self.0.send_modify(|d| d.last = Some(last));
    }

    /// The log was cut back to `last` (a follower's conflicting entries removed).
    pub(crate) fn truncated(&self, last: Option<LogId<u64>>) {
        self.0.send_modify(|d| {
            if d.last > last {
                d.last = last;
            }
        });
    }

    /// A write of the log failed: whoever waits is told, now and from now on.
    pub(crate) fn failed(&self) {
        self.0.send_modify(|d| d.failed = true);
    }

    pub(crate) fn subscribe(&self) -> DurableLog {
        DurableLog(self.0.subscribe())
    }
}

/// What waits for the log to be on disk.
#[derive(Debug, Clone)]
pub struct DurableLog(watch::Receiver<OnDisk>);

/// The log writer failed, or stopped, before the log reached the index waited for.
#[derive(Debug, thiserror::Error)]
#[error("the log is not on disk up to index {index}: its writer failed or stopped")]
pub struct NotDurable {
    pub index: u64,
}

impl DurableLog {
    /// Waits until the log is on disk up to `index`.
    pub async fn reached(&self, index: u64) -> Result<(), NotDurable> {
        let mut rx = self.0.clone();
        let done = rx
            .wait_for(|d| d.failed || d.last.is_some_and(|l| l.index >= index))
            .await
            .map(|d| !d.failed);
        match done {
            Ok(true) => Ok(()),
            _ => Err(NotDurable { index }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use openraft::CommittedLeaderId;
    use std::time::Duration;

    fn at(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_index_is_written_and_fails_when_the_writer_does() {
        let tx = DurableSender::new(Some(at(3)));
        let log = tx.subscribe();
        log.reached(3).await.unwrap();
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.reached(5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "index 5 is not on disk yet");
        tx.written(at(5));
        waiting.await.unwrap().unwrap();

        tx.truncated(Some(at(4)));
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.reached(5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "index 5 was cut from the log");
        tx.failed();
        assert!(waiting.await.unwrap().is_err());
        assert!(
            log.reached(1).await.is_err(),
            "a failed log answers every wait"
        );
    }

    #[tokio::test]
    async fn a_stopped_writer_fails_the_waits() {
        let tx = DurableSender::new(None);
        let log = tx.subscribe();
        drop(tx);
        assert!(log.reached(0).await.is_err());
    }
}
