//! Check-quorum for openraft 0.9, which has none: a leader cut off from the majority would stay
//! leader until it hears a higher term, holding the floating IP while the majority elects
//! another leader. The watchdog probes the quorum (a heartbeat round that a majority must
//! acknowledge) and, when no round succeeded for an election timeout, marks the leader as
//! stepped down for its term: oned then refuses writes there and runs the follower hook. The
//! mark lifts if a later round succeeds in the same term (the partition healed before anyone
//! else was elected); a new term clears it.
//!
//! A leader that hands leadership over at a stop ([`crate::handover`]) sets the same mark
//! itself ([`StopLeading`]): it stops taking writes for the rest of its term.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::types::Raft;

/// The term in which this server, though openraft's leader, stepped down.
pub type SteppedDown = watch::Receiver<Option<u64>>;

/// Marks this server as stepped down for its current term of leadership, for good: what a
/// leader that hands over at a stop does first.
#[derive(Clone)]
pub struct StopLeading {
    tx: Arc<watch::Sender<Option<u64>>>,
    /// The term given up (0: none); the watchdog keeps the mark for it.
    term: Arc<AtomicU64>,
}

impl StopLeading {
    /// Gives up leading in `term`: from now on oned routes as a follower with no known leader.
    pub fn stop_leading(&self, term: u64) {
        self.term.store(term, Ordering::Relaxed);
        self.tx.send_if_modified(|v| {
            if *v == Some(term) {
                return false;
            }
            *v = Some(term);
            true
        });
    }
}

/// The watchdog, for the caller to run (oned's task supervisor), and what it reports;
/// `election_timeout` is how long a leader may go without a majority, and `probe` how often it
/// asks.
pub fn watchdog(
    raft: Raft,
    election_timeout: Duration,
    probe: Duration,
) -> (SteppedDown, StopLeading, crate::Worker) {
    let (tx, rx) = watch::channel(None);
    let tx = Arc::new(tx);
    let given_up = Arc::new(AtomicU64::new(0));
    let stop = StopLeading {
        tx: tx.clone(),
        term: given_up.clone(),
    };
    let worker = Box::pin(async move {
        let mut led: Option<(u64, Instant)> = None;
        let mut ticker = tokio::time::interval(probe);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let (state, term) = {
                let m = raft.metrics();
                let m = m.borrow();
                (m.state, m.current_term)
            };
            if state != ServerState::Leader {
                led = None;
                tx.send_if_modified(|v| v.take().is_some());
                continue;
            }
            // Winning the election was a majority's answer.
            let mut last_ack = match led {
                Some((t, at)) if t == term => at,
                _ => Instant::now(),
            };
            let asked = Instant::now();
            if let Ok(Ok(_)) = tokio::time::timeout(election_timeout, raft.get_read_log_id()).await
            {
                last_ack = asked;
            }
            led = Some((term, last_ack));
            let down =
                last_ack.elapsed() > election_timeout || given_up.load(Ordering::Relaxed) == term;
            let want = down.then_some(term);
            tx.send_if_modified(|v| {
                if *v != want {
                    match want {
                        Some(t) => tracing::warn!(
                            term = t,
                            "no majority answered for an election timeout: stepping down"
                        ),
                        None => tracing::info!(term, "a majority answers again"),
                    }
                    *v = want;
                    true
                } else {
                    false
                }
            });
        }
    });
    (rx, stop, worker)
}
