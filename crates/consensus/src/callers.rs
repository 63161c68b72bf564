//! The callers waiting on an entry's transactions, carried by the entry itself on the server
//! that proposed it. The state database's thread answers them the moment the entry's apply
//! commits, instead of handing the results back through openraft's state machine task, RaftCore,
//! `client_write` and the proposer's task (four wake-ups per write on a busy 2-core machine,
//! about a sixth of a write's time at 1 in flight; docs/benchmarks.md, eighth round).
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

/// Never serialized: an entry on the wire or on disk has no callers.
#[derive(Clone, Default)]
pub struct Callers(Option<Arc<Mutex<Option<Vec<Reply>>>>>);

impl Callers {
    pub(crate) fn new(replies: Vec<Reply>) -> Callers {
        Callers(Some(Arc::new(Mutex::new(Some(replies)))))
    }

    /// The replies, if nobody answered them yet.
    pub(crate) fn take(&self) -> Option<Vec<Reply>> {
        let slot = self.0.as_ref()?;
        // A poisoned lock means a panic while taking: the replies are gone with it.
        slot.lock().ok()?.take()
    }

    /// Answers each caller with its transaction's outcome, in order; a caller whose outcome is
    /// missing (lost with a database connection as it committed) hears so. Returns whether the
    /// callers were still waiting (then `outcomes` is used up).
    pub(crate) fn answer(&self, outcomes: &mut Vec<TxnOutcome>) -> bool {
        let Some(replies) = self.take() else {
            return false;
        };
        let mut outcomes = std::mem::take(outcomes).into_iter();
        for reply in replies {
            let out = outcomes.next().ok_or(WriteError::OutcomeLost);
            // A failed send means the caller timed out: nobody is left to tell.
            let _ = reply.send(out);
        }
        true
    }

    /// Tells each caller still waiting that the write failed.
    pub(crate) fn fail(&self, err: &WriteError) {
        for reply in self.take().into_iter().flatten() {
            // As above: a caller that timed out is not waiting any more.
            let _ = reply.send(Err(err.clone()));
        }
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
    fn each_caller_hears_once_from_whoever_answers_first() {
        let (a, mut wait_a) = oneshot::channel();
        let (b, mut wait_b) = oneshot::channel();
        let callers = Callers::new(vec![a, b]);
        let on_the_wire = callers.clone();
        let mut outcomes = vec![outcome(7)];
        assert!(callers.answer(&mut outcomes));
        assert!(outcomes.is_empty(), "the outcomes went to the callers");
        on_the_wire.fail(&WriteError::NotLeader);
        assert!(!on_the_wire.answer(&mut vec![outcome(8), outcome(9)]));
        assert_eq!(wait_a.try_recv().unwrap().unwrap(), outcome(7));
        assert!(matches!(
            wait_b.try_recv().unwrap(),
            Err(WriteError::OutcomeLost)
        ));
    }

    #[test]
    fn an_entry_without_callers_answers_nobody_and_keeps_its_outcomes() {
        let mut outcomes = vec![outcome(1)];
        assert!(!Callers::default().answer(&mut outcomes));
        assert_eq!(outcomes, vec![outcome(1)]);
    }
}
