//! What the dashboard's timeline shows: this server's recent elections, step-downs, hook runs,
//! purges and snapshots, in a bounded ring. A watcher samples the Raft status and the
//! `/metrics` counters once a second and records what changed; a server only tells what it saw
//! itself, so the ring is lost with the server (the page reads it from whichever answers).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use telemetry::m;

use crate::cluster::Cluster;

/// Events kept: a day of a busy zone's leadership changes, and a bounded answer.
pub const CAPACITY: usize = 200;
const PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Seconds since the epoch.
    pub time: i64,
    pub kind: &'static str,
    pub text: String,
}

#[derive(Default)]
pub struct Timeline {
    ring: Mutex<VecDeque<Event>>,
}

impl Timeline {
    pub fn push(&self, kind: &'static str, text: String) {
        let event = Event {
            time: crate::auth::unix_now(),
            kind,
            text,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

/// The counters the watcher turns into events.
#[derive(Clone, Copy, PartialEq, Default)]
struct Counts {
    purges: u64,
    purged: u64,
    hooks_ok: u64,
    hooks_failed: u64,
    snapshots: u64,
}

impl Counts {
    fn now() -> Counts {
        Counts {
            purges: m::PURGES.get(),
            purged: m::PURGED_RECORDS.get(),
            hooks_ok: m::HOOK_SUCCESSES.get(),
            hooks_failed: m::HOOK_FAILURES.get(),
            snapshots: m::SNAPSHOTS_BUILT.get(),
        }
    }
}

/// Watches until the timeline is dropped (the server's router with it).
pub fn watch(timeline: Weak<Timeline>, cluster: Cluster, server_id: i64) {
    tokio::spawn(async move {
        let mut last_role: Option<(i64, i64)> = None;
        let mut last = Counts::now();
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            let Some(t) = timeline.upgrade() else { return };
            let status = cluster.status(server_id).await;
            let leader = status_leader(&cluster, status.server_id);
            let role = (status.term, leader);
            match last_role {
                Some((term, was)) if (term, was) == role => {}
                prev => record_leadership(&t, prev, role, status.server_id),
            }
            last_role = Some(role);
            let now = Counts::now();
            if now != last {
                record_counts(&t, last, now);
                last = now;
            }
        }
    });
}

/// The leader's id as this server knows it; -1 when none (or solo).
fn status_leader(cluster: &Cluster, me: i64) -> i64 {
    use crate::cluster::Role;
    match cluster.role() {
        Role::Leader => me,
        Role::Follower {
            leader: Some((id, _)),
        } => id as i64,
        _ => -1,
    }
}

fn record_leadership(t: &Timeline, prev: Option<(i64, i64)>, (term, leader): (i64, i64), me: i64) {
    let Some((_, was)) = prev else {
        if leader >= 0 {
            t.push(
                "election",
                format!("server {leader} leads term {term} (as seen at start)"),
            );
        }
        return;
    };
    if was == me && leader != me {
        t.push(
            "step-down",
            format!("server {me} stepped down in term {term}"),
        );
    }
    if leader >= 0 && leader != was {
        t.push(
            "election",
            format!("server {leader} elected leader, term {term}"),
        );
    } else if leader < 0 && was >= 0 {
        t.push(
            "election",
            format!("leader {was} lost: election running (term {term})"),
        );
    }
}

fn record_counts(t: &Timeline, a: Counts, b: Counts) {
    if b.purges > a.purges {
        t.push(
            "purge",
            format!(
                "{} purge(s), {} record(s) removed",
                b.purges - a.purges,
                b.purged.saturating_sub(a.purged)
            ),
        );
    }
    let (ok, failed) = (
        b.hooks_ok.saturating_sub(a.hooks_ok),
        b.hooks_failed.saturating_sub(a.hooks_failed),
    );
    if ok + failed > 0 {
        t.push(
            "hook",
            format!("{ok} hook run(s) succeeded, {failed} failed"),
        );
    }
    if b.snapshots > a.snapshots {
        t.push(
            "snapshot",
            format!("{} snapshot(s) built", b.snapshots - a.snapshots),
        );
    }
}

/// Keeps one strong reference for the router; the watcher holds a weak one.
pub fn new(cluster: &Cluster, server_id: i64) -> Arc<Timeline> {
    let t = Arc::new(Timeline::default());
    if tokio::runtime::Handle::try_current().is_ok() {
        watch(Arc::downgrade(&t), cluster.clone(), server_id);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_first_and_is_bounded() {
        let t = Timeline::default();
        for i in 0..CAPACITY + 5 {
            t.push("hook", format!("{i}"));
        }
        let r = t.recent();
        assert_eq!(r.len(), CAPACITY);
        assert_eq!(r[0].text, format!("{}", CAPACITY + 4));
    }

    #[test]
    fn a_new_leader_and_a_step_down_are_recorded() {
        let t = Timeline::default();
        record_leadership(&t, None, (1, 0), 0);
        record_leadership(&t, Some((1, 0)), (2, -1), 0);
        record_leadership(&t, Some((2, -1)), (2, 1), 0);
        let kinds: Vec<_> = t.recent().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["election", "election", "step-down", "election"]);
    }
}
