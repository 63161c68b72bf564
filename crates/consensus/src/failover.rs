//! Elections sooner than an election timeout when the leader is known to be gone.
//!
//! openraft 0.9 makes a follower wait an election timeout after the last heartbeat, and a
//! follower that still holds its leader's vote (a *committed* vote) refuses every vote request
//! until that long after it last heard from the leader (the leader lease). When the leader's
//! process has died, its host refuses connections at once, so the wait buys nothing. The
//! watcher here looks for that evidence, and only that: a follower whose leader has been silent
//! for 1.5 heartbeat intervals tries a TCP connection to the leader's port, and only a refused
//! connection (`ECONNREFUSED`) counts. A timeout, a proxy that accepts, a paused process or a
//! partition give no such answer, and the normal election timeout applies.
//!
//! On that evidence the follower campaigns (`Raft::trigger().elect()`). The first campaign of
//! each survivor fails on purpose: every other survivor still holds the dead leader's lease. Its
//! effect is that the survivor's own vote becomes its own, uncommitted, which openraft grants to
//! a higher term without the lease check. A short delay later (ordered by server id, with
//! jitter), a survivor that still sees no leader campaigns again, one term higher, and the
//! others grant it if its log is at least as long as theirs. After a bounded number of tries the
//! watcher leaves the election to openraft's own timers.
//!
//! Why this is safe: an election is always safe in Raft (one vote per term, the log check);
//! only when it happens moves. Why it does not cause election storms: a follower never probes
//! anyone but its leader, so a follower that restarts (or is killed) triggers nothing; a leader
//! that is alive accepts the probe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::raft::{VoteRequest, VoteResponse};
use openraft::ServerState;
use tokio::time::Instant;

use crate::network::peer_base;
use crate::types::Raft;

/// Campaigns after the first (which only lets go of the dead leader's lease).
const RETRIES: u32 = 3;
/// The most terms one retry skips to outrank another candidate.
const MAX_JUMP: u64 = 4;

/// The highest term a vote request or answer named here: a retry campaigns above it, so two
/// survivors whose candidacies keep colliding at one term do not go on colliding.
static SEEN_TERM: AtomicU64 = AtomicU64::new(0);
/// The highest term in which a voter refused this server's candidacy for a longer log: such a
/// server cannot win before a leader sends it more, so it stops retrying and lets the other
/// campaign.
static BEHIND: AtomicU64 = AtomicU64::new(0);

/// Notes the term of a vote request this server received.
pub(crate) fn saw_term(term: u64) {
    SEEN_TERM.fetch_max(term, Ordering::Relaxed);
}

/// Notes what a voter answered to this server's candidacy.
pub(crate) fn saw_vote_response(req: &VoteRequest<u64>, resp: &VoteResponse<u64>) {
    saw_term(resp.vote.leader_id().term);
    if !resp.vote_granted && resp.last_log_id > req.last_log_id {
        BEHIND.fetch_max(req.vote.leader_id().term, Ordering::Relaxed);
    }
}

/// What a probe of the leader's port said.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// Nothing listens there: the leader's process is gone.
    Refused,
    /// Something answered, or nothing did in time: no evidence.
    NoEvidence,
}

/// `host:port` of an `/RPC2` endpoint (`http://h:p/RPC2`), for a plain TCP connection.
pub fn host_port(rpc: &str) -> Option<String> {
    let base = peer_base(rpc);
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .unwrap_or(&base);
    let hp = rest.split('/').next().unwrap_or(rest);
    (!hp.is_empty()).then(|| hp.to_string())
}

/// Tries a TCP connection to `addr` for at most `within`.
pub async fn probe(addr: &str, within: Duration) -> Probe {
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        _ => Probe::NoEvidence,
    }
}

/// A pseudo-random fraction of `span`, different per server and per call: enough to keep two
/// survivors from campaigning in lockstep.
fn jitter(span: Duration, id: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mixed =
        (nanos ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let ms = span.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis((mixed >> 33) % ms)
}

/// The watcher, for the caller to run under its supervisor; `heartbeat` is
/// BROADCAST_TIMEOUT_MS, the leader's heartbeat interval.
pub fn crash_watch(raft: Raft, heartbeat: Duration) -> crate::Worker {
    Box::pin(async move {
        let heartbeat = heartbeat.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(heartbeat / 4);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_probe: Option<Instant> = None;
        loop {
            ticker.tick().await;
            let (id, state, leader, voters, addr) = {
                let m = raft.metrics();
                let m = m.borrow();
                let membership = m.membership_config.membership();
                let addr = m
                    .current_leader
                    .and_then(|l| membership.get_node(&l))
                    .and_then(|n| host_port(&n.rpc));
                let voters: Vec<u64> = membership.voter_ids().collect();
                (m.id, m.state, m.current_leader, voters, addr)
            };
            let (Some(leader), Some(addr)) = (leader, addr) else {
                continue;
            };
            if state != ServerState::Follower || leader == id || !voters.contains(&id) {
                continue;
            }
            let Ok((heard, committed)) = raft
                .with_raft_state(|st| (st.vote_last_modified(), st.vote_ref().is_committed()))
                .await
            else {
                return; // Raft stopped.
            };
            let silent = heard.map_or(Duration::MAX, |t| t.elapsed());
            if !committed || silent < heartbeat * 3 / 2 {
                continue;
            }
            if last_probe.is_some_and(|t| t.elapsed() < heartbeat) {
                continue;
            }
            last_probe = Some(Instant::now());
            if probe(&addr, heartbeat).await != Probe::Refused {
                continue;
            }
            telemetry::m::FAST_ELECTIONS.inc();
            tracing::info!(
                leader,
                silent_ms = silent.as_millis() as u64,
                "the leader's port refuses connections: campaigning now"
            );
            let survivors: Vec<u64> = voters.into_iter().filter(|&v| v != leader).collect();
            let rank = survivors.iter().position(|&v| v == id).unwrap_or(0) as u32;
            campaign(&raft, leader, rank, heartbeat).await;
        }
    })
}

/// Whether a leader other than `gone` is known here (or this server leads).
fn has_new_leader(raft: &Raft, gone: u64) -> bool {
    let m = raft.metrics();
    let m = m.borrow();
    m.state == ServerState::Leader
        || (m.state == ServerState::Follower && m.current_leader.is_some_and(|l| l != gone))
}

/// Lets go of `gone`'s lease, then campaigns again while no new leader is known, the lower ranks
/// first, above any term seen meanwhile; stops when a voter has a longer log than this server.
async fn campaign(raft: &Raft, gone: u64, rank: u32, heartbeat: Duration) {
    let behind_before = BEHIND.load(Ordering::Relaxed);
    if raft.trigger().elect().await.is_err() {
        return;
    }
    let id = raft.metrics().borrow().id;
    let step = heartbeat / 2;
    for _ in 0..RETRIES {
        tokio::time::sleep(step * (rank + 1) + jitter(step, id)).await;
        if has_new_leader(raft, gone) {
            return;
        }
        if BEHIND.load(Ordering::Relaxed) > behind_before {
            tracing::info!("a voter has a longer log: leaving the election to it");
            return;
        }
        // A vote this server gave another candidate in the current term means that candidate
        // is collecting a majority (its first heartbeat may merely be late on a busy host):
        // campaigning over it would depose it at once, a second election for nothing.
        let Ok(voted_other) = raft
            .with_raft_state(move |st| {
                let v = st.vote_ref();
                !v.is_committed() && v.leader_id().voted_for().is_some_and(|c| c != id)
            })
            .await
        else {
            return;
        };
        if voted_other {
            continue;
        }
        let term = raft.metrics().borrow().current_term;
        let above = SEEN_TERM.load(Ordering::Relaxed).max(term) + 1;
        let jump = (above - term).clamp(1, MAX_JUMP);
        tracing::info!(term = term + jump, "campaigning again");
        for _ in 0..jump {
            if raft.trigger().elect().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_address_is_the_endpoints_host_and_port() {
        assert_eq!(
            host_port("http://10.0.0.1:2633/RPC2").as_deref(),
            Some("10.0.0.1:2633")
        );
        assert_eq!(
            host_port("https://[::1]:2633/RPC2").as_deref(),
            Some("[::1]:2633")
        );
        assert_eq!(host_port("http://h:1").as_deref(), Some("h:1"));
        assert_eq!(host_port("http:///RPC2"), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_evidence_and_an_open_one_is_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let within = Duration::from_millis(500);
        assert_eq!(probe(&addr, within).await, Probe::NoEvidence);
        drop(l);
        assert_eq!(probe(&addr, within).await, Probe::Refused);
    }

    #[test]
    fn jitter_stays_within_its_span() {
        for id in 0..100 {
            assert!(jitter(Duration::from_millis(50), id) < Duration::from_millis(50));
        }
        assert_eq!(jitter(Duration::ZERO, 1), Duration::ZERO);
    }
}
