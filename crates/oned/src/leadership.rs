//! Who leads the zone, as this server sees it: the one rule that request routing, raftstatus,
//! the hooks, membership and the leader-only tasks all use.
//!
//! openraft 0.9 has no check-quorum: a leader cut off from its majority keeps calling itself
//! leader until it hears a higher term. The step-down watchdog (`consensus::step_down`) marks
//! such a leader for its term; from then on it is not the leader here either.

use consensus::step_down::SteppedDown;
use consensus::{Raft, ServerNode};
use openraft::{RaftMetrics, ServerState};

/// openraft's view of this server, as `Raft::metrics()` publishes it.
pub type Metrics = RaftMetrics<u64, ServerNode>;

/// The server this one takes for the leader: itself while openraft says it leads and it has not
/// stepped down in this term (`stepped_down` is the watchdog's mark); otherwise the leader
/// openraft knows of, never itself. `None`: no leader is known.
pub fn effective_leader(m: &Metrics, stepped_down: Option<u64>) -> Option<u64> {
    match m.state {
        ServerState::Leader if stepped_down == Some(m.current_term) => None,
        ServerState::Leader => Some(m.id),
        // A candidate has no leader to send calls to, whatever its last metrics say.
        ServerState::Candidate => None,
        _ => m.current_leader.filter(|&id| id != m.id),
    }
}

/// openraft's metrics and the step-down mark together: enough to apply [`effective_leader`]
/// now and to wait for it to change.
#[derive(Clone)]
pub struct Leadership {
    raft: Raft,
    stepped_down: SteppedDown,
}

/// Raft or the step-down watchdog has stopped: leadership cannot be followed any more.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipGone {
    #[error("Raft stopped publishing its metrics")]
    RaftStopped,
    #[error("the step-down watchdog stopped")]
    WatchdogStopped,
}

impl Leadership {
    pub fn new(raft: Raft, stepped_down: SteppedDown) -> Leadership {
        Leadership { raft, stepped_down }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// openraft's metrics now and the effective leader they give.
    pub fn now(&self) -> (Metrics, Option<u64>) {
        let m = self.raft.metrics().borrow().clone();
        let leader = effective_leader(&m, *self.stepped_down.borrow());
        (m, leader)
    }

    /// The term this server leads in, if it is the effective leader.
    pub fn leading_term(&self) -> Option<u64> {
        let (m, leader) = self.now();
        (leader == Some(m.id)).then_some(m.current_term)
    }

    /// A follower of both sources, for a task that reacts to every change.
    pub fn watch(&self) -> LeadershipWatch {
        LeadershipWatch {
            metrics: self.raft.metrics(),
            stepped_down: self.stepped_down.clone(),
        }
    }
}

/// Waits for changes of openraft's metrics or of the step-down mark.
pub struct LeadershipWatch {
    metrics: tokio::sync::watch::Receiver<Metrics>,
    stepped_down: SteppedDown,
}

impl LeadershipWatch {
    /// Returns at the next change of either source.
    pub async fn changed(&mut self) -> Result<(), LeadershipGone> {
        tokio::select! {
            r = self.metrics.changed() => r.map_err(|_| LeadershipGone::RaftStopped),
            r = self.stepped_down.changed() => r.map_err(|_| LeadershipGone::WatchdogStopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(id: u64, state: ServerState, term: u64, leader: Option<u64>) -> Metrics {
        let mut m = Metrics::new_initial(id);
        m.state = state;
        m.current_term = term;
        m.current_leader = leader;
        m
    }

    #[test]
    fn a_leader_leads_until_it_steps_down_in_its_term() {
        let m = metrics(1, ServerState::Leader, 5, Some(1));
        assert_eq!(effective_leader(&m, None), Some(1));
        // A mark from an older term does not count.
        assert_eq!(effective_leader(&m, Some(4)), Some(1));
        assert_eq!(effective_leader(&m, Some(5)), None);
    }

    #[test]
    fn followers_name_the_leader_they_know_and_candidates_none() {
        let f = metrics(2, ServerState::Follower, 5, Some(1));
        assert_eq!(effective_leader(&f, None), Some(1));
        let learner = metrics(3, ServerState::Learner, 5, Some(1));
        assert_eq!(effective_leader(&learner, None), Some(1));
        let c = metrics(2, ServerState::Candidate, 6, Some(1));
        assert_eq!(effective_leader(&c, None), None);
        // Stale metrics naming this server while it follows: it must not act as the leader.
        let stale = metrics(2, ServerState::Follower, 6, Some(2));
        assert_eq!(effective_leader(&stale, None), None);
    }
}
