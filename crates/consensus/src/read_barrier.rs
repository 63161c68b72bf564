//! Linearizable reads on the leader. Before a read, the leader confirms with a quorum that it
//! still leads (a heartbeat round) and waits until it has applied everything committed when the
//! check began; only then can its local database not miss an acknowledged write. Reads that
//! arrive together share one confirmation, so a burst of reads costs one round, not one each.
//! A follower's read asks the leader for the same confirmation ([`crate::follower_read`]).

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::read_gate::{past_the_gate, ReadGate};
use crate::types::Raft;

/// Reads waiting for a confirmation; past this a read is refused rather than queued.
const QUEUE: usize = 8192;
/// Pause between confirmation rounds that missed a quorum.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Also the leader's refusal of a follower's read index call, so it crosses the wire.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ReadError {
    /// Another server leads (or an election runs): nothing was read here.
    #[error("not the leader")]
    NotLeader,
    /// No quorum confirmed the leadership within the deadline.
    #[error("no quorum: no majority confirmed this server's leadership within {0:?}")]
    NoQuorum(Duration),
    #[error("too many reads waiting on this server")]
    Overloaded,
    #[error("consensus stopped: {0}")]
    Fatal(String),
}

type Waiter = oneshot::Sender<Result<u64, ReadError>>;

#[derive(Clone)]
pub struct ReadBarrier {
    queue: mpsc::Sender<Waiter>,
}

impl ReadBarrier {
    /// `deadline` bounds one confirmation (quorum round plus catching up the local apply).
    ///
    /// The returned worker runs the confirmation rounds: the caller runs it (oned's task
    /// supervisor); reads wait until it does.
    pub fn new(raft: Raft, deadline: Duration) -> (ReadBarrier, crate::Worker) {
        ReadBarrier::with_gate(raft, deadline, ReadGate::open())
    }

    /// [`ReadBarrier::new`] for a server that restarted: until `gate` opens, a read index is at
    /// least its mark (`read_gate::past_the_gate`).
    pub fn with_gate(
        raft: Raft,
        deadline: Duration,
        gate: ReadGate,
    ) -> (ReadBarrier, crate::Worker) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (
            ReadBarrier { queue },
            Box::pin(run(raft, rx, deadline, gate)),
        )
    }

    /// Returns once a read of the local database is linearizable, or why it is not. The index
    /// returned is the read index: every write acknowledged before the call is at or below it,
    /// and this server has applied it.
    pub async fn wait(&self) -> Result<u64, ReadError> {
        let (tx, rx) = oneshot::channel();
        self.queue.try_send(tx).map_err(|_| ReadError::Overloaded)?;
        rx.await
            .unwrap_or_else(|_| Err(ReadError::Fatal("read barrier stopped".into())))
    }
}

async fn run(raft: Raft, rx: mpsc::Receiver<Waiter>, deadline: Duration, gate: ReadGate) {
    shared_rounds(rx, || async {
        match confirm(&raft, deadline).await {
            Ok(read) => past_the_gate(&raft, &gate, read, deadline).await,
            Err(e) => Err(e),
        }
    })
    .await
}

/// Runs `round` for the callers queued on `rx`, one round at a time, and tells every caller
/// taken for a round its outcome. Each caller taken for a round arrived before the round
/// started, which is what makes sharing it sound for reads; later arrivals wait for the next.
pub(crate) async fn shared_rounds<T, R, F>(mut rx: mpsc::Receiver<oneshot::Sender<T>>, mut round: R)
where
    T: Clone,
    R: FnMut() -> F,
    F: std::future::Future<Output = T>,
{
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let res = round().await;
        for w in waiters {
            // A failed send means that caller stopped waiting: nobody is left to tell.
            let _ = w.send(res.clone());
        }
    }
}

/// One confirmation, retried while rounds miss a quorum (a lost heartbeat is not a lost
/// leadership) until `deadline`.
async fn confirm(raft: &Raft, deadline: Duration) -> Result<u64, ReadError> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, raft.ensure_linearizable()).await {
            // The read log id: the leader's first entry of its term or its commit index,
            // whichever is later (openraft's `get_read_log_id`); nothing yet is index 0.
            Ok(Ok(read)) => return Ok(read.map_or(0, |l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                return Err(ReadError::NotLeader)
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                if tokio::time::Instant::now() >= until {
                    return Err(ReadError::NoQuorum(deadline));
                }
                // Refused connections fail a round at once; do not spin on them.
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(Err(RaftError::Fatal(f))) => return Err(ReadError::Fatal(f.to_string())),
            Err(_) => return Err(ReadError::NoQuorum(deadline)),
        }
    }
}
