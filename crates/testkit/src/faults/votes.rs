//! Watches every member's `one.zone.raftstatus` through the round: a server's vote must never
//! go backwards, across restarts and power cuts included.
//!
//! openraft (0.9, its default "adv" leader ids) orders votes by (term, candidate id): within a
//! term a server may move its vote to a higher candidate, and two leaders may briefly claim the
//! same term with different ids, which is safe because entries carry the leader's id. What a
//! lost vote record breaks, and what a double vote in Raft's sense is here, is the order: a
//! server restarting with an older term, or voting for a lower candidate in a term where it had
//! voted for a higher one, could grant the same term twice. That is what this checks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cli::Client;
use wire::raft::RaftStatus;

use super::workload::Members;

const POLL: Duration = Duration::from_millis(25);
const TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Default)]
struct Seen {
    /// Per server index: its highest vote so far, (term, voted for).
    votes: BTreeMap<usize, (i64, i64)>,
    violations: Vec<String>,
    samples: u64,
    /// (term, leader id) pairs seen.
    leaders: BTreeSet<(i64, i64)>,
}

/// The watcher threads, one per member, started as members appear.
pub struct VoteWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    manager: Option<JoinHandle<()>>,
}

impl VoteWatch {
    pub fn start(members: Members, session: String) -> VoteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let manager = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut watchers: BTreeMap<usize, JoinHandle<()>> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let now: Vec<(usize, String)> =
                        members.read().map(|m| m.clone()).unwrap_or_default();
                    for (i, endpoint) in now {
                        watchers.entry(i).or_insert_with(|| {
                            let (stop, seen) = (stop.clone(), seen.clone());
                            let client = Client::new(endpoint, session.clone(), TIMEOUT);
                            std::thread::spawn(move || watch(i, &client, &stop, &seen))
                        });
                    }
                    std::thread::sleep(POLL);
                }
                for (_, w) in watchers {
                    let _ = w.join();
                }
            })
        };
        VoteWatch {
            stop,
            seen,
            manager: Some(manager),
        }
    }

    /// Stops watching; the violations found and a summary line.
    pub fn finish(mut self) -> (Vec<String>, String) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(m) = self.manager.take() {
            let _ = m.join();
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let terms: BTreeSet<i64> = seen.leaders.iter().map(|(t, _)| *t).collect();
        let shared = terms.len() < seen.leaders.len();
        (
            seen.violations.clone(),
            format!(
                "votes: {} raftstatus samples, no vote went backwards; {} leaders seen in {} terms{}\n",
                seen.samples,
                seen.leaders.len(),
                terms.len(),
                if shared {
                    " (openraft's ids: two candidates may lead the same term in turn)"
                } else {
                    ""
                }
            ),
        )
    }
}

fn watch(i: usize, client: &Client, stop: &AtomicBool, seen: &Mutex<Seen>) {
    while !stop.load(Ordering::Relaxed) {
        let status = client
            .call_xml(wire::method::ZONE_RAFTSTATUS, vec![])
            .ok()
            .and_then(|xml| RaftStatus::from_xml(&xml).ok());
        if let Some(r) = status {
            record(i, &r, &mut seen.lock().unwrap_or_else(|p| p.into_inner()));
        }
        std::thread::sleep(POLL);
    }
}

fn record(i: usize, r: &RaftStatus, seen: &mut Seen) {
    seen.samples += 1;
    if r.term <= 0 {
        return;
    }
    if r.state == crate::zone::LEADER {
        seen.leaders.insert((r.term, r.server_id));
    }
    let now = (r.term, r.votedfor);
    let Some(&before) = seen.votes.get(&i) else {
        seen.votes.insert(i, now);
        return;
    };
    let backwards =
        now.0 < before.0 || (now.0 == before.0 && now.1 >= 0 && before.1 >= 0 && now.1 < before.1);
    if backwards {
        seen.violations.push(format!(
            "server {i}'s vote went backwards: it had voted for {} in term {}, it now reports {} in term {} (a vote lost, so a term may be granted twice)",
            before.1, before.0, now.1, now.0
        ));
    } else if now > before {
        seen.votes.insert(i, now);
    }
}
