//! Linearizable reads served by a follower (ReadIndex, Raft thesis §6.4, as etcd does it).
//!
//! A follower asks the leader for a *read index* (peer call `readindex`): the leader passes its
//! read barrier ([`crate::ReadBarrier`]: a quorum confirmed it still leads after the call
//! arrived) and answers the index the barrier confirmed, its first entry of the term or its
//! commit index, whichever is later. Every write acknowledged before the read began is at or
//! below that index, so once the follower has applied it, its own database holds every one of
//! them and the read runs there. Entries up to a committed index are the same on every server,
//! so it does not matter from which leader the follower applies them.
//!
//! Reads that arrive together share one call, on the barrier's rule: a read waits for a call
//! that starts after it arrived, never for one already under way.
//!
//! Anything short of an index (no leader known, a leader that cannot be reached, that no longer
//! leads or speaks no `readindex`, a follower too far behind) tells the caller to send the read
//! to the leader instead ([`FollowerReadError::Forward`]), which handles elections and dead
//! leaders the way it does for writes. The leader's own refusals (no quorum, overloaded) are
//! the caller's answer, as they would be on the leader.

use std::time::Duration;

use openraft::error::{RPCError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::network::PeerNetwork;
use crate::types::{Raft, ServerNode};
use crate::{ReadBarrier, ReadError};

/// Reads waiting for a read index; past this a read is refused rather than queued.
const QUEUE: usize = 8192;
/// A follower further behind the read index than this many entries does not wait to catch up
/// (it may be installing a snapshot): the read goes to the leader.
const MAX_LAG: u64 = 4096;

/// What a follower sends with `readindex`: nothing but the signed call itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadIndexAsk;

/// The leader's answer: apply up to `index`, then read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadIndex {
    pub index: u64,
}

/// Why a follower did not read locally.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FollowerReadError {
    /// Send the read to the leader instead; the text says why, for the logs.
    #[error("{0}")]
    Forward(String),
    /// The leader refused: the read fails as it would on the leader.
    #[error(transparent)]
    Refused(ReadError),
}

/// The leader's side of `readindex`: its read barrier, then the index it confirmed.
pub(crate) async fn serve(
    reads: Option<&ReadBarrier>,
    _ask: ReadIndexAsk,
) -> Result<ReadIndex, RaftError<u64, ReadError>> {
    let Some(reads) = reads else {
        return Err(RaftError::APIError(ReadError::NotLeader));
    };
    telemetry::m::READ_INDEX_SERVED.inc();
    match reads.wait().await {
        Ok(index) => Ok(ReadIndex { index }),
        Err(e) => Err(RaftError::APIError(e)),
    }
}

type Waiter = oneshot::Sender<Result<u64, FollowerReadError>>;

/// The follower's side: shares `readindex` calls among the reads that arrive together, and
/// waits for the local apply.
#[derive(Clone)]
pub struct FollowerReads {
    queue: mpsc::Sender<Waiter>,
    raft: Raft,
    deadline: Duration,
}

impl FollowerReads {
    /// `deadline` bounds one read: the leader's confirmation plus catching up the local apply.
    ///
    /// The returned worker makes the calls: the caller runs it (oned's task supervisor);
    /// reads wait until it does.
    pub fn new(raft: Raft, net: PeerNetwork, deadline: Duration) -> (FollowerReads, crate::Worker) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let worker = Box::pin(run(raft.clone(), net, rx, deadline));
        (
            FollowerReads {
                queue,
                raft,
                deadline,
            },
            worker,
        )
    }

    /// Returns once a read of the local database is linearizable, or why it is not.
    pub async fn wait(&self) -> Result<(), FollowerReadError> {
        let until = tokio::time::Instant::now() + self.deadline;
        let (tx, rx) = oneshot::channel();
        self.queue
            .try_send(tx)
            .map_err(|_| FollowerReadError::Refused(ReadError::Overloaded))?;
        let index = rx.await.unwrap_or_else(|_| {
            Err(FollowerReadError::Refused(ReadError::Fatal(
                "follower reads stopped".into(),
            )))
        })?;
        let (applied, last_log) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (
                m.last_applied.map_or(0, |l| l.index),
                m.last_log_index.unwrap_or(0),
            )
        };
        if applied >= index {
            return Ok(());
        }
        if index > last_log.saturating_add(MAX_LAG) {
            return Err(FollowerReadError::Forward(format!(
                "this server's log ends at {last_log}, far behind the read index {index}"
            )));
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match self
            .raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "a follower read's index")
            .await
        {
            Ok(_) => Ok(()),
            Err(openraft::metrics::WaitError::Timeout(..)) => Err(FollowerReadError::Forward(
                format!("index {index} not applied here within {:?}", self.deadline),
            )),
            Err(openraft::metrics::WaitError::ShuttingDown) => Err(FollowerReadError::Refused(
                ReadError::Fatal("Raft is shutting down".into()),
            )),
        }
    }
}

async fn run(raft: Raft, net: PeerNetwork, rx: mpsc::Receiver<Waiter>, deadline: Duration) {
    crate::read_barrier::shared_rounds(rx, || ask(&raft, &net, deadline)).await
}

/// One `readindex` call to the leader this server knows now.
async fn ask(raft: &Raft, net: &PeerNetwork, deadline: Duration) -> Result<u64, FollowerReadError> {
    let Some((leader, node)) = leader_node(raft) else {
        return Err(FollowerReadError::Forward("no leader known".into()));
    };
    telemetry::m::READ_INDEX_ASKED.inc();
    // The leader's barrier may retry rounds up to the same deadline; a little more lets its
    // refusal arrive rather than a timeout here.
    let ttl = deadline + Duration::from_secs(1);
    match net.read_index_call(leader, &node, ttl).await {
        Ok(ReadIndex { index }) => Ok(index),
        Err(RPCError::RemoteError(e)) => match e.source {
            RaftError::APIError(ReadError::NotLeader) => Err(FollowerReadError::Forward(format!(
                "server {leader} no longer leads"
            ))),
            RaftError::APIError(refused) => Err(FollowerReadError::Refused(refused)),
            RaftError::Fatal(f) => Err(FollowerReadError::Refused(ReadError::Fatal(f.to_string()))),
        },
        // Unreachable, refused by the peer (an older oned knows no `readindex`), or lost: a
        // read can always be sent again, to the leader.
        Err(e) => Err(FollowerReadError::Forward(format!(
            "asking server {leader} for a read index: {e}"
        ))),
    }
}

/// The leader this server knows of, if it is another server and in the membership.
fn leader_node(raft: &Raft) -> Option<(u64, ServerNode)> {
    let m = raft.metrics();
    let m = m.borrow();
    let leader = m.current_leader.filter(|&l| l != m.id)?;
    let node = m.membership_config.membership().get_node(&leader)?.clone();
    Some((leader, node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{call_path, decode_request, parse_call_path, PeerRequest};

    #[test]
    fn readindex_is_a_peer_call_whose_empty_body_decodes() {
        let segment = call_path("readindex");
        let call = parse_call_path(&segment).unwrap();
        let body = bincode::serialize(&ReadIndexAsk).unwrap();
        assert!(matches!(
            decode_request(call, &body).unwrap(),
            PeerRequest::ReadIndex(ReadIndexAsk)
        ));
    }

    #[tokio::test]
    async fn a_server_without_a_read_barrier_refuses_as_not_the_leader() {
        let answer = serve(None, ReadIndexAsk).await;
        assert!(matches!(
            answer,
            Err(RaftError::APIError(ReadError::NotLeader))
        ));
        // The refusal crosses the wire as the follower decodes it.
        let bytes = bincode::serialize(&answer).unwrap();
        let back: Result<ReadIndex, RaftError<u64, ReadError>> =
            bincode::deserialize(&bytes).unwrap();
        assert!(matches!(
            back,
            Err(RaftError::APIError(ReadError::NotLeader))
        ));
    }
}
