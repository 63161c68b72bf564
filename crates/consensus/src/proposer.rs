//! Batches concurrent writes into one log entry. openraft 0.9 appends and fsyncs each
//! `client_write` on its own, so one entry per request would cap throughput at the disk's fsync
//! rate; grouping whatever arrived while the previous entries were in flight costs no extra
//! latency and shares one fsync (on the leader and every follower) among many requests.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use sqlstore::{SqlTxn, TxnOutcome};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::types::{Batch, Raft, ServerNode};

/// Most transactions one entry carries; keeps entries (and AppendEntries) small.
const MAX_BATCH: usize = 256;
/// Entries proposed but not yet committed; overlaps one batch's replication with the next's fsync.
const IN_FLIGHT: usize = 4;
/// Requests waiting for a batch; past this a write is refused rather than queued without bound.
const QUEUE: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This server is not the leader (any more); nothing was written.
    #[error("not the leader")]
    NotLeader {
        leader: Option<u64>,
        node: Option<ServerNode>,
    },
    /// No commit within the deadline: a majority may be unreachable. The write may still commit
    /// later, so its outcome is unknown to the client.
    #[error("no quorum: the write was not committed within {0:?}; its outcome is unknown")]
    Timeout(Duration),
    #[error("too many writes queued on this server")]
    Overloaded,
    #[error("consensus stopped: {0}")]
    Fatal(String),
}

struct Pending {
    txn: SqlTxn,
    reply: oneshot::Sender<Result<TxnOutcome, WriteError>>,
}

#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
    deadline: Duration,
}

impl Proposer {
    /// `deadline` bounds how long a caller waits for its write to commit.
    pub fn start(raft: Raft, deadline: Duration) -> Proposer {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        Proposer { queue, deadline }
    }

    /// How long a caller waits for its write to commit.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub async fn submit(&self, txn: SqlTxn) -> Result<TxnOutcome, WriteError> {
        let (reply, wait) = oneshot::channel();
        self.queue
            .try_send(Pending { txn, reply })
            .map_err(|_| WriteError::Overloaded)?;
        match tokio::time::timeout(self.deadline, wait).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(WriteError::Fatal("proposer stopped".into())),
            Err(_) => Err(WriteError::Timeout(self.deadline)),
        }
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (txns, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.txn, p.reply)).unzip();
            let n = txns.len();
            let res = raft.client_write(Batch { txns }).await;
            drop(permit);
            match res {
                Ok(resp) => {
                    let mut outcomes = resp.data.outcomes.into_iter();
                    for reply in replies {
                        let out = outcomes.next().ok_or_else(|| {
                            WriteError::Fatal(format!("entry returned fewer than {n} outcomes"))
                        });
                        let _ = reply.send(out);
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            WriteError::NotLeader {
                                leader: f.leader_id,
                                node: f.leader_node,
                            }
                        }
                        RaftError::APIError(other) => WriteError::Fatal(other.to_string()),
                        RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}
