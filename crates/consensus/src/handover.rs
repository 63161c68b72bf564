//! Handing leadership over at an orderly stop of the leader (SIGTERM, `systemctl stop`), so
//! clients wait for one election round trip instead of an election timeout.
//!
//! openraft 0.9 has no leadership transfer. The leader builds one from what it has:
//! 1. it stops taking writes (the step-down mark: oned then holds new writes as a follower
//!    does during an election, and forwards them to the next leader);
//! 2. it waits, bounded, until the most up-to-date follower's matched index is the last index
//!    of its log: that follower, the *successor*, holds every acknowledged write;
//! 3. it asks every other voter to *release* (peer call `release`): they campaign once, which
//!    fails (the successor and the leader still hold the leader's lease) but leaves each one's
//!    vote its own and uncommitted, so it grants a higher term without the lease check;
//! 4. it asks the successor to *campaign* (peer call `campaign`): two terms up, so it outranks
//!    the released voters' own candidacies, whose logs are no longer than its own.
//!
//! While it hands over, the leader refuses (in [`crate::network::serve`]) the vote of every
//! candidate but the successor, so a released voter cannot win in its place. Both calls name
//! the leader and its term; a server whose leader or term differs ignores them, so a late or
//! replayed call cannot disturb a later term. Every step is an ordinary Raft campaign or a
//! refused vote: Raft's safety does not depend on any of it, and if anything fails the
//! followers' election timeout elects a leader as after any other stop.

use std::sync::Mutex;
use std::time::Duration;

use openraft::error::RaftError;
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::network::PeerNetwork;
use crate::types::Raft;

/// What `release` and `campaign` carry: whose leadership, in which term.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handover {
    pub leader: u64,
    pub term: u64,
}

/// The handover under way in this process: (this server, its successor). One oned process is
/// one server; the id makes a second Raft in the same process (a test) ignore it.
static HANDING_TO: Mutex<Option<(u64, u64)>> = Mutex::new(None);

fn handing_to(me: u64) -> Option<u64> {
    match *HANDING_TO.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((from, to)) if from == me => Some(to),
        _ => None,
    }
}

fn set_handing_to(v: Option<(u64, u64)>) {
    *HANDING_TO.lock().unwrap_or_else(|e| e.into_inner()) = v;
}

/// A vote request, unless this server is handing over to someone else than its candidate: then
/// the refusal to send back, as a node whose lease is still running answers.
pub(crate) async fn refuse_during_handover(
    raft: &Raft,
    req: &VoteRequest<u64>,
) -> Option<VoteResponse<u64>> {
    let me = raft.metrics().borrow().id;
    let to = handing_to(me)?;
    if req.vote.leader_id().voted_for() == Some(to) {
        return None;
    }
    let vote = raft.with_raft_state(|st| *st.vote_ref()).await.ok()?;
    tracing::info!(candidate = ?req.vote.leader_id().voted_for(), "refused a vote while handing over");
    // No last log id: the candidate reads it only to delay its next campaign behind a longer
    // log, which the successor's campaign does not need.
    Some(VoteResponse::new(vote, None, false))
}

/// What a server does with `release` or `campaign` from its leader: campaigns once (`release`)
/// or twice (`campaign`, to outrank the released voters), if `h` is still its leader and term.
pub(crate) async fn serve(
    raft: &Raft,
    h: Handover,
    campaigns: u32,
) -> Result<bool, RaftError<u64>> {
    let current = {
        let m = raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Follower
            && m.current_leader == Some(h.leader)
            && m.current_term == h.term
    };
    if !current {
        return Ok(false);
    }
    for _ in 0..campaigns {
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!(error = %e, "could not campaign at the leader's request");
            return Ok(false);
        }
    }
    tracing::info!(
        leader = h.leader,
        term = h.term,
        campaigns,
        "campaigned at the leader's request"
    );
    Ok(true)
}

/// Why a handover did not happen; the stop goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("this server does not lead")]
    NotLeader,
    #[error("no other voter to hand over to")]
    Alone,
    #[error("no follower caught up within {0:?}")]
    NoneCaughtUp(Duration),
    #[error("server {0} did not take the leadership within {1:?}")]
    NotTaken(u64, Duration),
}

/// The leader's side, steps 2-4 of the module's list (the caller has already stopped taking
/// writes); returns the new leader. `within` bounds each wait.
pub async fn hand_over(
    raft: &Raft,
    net: &PeerNetwork,
    within: Duration,
) -> Result<u64, HandoverError> {
    let (me, term, voters) = {
        let m = raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader {
            return Err(HandoverError::NotLeader);
        }
        let voters: Vec<u64> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&v| v != m.id)
            .collect();
        (m.id, m.current_term, voters)
    };
    if voters.is_empty() {
        return Err(HandoverError::Alone);
    }
    // The successor: a voter whose log matches ours to the last index.
    let caught_up = raft
        .wait(Some(within))
        .metrics(
            |m| {
                let last = m.last_log_index;
                m.replication.as_ref().is_some_and(|r| {
                    voters
                        .iter()
                        .any(|v| r.get(v).is_some_and(|x| x.map(|l| l.index) == last))
                })
            },
            "a follower caught up",
        )
        .await
        .map_err(|_| HandoverError::NoneCaughtUp(within))?;
    let last = caught_up.last_log_index;
    let Some(to) = voters.iter().copied().find(|v| {
        caught_up
            .replication
            .as_ref()
            .and_then(|r| r.get(v))
            .is_some_and(|x| x.map(|l| l.index) == last)
    }) else {
        return Err(HandoverError::NoneCaughtUp(within));
    };
    let nodes = caught_up.membership_config.membership().clone();
    let h = Handover { leader: me, term };
    set_handing_to(Some((me, to)));
    tracing::info!(to, term, last_index = ?last, "handing leadership over");
    // A handful of voters, released together: the wait is the slowest call's.
    let mut releases = tokio::task::JoinSet::new();
    for v in voters.iter().copied().filter(|&v| v != to) {
        if let Some(node) = nodes.get_node(&v).cloned() {
            let net = net.clone();
            releases.spawn(async move { (v, net.handover_call(v, &node, "release", h).await) });
        }
    }
    while let Some(done) = releases.join_next().await {
        match done {
            Ok((_, Ok(_))) => {}
            Ok((v, Err(e))) => {
                tracing::warn!(server = v, error = %e, "a voter did not release the lease")
            }
            Err(e) => tracing::warn!(error = %e, "a release call failed"),
        }
    }
    let result = match nodes.get_node(&to) {
        Some(node) => net.handover_call(to, node, "campaign", h).await,
        None => Err("not in the membership".to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(server = to, error = %e, "the successor did not campaign");
    }
    let taken = raft
        .wait(Some(within))
        .metrics(
            |m| m.current_term > term && m.current_leader.is_some_and(|l| l != me),
            "a new leader",
        )
        .await;
    set_handing_to(None);
    match taken {
        Ok(m) => {
            telemetry::m::HANDOVERS.inc();
            Ok(m.current_leader.unwrap_or(to))
        }
        Err(_) => Err(HandoverError::NotTaken(to, within)),
    }
}
