//! Who leads the zone, as this server sees it: the one rule that request routing, raftstatus,
//! the hooks, membership and the leader-only tasks all use.
//!
//! openraft 0.9 has no check-quorum: a leader cut off from its majority keeps calling itself
//! leader until it hears a higher term. The step-down watchdog (`consensus::step_down`) marks
//! such a leader for its term; from then on it is not the leader here either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use consensus::step_down::SteppedDown;
use consensus::{Raft, ServerNode};
use openraft::metrics::RaftServerMetrics;
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
    /// The newest term counted in `oneha_elections_total`: shared, so a restarted hook task
    /// neither counts a term twice nor misses one that began before it started.
    terms_counted: Arc<AtomicU64>,
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
    /// `boot_term`: the term when Raft started, before this server could have campaigned.
    pub fn new(raft: Raft, stepped_down: SteppedDown, boot_term: u64) -> Leadership {
        Leadership {
            raft,
            stepped_down,
            terms_counted: Arc::new(AtomicU64::new(boot_term)),
        }
    }

    /// Counts the terms begun since the last count, up to `term` (`oneha_elections_total`).
    pub fn count_terms_to(&self, term: u64) {
        let before = self.terms_counted.fetch_max(term, Ordering::Relaxed);
        if term > before {
            telemetry::m::TERMS_SEEN.add(term - before);
        }
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
            server: self.raft.server_metrics(),
            metrics: self.raft.metrics(),
            stepped_down: self.stepped_down.clone(),
            progress: false,
        }
    }

    /// [`Leadership::watch`], also woken by the log's progress (last log, commit, applied): for
    /// a one-shot wait on those, never for a task that lives as long as the server.
    pub fn watch_progress(&self) -> LeadershipWatch {
        LeadershipWatch {
            progress: true,
            ..self.watch()
        }
    }
}

/// openraft's server metrics: vote, state, leader and membership, published only when one of
/// them changes.
pub type ServerMetrics = RaftServerMetrics<u64, ServerNode>;

/// Waits for changes of who leads (openraft's server metrics) or of the step-down mark.
///
/// Not on `Raft::metrics()`: openraft publishes those several times per write (log, replication,
/// commit and apply progress), and a task woken each time costs the leader a thread wake-up or
/// two per write for nothing (issue 16).
pub struct LeadershipWatch {
    server: tokio::sync::watch::Receiver<ServerMetrics>,
    metrics: tokio::sync::watch::Receiver<Metrics>,
    stepped_down: SteppedDown,
    /// Woken by every change of the full metrics ([`Leadership::watch_progress`]).
    progress: bool,
}

impl LeadershipWatch {
    /// Returns at the next change of either source.
    pub async fn changed(&mut self) -> Result<(), LeadershipGone> {
        if self.progress {
            return tokio::select! {
                r = self.metrics.changed() => r.map_err(|_| LeadershipGone::RaftStopped),
                r = self.stepped_down.changed() => r.map_err(|_| LeadershipGone::WatchdogStopped),
            };
        }
        tokio::select! {
            r = self.server.changed() => r.map_err(|_| LeadershipGone::RaftStopped)?,
            r = self.stepped_down.changed() => {
                return r.map_err(|_| LeadershipGone::WatchdogStopped)
            }
        }
        // openraft publishes the server metrics just before the full ones, and callers read the
        // full ones ([`Leadership::now`]): return once those show the change too, or a caller
        // could read the old state and then sleep through the change.
        loop {
            let caught_up = {
                let s = self.server.borrow_and_update();
                let m = self.metrics.borrow_and_update();
                shows(&m, &s)
            };
            if caught_up {
                return Ok(());
            }
            tokio::select! {
                r = self.metrics.changed() => r.map_err(|_| LeadershipGone::RaftStopped)?,
                r = self.server.changed() => r.map_err(|_| LeadershipGone::RaftStopped)?,
            }
        }
    }
}

/// Whether the full metrics `m` hold what the server metrics `s` say.
fn shows(m: &Metrics, s: &ServerMetrics) -> bool {
    m.vote == s.vote
        && m.state == s.state
        && m.current_leader == s.current_leader
        && m.membership_config == s.membership_config
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

    /// A leadership watch wakes on the server metrics, which openraft publishes just before the
    /// full ones: it waits until the full ones show the same vote, state, leader and membership.
    #[test]
    fn a_server_metrics_change_is_shown_once_the_full_metrics_hold_it() {
        let mut m = metrics(1, ServerState::Follower, 3, Some(2));
        let s = ServerMetrics {
            id: 1,
            vote: m.vote,
            state: m.state,
            current_leader: m.current_leader,
            membership_config: m.membership_config.clone(),
        };
        assert!(shows(&m, &s));
        let mut leading = s.clone();
        leading.vote = openraft::Vote::new_committed(4, 1);
        leading.state = ServerState::Leader;
        leading.current_leader = Some(1);
        assert!(!shows(&m, &leading));
        m.vote = leading.vote;
        m.state = ServerState::Leader;
        assert!(!shows(&m, &leading), "the leader is not published yet");
        m.current_leader = Some(1);
        assert!(shows(&m, &leading));
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
