//! This server's place in the zone: solo (no Raft) or a member of a Raft group, who leads, how
//! writes reach the log, and the raftstatus it reports.

use std::path::PathBuf;
use std::time::Duration;

use consensus::{
    FollowerReadError, FollowerReads, Proposer, Raft, ReadBarrier, ReadError, SoloWriter,
    WriteError,
};
use openraft::ServerState;
use sqlstore::{SqlTxn, TxnOutcome};
use tracing::warn;

use crate::hooks::LeaderReady;
use crate::leadership::Leadership;

/// What this server is right now, as far as request routing cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Solo,
    Leader,
    /// Not the leader; `leader` is its id and `/RPC2` endpoint when known.
    Follower {
        leader: Option<(u64, String)>,
    },
    Candidate,
}

/// `one.zone.raftstatus`, in OpenNebula's field order (the `<RAFT>` document `onezone` reads).
pub use wire::{RaftState, RaftStatus};

#[derive(Clone)]
pub enum Cluster {
    Solo(SoloWriter),
    Ha(Ha),
}

#[derive(Clone)]
pub struct Ha {
    /// Raft and the step-down watchdog's mark: who leads ([`crate::leadership`]).
    pub leadership: Leadership,
    pub proposer: Proposer,
    pub reads: ReadBarrier,
    /// Leader reads on a follower: a read index from the leader, then the local database.
    pub follower_reads: FollowerReads,
    /// The term in which this server leads and has run its leader hook.
    pub leader_ready: LeaderReady,
    pub server_id: u64,
    pub raft_db: PathBuf,
    /// Whether the state database answers (a MySQL server can be lost and come back).
    pub db_health: consensus::DbHealth,
    /// What the state database committed last: writers are answered from there, before
    /// openraft's metrics show it.
    pub applied: consensus::AppliedMark,
    /// Closed after a restart until the state has applied the log found at start.
    pub local_reads: consensus::ReadGate,
}

/// How far past the log's end (as the metrics last published it) a forwarded write's index may
/// be and still be waited for: no follower applies beyond the leader's log, but the published
/// figure trails the log by the batches RaftCore has not reported yet.
const FORWARD_SLACK: u64 = 1024;

impl Ha {
    /// Waits (up to `within`) until the leader hook of `term` has run.
    async fn ready_for_writes(&self, term: u64, within: Duration) -> bool {
        let mut ready = self.leader_ready.clone();
        let done = tokio::time::timeout(within, ready.wait_for(|r| *r == Some(term))).await;
        matches!(done, Ok(Ok(_)))
    }
}

/// The commit index as RaftCore knows it, if it answers within half a second; raftstatus shows
/// the applied index instead otherwise.
async fn committed_index(raft: &Raft) -> Option<openraft::LogId<u64>> {
    let asked = tokio::time::timeout(
        Duration::from_millis(500),
        raft.with_raft_state(|st| st.committed),
    )
    .await;
    match asked {
        Ok(Ok(committed)) => committed,
        Ok(Err(e)) => {
            warn!(error = %e, "Raft did not report its commit index");
            None
        }
        Err(_) => {
            warn!("Raft did not report its commit index within 500 ms");
            None
        }
    }
}

impl Cluster {
    /// Why the state database cannot be written now, if it cannot.
    pub fn db_problem(&self) -> Option<String> {
        match self {
            Cluster::Solo(_) => None,
            Cluster::Ha(ha) => ha.db_health.problem(),
        }
    }

    pub fn raft(&self) -> Option<&Raft> {
        match self {
            Cluster::Solo(_) => None,
            Cluster::Ha(ha) => Some(ha.leadership.raft()),
        }
    }

    pub fn role(&self) -> Role {
        let Cluster::Ha(ha) = self else {
            return Role::Solo;
        };
        let (m, leader) = ha.leadership.now();
        if leader == Some(m.id) {
            return Role::Leader;
        }
        if m.state == ServerState::Candidate {
            return Role::Candidate;
        }
        let leader = leader.and_then(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .map(|n| (id, n.rpc.clone()))
        });
        Role::Follower { leader }
    }

    /// Waits up to `within` for a known leader other than `not` (or for this server to lead).
    pub async fn wait_for_new_leader(&self, within: Duration, not: Option<u64>) -> Role {
        let Cluster::Ha(ha) = self else {
            return Role::Solo;
        };
        let mut rx = ha.leadership.watch();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let role = self.role();
            match &role {
                Role::Leader => return role,
                Role::Follower {
                    leader: Some((id, _)),
                } if Some(*id) != not => return role,
                _ => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.role(),
            }
        }
    }

    /// Whether a plain read may be served from the local database. After a restart the state
    /// can be behind what this server served before (the committed id is saved lazily and the
    /// state written without fsync), so until it has applied the log found at start, reads
    /// are served as leader reads (`consensus::ReadGate`). Solo needs no gate: its writes are
    /// applied with an fsync before they are answered.
    pub fn local_reads_ready(&self) -> bool {
        match self {
            Cluster::Solo(_) => true,
            Cluster::Ha(ha) => ha.local_reads.is_open(|| self.last_applied()),
        }
    }

    /// This server answered a call with the leader's state as of `index` (it passed the call
    /// on): its local reads wait until it has applied that far, so a client never reads here a
    /// state older than one it was shown here.
    pub fn shown(&self, index: u64) {
        if let Cluster::Ha(ha) = self {
            ha.local_reads.shown(index);
        }
    }

    /// The last log index applied to the local database (`None` when solo or nothing yet).
    pub fn last_applied(&self) -> Option<u64> {
        match self {
            Cluster::Solo(_) => None,
            Cluster::Ha(ha) => {
                let published = ha.leadership.raft().metrics().borrow().last_applied;
                published.map(|l| l.index).max(ha.applied.get())
            }
        }
    }

    /// Returns once the local database holds every write acknowledged before the call: always
    /// when solo; on a leader after a quorum confirmed it still leads.
    pub async fn confirm_read(&self) -> Result<(), ReadError> {
        match self {
            Cluster::Solo(_) => Ok(()),
            Cluster::Ha(ha) => ha.reads.wait().await.map(|_| ()),
        }
    }

    /// Before a write is judged on the local state: returns once that state is no older than
    /// the log found at start (a restarted leader) and than `seen`, the index a forwarding
    /// server had applied (its client may have been shown that state). An index well beyond
    /// this server's log is no index a server of the zone applied: it is refused at once.
    pub async fn catch_up_for_write(&self, seen: Option<u64>) -> Result<(), String> {
        let Cluster::Ha(ha) = self else {
            return Ok(());
        };
        if !self.local_reads_ready() {
            ha.reads.wait().await.map_err(|e| e.to_string())?;
        }
        let Some(seen) = seen else {
            return Ok(());
        };
        let last_log = ha.leadership.raft().metrics().borrow().last_log_index;
        let (applied, last_log) = (self.last_applied().unwrap_or(0), last_log.unwrap_or(0));
        if seen <= applied {
            return Ok(());
        }
        if seen > last_log.saturating_add(FORWARD_SLACK) {
            return Err(format!(
                "the forwarding server applied index {seen}, beyond this server's log ({last_log})"
            ));
        }
        telemetry::m::WRITE_CATCH_UPS.inc();
        self.wait_applied(seen, ha.proposer.deadline())
            .await
            .map_err(|e| {
                format!("index {seen}, applied by the forwarding server, not applied here: {e}")
            })
    }

    /// Returns once this server has applied `index` (at once when solo), or why not within
    /// `timeout`.
    pub async fn wait_applied(
        &self,
        index: u64,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        let Cluster::Ha(ha) = self else {
            return Ok(());
        };
        ha.leadership
            .raft()
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "an index the leader applied")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// On a follower: returns once the local database holds every write acknowledged before
    /// the call (the leader confirmed a read index and this server applied it), or why not.
    pub async fn confirm_follower_read(&self) -> Result<(), FollowerReadError> {
        match self {
            Cluster::Solo(_) => Ok(()),
            Cluster::Ha(ha) => ha.follower_reads.wait().await,
        }
    }

    /// Replicates `txn` (or applies it, solo) and returns its outcome.
    pub async fn write(&self, txn: SqlTxn) -> Result<TxnOutcome, WriteError> {
        match self {
            Cluster::Solo(w) => {
                let mut out = w.apply(vec![txn]).await.map_err(WriteError::from)?;
                out.pop()
                    .ok_or_else(|| WriteError::Fatal("no outcome for the transaction".into()))
            }
            Cluster::Ha(ha) => {
                let (m, leader) = ha.leadership.now();
                let not_leader = || WriteError::NotLeader;
                if leader != Some(m.id) {
                    return Err(not_leader());
                }
                // Entries would commit but not apply here, so the caller would only wait.
                if let Some(problem) = ha.db_health.problem() {
                    return Err(WriteError::Unavailable(problem));
                }
                // The floating IP comes with the leader hook; take writes once it has run.
                if !ha
                    .ready_for_writes(m.current_term, ha.proposer.deadline())
                    .await
                {
                    return Err(WriteError::NotLeader);
                }
                ha.proposer.submit(txn).await
            }
        }
    }

    pub async fn status(&self, configured_id: i64) -> RaftStatus {
        let Cluster::Ha(ha) = self else {
            return RaftStatus {
                server_id: configured_id,
                state: RaftState::Solo.as_i64(),
                term: 0,
                votedfor: -1,
                commit: 0,
                log_index: -1,
                log_term: -1,
                fedlog_index: -1,
            };
        };
        let (m, leader) = ha.leadership.now();
        let state = match m.state {
            _ if leader == Some(m.id) => RaftState::Leader,
            ServerState::Candidate => RaftState::Candidate,
            // Not yet a voter: "follower" must mean the server counts in the quorum, because
            // the guide has operators wait for it before going on.
            ServerState::Learner => RaftState::Learner,
            // A follower, or a leader that stepped down.
            _ => RaftState::Follower,
        }
        .as_i64();
        let committed = committed_index(ha.leadership.raft())
            .await
            .or(m.last_applied);
        let raft_db = ha.raft_db.clone();
        let log_term =
            match tokio::task::spawn_blocking(move || consensus::last_log_term(&raft_db)).await {
                Ok(Ok(term)) => term,
                Ok(Err(e)) => {
                    warn!(error = %e, "reading the last log term failed; raftstatus shows -1");
                    None
                }
                Err(e) => {
                    warn!(error = %e, "reading the last log term failed; raftstatus shows -1");
                    None
                }
            };
        RaftStatus {
            server_id: ha.server_id as i64,
            state,
            term: i64::try_from(m.current_term).unwrap_or(i64::MAX),
            votedfor: voted_for(
                m.current_term,
                &m.vote,
                state == RaftState::Candidate.as_i64() || state == RaftState::Leader.as_i64(),
                consensus::votes::granted_in(m.current_term),
            ),
            commit: committed.map(|l| l.index as i64).unwrap_or(-1),
            log_index: m.last_log_index.map(|i| i as i64).unwrap_or(-1),
            log_term: log_term.map(|t| t as i64).unwrap_or(-1),
            fedlog_index: -1,
        }
    }
}

/// `raftstatus`'s VOTEDFOR: whom this server voted for in `term`, -1 for no one. openraft's
/// `current_term` is its vote in memory, which moves to a new term before that vote is saved;
/// `vote` is the saved one. Until the new term's vote is saved this server has durably voted in
/// it for no one, as OpenNebula's VOTEDFOR is -1 once the term moved: showing the older term's
/// candidate beside the new term would pair a vote with a term it was never cast in.
/// A candidate or leader (`campaigning`) voted for itself. A follower shows a vote it granted
/// (`granted`, or a saved vote no leader has confirmed yet), never the leader's committed vote
/// that openraft saves on every server it replicates to: a follower that learned the term from
/// the leader has voted for no one (`RaftManager::follower`).
fn voted_for(
    term: u64,
    vote: &openraft::Vote<u64>,
    campaigning: bool,
    granted: Option<u64>,
) -> i64 {
    let saved = vote.leader_id();
    let of_term = term > 0 && saved.get_term() == term;
    match saved.voted_for() {
        Some(id) if of_term && (campaigning || !vote.committed) => id as i64,
        _ => granted.filter(|_| term > 0).map_or(-1, |c| c as i64),
    }
}

/// Ticks every `period` while this server leads (or runs solo): the pace of the leader-only
/// duties, which a follower never runs.
pub struct LeaderTicks {
    ticker: tokio::time::Interval,
    cluster: Cluster,
}

impl LeaderTicks {
    pub fn new(period: Duration, cluster: Cluster) -> LeaderTicks {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        LeaderTicks { ticker, cluster }
    }

    /// The next tick at which this server leads.
    pub async fn next(&mut self) {
        loop {
            self.ticker.tick().await;
            if matches!(self.cluster.role(), Role::Leader | Role::Solo) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::Vote;

    use super::voted_for;

    /// Found by the fault suite's vote watch: a candidate's new term in memory beside the
    /// previous term's saved vote read as a vote cast for another server in the new term.
    #[test]
    fn votedfor_is_the_saved_vote_of_the_term_shown_or_no_one() {
        assert_eq!(voted_for(12, &Vote::new(12, 2), false, None), 2);
        assert_eq!(voted_for(12, &Vote::new_committed(12, 0), true, None), 0);
        // Term 12 begun in memory, its vote not saved yet: the saved one is of term 11.
        assert_eq!(voted_for(12, &Vote::new(11, 2), true, None), -1);
        assert_eq!(voted_for(0, &Vote::default(), false, None), -1);
        // A follower that only learned the leader's term voted for no one; one that granted
        // its vote says so.
        assert_eq!(voted_for(12, &Vote::new_committed(12, 0), false, None), -1);
        assert_eq!(
            voted_for(12, &Vote::new_committed(12, 0), false, Some(0)),
            0
        );
    }
}
