//! The callers waiting on an entry's transactions, carried by the entry itself on the server
//! that proposed it. They hear the moment the entry's apply commits (a lone caller from the state
//! database's thread, a batch's callers from the proposer's task, see `Route`), instead of
//! through openraft's state machine task, RaftCore and `client_write` (docs/benchmarks.md, eighth
//! and ninth rounds).
//!
//! An entry read back from the database (evicted from [`crate::log_cache`] before its apply)
//! and every entry a follower received carry no callers: the proposer answers those from
//! `client_write`'s result, as before. Whichever comes first takes the callers; the other finds
//! none, so each caller hears exactly once.

use std::fmt;
use std::sync::{Arc, Mutex};

use sqlstore::TxnOutcome;
use tokio::sync::oneshot;

use crate::proposer::WriteError;

pub(crate) type Reply = oneshot::Sender<Result<TxnOutcome, WriteError>>;

/// Where an entry's outcomes go once it is applied.
pub(crate) enum Route {
    /// A lone caller, answered from the state database's thread itself.
    Caller(Reply),
    /// The proposer's task, which answers the entry's many callers from the runtime: one wake-up
    /// from outside the runtime per entry, not one per caller (at 32 and 64 in flight, waking
    /// each caller from the database's thread cost 10-15 % of the writes).
    Proposer(oneshot::Sender<Vec<TxnOutcome>>),
}

/// Never serialized: an entry on the wire or on disk has no callers.
#[derive(Clone, Default)]
pub(crate) struct Callers(Option<Arc<Mutex<Option<Route>>>>);

impl Callers {
    pub(crate) fn new(route: Route) -> Callers {
        Callers(Some(Arc::new(Mutex::new(Some(route)))))
    }

    /// The route, if nobody took it yet.
    pub(crate) fn take(&self) -> Option<Route> {
        let slot = self.0.as_ref()?;
        // A poisoned lock means a panic while taking: the route is gone with it.
        slot.lock().ok()?.take()
    }

    /// Sends the entry's outcomes where they are awaited, counted as answered at apply first
    /// (a caller that reads the metrics once answered finds its write there). Returns whether
    /// anyone was still waiting (then `outcomes` is used up).
    pub(crate) fn answer(&self, outcomes: &mut Vec<TxnOutcome>) -> bool {
        let route = self.take();
        if route.is_some() {
            telemetry::m::WRITES_ANSWERED_AT_APPLY.inc();
        }
        match route {
            None => false,
            Some(Route::Caller(reply)) => {
                answer_each(vec![reply], std::mem::take(outcomes));
                true
            }
            Some(Route::Proposer(to)) => {
                // A failed send means the proposer's task is gone, and its callers with it.
                let _ = to.send(std::mem::take(outcomes));
                true
            }
        }
    }
}

/// Answers each caller with its transaction's outcome, in order; a caller whose outcome is
/// missing (lost with a database connection as it committed) hears so.
pub(crate) fn answer_each(replies: Vec<Reply>, outcomes: Vec<TxnOutcome>) {
    let mut outcomes = outcomes.into_iter();
    for reply in replies {
        let out = outcomes.next().ok_or(WriteError::OutcomeLost);
        // A failed send means the caller timed out: nobody is left to tell.
        let _ = reply.send(out);
    }
}

/// Callers are not part of an entry's value: two entries with the same transactions are equal.
impl PartialEq for Callers {
    fn eq(&self, _: &Callers) -> bool {
        true
    }
}

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Callers"
        } else {
            "NoCallers"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: i64) -> TxnOutcome {
        TxnOutcome::Done {
            values: vec![sqlstore::SqlValue::Int(id)],
        }
    }

    #[test]
    fn a_lone_caller_hears_once_and_a_missing_outcome_is_said_lost() {
        let (reply, mut wait) = oneshot::channel();
        let callers = Callers::new(Route::Caller(reply));
        let on_the_wire = callers.clone();
        let mut outcomes = vec![outcome(7)];
        assert!(callers.answer(&mut outcomes));
        assert!(outcomes.is_empty(), "the outcome went to the caller");
        assert!(!on_the_wire.answer(&mut vec![outcome(8)]));
        assert_eq!(wait.try_recv().unwrap().unwrap(), outcome(7));

        let (a, mut wait_a) = oneshot::channel();
        let (b, mut wait_b) = oneshot::channel();
        answer_each(vec![a, b], vec![outcome(1)]);
        assert_eq!(wait_a.try_recv().unwrap().unwrap(), outcome(1));
        assert!(matches!(
            wait_b.try_recv().unwrap(),
            Err(WriteError::OutcomeLost)
        ));
    }

    #[test]
    fn many_callers_go_to_the_proposer_in_one_message() {
        let (to, mut proposer) = oneshot::channel();
        let callers = Callers::new(Route::Proposer(to));
        assert!(callers.answer(&mut vec![outcome(1), outcome(2)]));
        assert_eq!(proposer.try_recv().unwrap(), vec![outcome(1), outcome(2)]);
    }

    #[test]
    fn an_entry_without_callers_answers_nobody_and_keeps_its_outcomes() {
        let mut outcomes = vec![outcome(1)];
        assert!(!Callers::default().answer(&mut outcomes));
        assert_eq!(outcomes, vec![outcome(1)]);
    }
}
