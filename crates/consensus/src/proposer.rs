//! Batches concurrent writes into one log entry. openraft 0.9 appends and fsyncs each
//! `client_write` on its own, so one entry per request would cap throughput at the disk's fsync
//! rate; grouping whatever arrived while the previous entries were in flight costs no extra
//! latency and shares one fsync (on the leader and every follower) among many requests.
//!
//! Every entry costs the zone about the same whatever it carries (an fsync and a commit on each
//! server, an AppendEntries to each follower, the wake-ups between their threads): ~1.3 ms of
//! CPU on the benchmark's machine, against ~0.06 ms per write in it. So an entry opens beside
//! those in flight only for at least as many waiting writes as they carry ([`opens_entry`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use sqlstore::{SqlTxn, TxnOutcome};
use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::callers::{answer_each, Callers, Route};
use crate::types::{Batch, Raft};

/// Most transactions one entry carries; keeps entries (and AppendEntries) small.
const MAX_BATCH: usize = 256;
/// Most bytes one entry carries when it holds more than one transaction. A transaction larger
/// than this travels alone in its entry, so one client's large writes never pile up with others'
/// into an entry that no peer call could carry within its timeout.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
/// Bytes of large writes waiting for their turn; past this a large write is refused at once.
const MAX_QUEUED_LARGE_BYTES: usize = 128 << 20;
/// Entries proposed but not yet committed; overlaps one batch's replication with the next's fsync.
const IN_FLIGHT: usize = 4;
/// Requests waiting for a batch; past this a write is refused rather than queued without bound.
const QUEUE: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This server is not the leader (any more); nothing was written. Who leads is for the
    /// caller to read from the metrics, where the election result is.
    #[error("not the leader")]
    NotLeader,
    /// No commit within the deadline: a majority may be unreachable. The write may still commit
    /// later, so its outcome is unknown to the client.
    #[error("no quorum: the write was not committed within {0:?}; its outcome is unknown")]
    Timeout(Duration),
    #[error("too many writes queued on this server")]
    Overloaded,
    /// The transaction alone is larger than an entry may be; nothing was proposed.
    #[error("the change is too large to replicate: {size} bytes, the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("consensus stopped: {0}")]
    Fatal(String),
    /// The state database is unavailable (a lost MySQL server): nothing was proposed.
    #[error("{0}")]
    Unavailable(String),
    /// The entry was applied, but the state database's connection was lost as it committed,
    /// and with it what the transaction answered.
    #[error("the state database connection was lost as the change committed: it is applied, but its result is unknown")]
    OutcomeLost,
}

impl From<crate::Error> for WriteError {
    /// A solo server's apply failed: the database, not the request.
    fn from(e: crate::Error) -> WriteError {
        WriteError::Fatal(e.to_string())
    }
}

struct Pending {
    txn: SqlTxn,
    /// `txn.approx_bytes()`, computed once.
    size: usize,
    reply: oneshot::Sender<Result<TxnOutcome, WriteError>>,
}

#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
    deadline: Duration,
    max_txn_bytes: usize,
}

impl Proposer {
    /// `deadline` bounds how long a caller waits for its write to commit; `max_txn_bytes` is the
    /// largest transaction proposed at all (larger ones are refused before they reach the log).
    ///
    /// The returned worker batches and proposes what callers queue: the caller runs it (oned's
    /// task supervisor); writes wait until it does.
    pub fn new(raft: Raft, deadline: Duration, max_txn_bytes: usize) -> (Proposer, crate::Worker) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let proposer = Proposer {
            queue,
            deadline,
            max_txn_bytes,
        };
        (proposer, Box::pin(run(raft, rx)))
    }

    /// How long a caller waits for its write to commit.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub async fn submit(&self, txn: SqlTxn) -> Result<TxnOutcome, WriteError> {
        let size = txn.approx_bytes();
        if size > self.max_txn_bytes {
            return Err(WriteError::TooLarge {
                size,
                limit: self.max_txn_bytes,
            });
        }
        let (reply, wait) = oneshot::channel();
        self.queue
            .try_send(Pending { txn, size, reply })
            .map_err(|_| {
                telemetry::m::PROPOSER_OVERLOADED.inc();
                WriteError::Overloaded
            })?;
        match tokio::time::timeout(self.deadline, wait).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(WriteError::Fatal("proposer stopped".into())),
            Err(_) => Err(WriteError::Timeout(self.deadline)),
        }
    }
}

/// Requests sorted out of the queue: small ones share entries; large ones (a lone transaction
/// over [`MAX_ENTRY_BYTES`]) go one entry at a time, one in flight at a time. Small writes are
/// proposed first, so a small write waits behind at most one large entry: one client's large
/// writes slow down only large writes.
#[derive(Default)]
struct Lanes {
    small: VecDeque<Pending>,
    small_bytes: usize,
    large: VecDeque<Pending>,
    large_bytes: usize,
}

impl Lanes {
    fn sort(&mut self, p: Pending) {
        if p.size <= MAX_ENTRY_BYTES {
            self.small_bytes += p.size;
            self.small.push_back(p);
        } else if self.large_bytes + p.size > MAX_QUEUED_LARGE_BYTES {
            // A failed send means the caller stopped waiting: nobody is left to tell.
            let _ = p.reply.send(Err(WriteError::Overloaded));
        } else {
            self.large_bytes += p.size;
            self.large.push_back(p);
        }
    }

    /// Up to one entry's worth of small requests.
    fn small_batch(&mut self) -> Vec<Pending> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(p) = self.small.front() {
            if !batch.is_empty() && (batch.len() >= MAX_BATCH || bytes + p.size > MAX_ENTRY_BYTES) {
                break;
            }
            bytes += p.size;
            if let Some(p) = self.small.pop_front() {
                batch.push(p);
            }
        }
        self.small_bytes -= bytes;
        batch
    }

    /// Whether the small requests waiting fill an entry on their own.
    fn small_full(&self) -> bool {
        self.small.len() >= MAX_BATCH || self.small_bytes >= MAX_ENTRY_BYTES
    }

    fn next_large(&mut self) -> Option<Pending> {
        let p = self.large.pop_front()?;
        self.large_bytes -= p.size;
        Some(p)
    }
}

/// Whether `waiting` small writes get an entry of their own now, beside `entries` entries in flight
/// that carry `writes` writes, rather than waiting for more writes or for one of those entries to
/// commit. With nothing in flight a write never waits. Under load this keeps entries large: the
/// writes answered by a commit come back a few at a time, and without it each of the first would
/// take a slot alone (at 32 writers in flight, three entries in four carried one write, and the
/// zone spent a third more CPU per write; docs/benchmarks.md, eighteenth round). A few writers
/// still pipeline: one write waiting beside one in flight opens its own entry.
fn opens_entry(entries: usize, writes: usize, waiting: usize, full: bool) -> bool {
    entries == 0 || full || waiting >= writes
}

/// The writes carried by the entries this task proposed, until each is committed (or failed).
/// The entries themselves are the slots' permits taken.
#[derive(Default)]
struct InFlight {
    writes: AtomicUsize,
    /// Told whenever one of them is done.
    done: Notify,
}

/// One proposed entry: its slot's permit and its share of [`InFlight`], given back when dropped.
struct Slot {
    in_flight: Arc<InFlight>,
    writes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    fn take(in_flight: &Arc<InFlight>, writes: usize, permit: OwnedSemaphorePermit) -> Slot {
        in_flight.writes.fetch_add(writes, Ordering::Relaxed);
        Slot {
            in_flight: in_flight.clone(),
            writes,
            permit: Some(permit),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight
            .writes
            .fetch_sub(self.writes, Ordering::Relaxed);
        // The permit goes back before the proposer is told, so it counts this entry as done.
        drop(self.permit.take());
        self.in_flight.done.notify_one();
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let large_slot = Arc::new(Semaphore::new(1));
    let in_flight = Arc::new(InFlight::default());
    let mut lanes = Lanes::default();
    let mut open = true;
    loop {
        while lanes.small.len() < MAX_BATCH * IN_FLIGHT {
            match rx.try_recv() {
                Ok(p) => lanes.sort(p),
                Err(_) => break,
            }
        }
        let large_ready = !lanes.large.is_empty() && large_slot.available_permits() > 0;
        if lanes.small.is_empty() && !large_ready {
            if !open && lanes.large.is_empty() {
                return;
            }
            tokio::select! {
                p = rx.recv(), if open => match p {
                    Some(p) => lanes.sort(p),
                    None => open = false,
                },
                // Wakes up when the large entry in flight is done.
                _ = large_slot.acquire(), if !lanes.large.is_empty() => {}
            }
            continue;
        }
        let entries = IN_FLIGHT - slots.available_permits();
        let writes = in_flight.writes.load(Ordering::Relaxed);
        if !large_ready && !opens_entry(entries, writes, lanes.small.len(), lanes.small_full()) {
            tokio::select! {
                p = rx.recv(), if open => match p {
                    Some(p) => lanes.sort(p),
                    None => open = false,
                },
                // A notice left by an entry done before this wait began ends it at once.
                _ = in_flight.done.notified() => {}
            }
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        if !lanes.small.is_empty() {
            let batch = lanes.small_batch();
            let slot = Slot::take(&in_flight, batch.len(), permit);
            tokio::spawn(propose(raft.clone(), batch, slot, None));
        } else if let Ok(large) = large_slot.clone().try_acquire_owned() {
            if let Some(p) = lanes.next_large() {
                let slot = Slot::take(&in_flight, 1, permit);
                tokio::spawn(propose(raft.clone(), vec![p], slot, Some(large)));
            }
        }
    }
}

/// Proposes one entry. Its requests are answered as soon as the entry's apply commits
/// ([`Callers`]: a lone caller by the state database's thread, many by this task once that thread
/// hands it their outcomes), or from `client_write`'s result when that comes first (the entry
/// was read back from the database, or the write failed).
async fn propose(raft: Raft, batch: Vec<Pending>, slot: Slot, large: Option<OwnedSemaphorePermit>) {
    telemetry::m::PROPOSER_BATCH.observe(batch.len() as f64);
    let (txns, mut replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.txn, p.reply)).unzip();
    let (to_here, mut applied) = oneshot::channel();
    let callers = match (replies.pop(), replies.is_empty()) {
        (Some(lone), true) => Callers::new(Route::Caller(lone)),
        (last, _) => {
            replies.extend(last);
            Callers::new(Route::Proposer(to_here))
        }
    };
    let write = raft.client_write(Batch {
        txns: txns.into(),
        callers: callers.clone(),
    });
    tokio::pin!(write);
    let res = tokio::select! {
        biased;
        Ok(outcomes) = &mut applied => {
            answer_each(std::mem::take(&mut replies), outcomes);
            write.await
        }
        res = &mut write => res,
    };
    drop(slot);
    drop(large);
    let Some(route) = callers.take() else {
        // The state database's thread took the route: it answered the lone caller, or sent this
        // task the outcomes (already used above, unless `write` was ready first).
        if !replies.is_empty() {
            if let Ok(outcomes) = applied.await {
                answer_each(replies, outcomes);
            }
        }
        return;
    };
    // Still armed: the entry was applied without its callers (read back from the database), or
    // the write failed.
    if let Route::Caller(lone) = route {
        replies.push(lone);
    }
    match res {
        Ok(resp) => {
            telemetry::m::WRITES_ANSWERED_BY_RAFT.inc();
            answer_each(replies, resp.data.outcomes);
        }
        Err(e) => {
            let err = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => WriteError::NotLeader,
                RaftError::APIError(other) => WriteError::Fatal(other.to_string()),
                RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
            };
            for reply in replies {
                // A caller that timed out is not waiting any more.
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::opens_entry;

    #[test]
    fn a_write_never_waits_when_nothing_is_in_flight() {
        assert!(opens_entry(0, 0, 1, false));
    }

    #[test]
    fn a_few_writers_still_pipeline() {
        // One writer's entry in flight, a second writer's write waiting: it goes at once.
        assert!(opens_entry(1, 1, 1, false));
        assert!(opens_entry(2, 3, 3, false));
    }

    #[test]
    fn under_load_a_write_waits_for_as_many_as_are_in_flight() {
        // 24 writes in flight, the first answered writers' next writes trickle in.
        assert!(!opens_entry(1, 24, 1, false));
        assert!(!opens_entry(1, 24, 23, false));
        assert!(opens_entry(1, 24, 24, false));
    }

    #[test]
    fn a_full_entry_always_goes() {
        assert!(opens_entry(3, 768, 256, true));
    }
}
