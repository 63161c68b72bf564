//! Keeps the Raft membership equal to the zone's `SERVER_POOL`.
//!
//! `one.zone.addserver/delserver` only change the zone's server rows (a replicated write). The
//! leader then converges Raft towards them: a new server becomes a learner (never counted in a
//! quorum, so a server added but not started costs nothing), is promoted to voter once it has
//! caught up, and a deleted server is removed. Being level-triggered, the loop also finishes a
//! change that a previous leader left half done.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use consensus::{Raft, ServerNode};
use openraft::ChangeMembers;
use sqlstore::ReadPool;
use tokio::sync::watch;
use tracing::info;

use crate::leadership::Leadership;
use crate::tasks::TaskCtx;

/// A learner within this many entries of the leader's log is promoted.
const CATCH_UP_GAP: u64 = 64;
const PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("reading zone {zone}'s server pool: {reason}")]
    ReadPool { zone: i64, reason: String },
    #[error("zone {0} is not in the database")]
    NoZone(i64),
    #[error("changing the Raft membership: {0}")]
    Change(String),
}

fn change_failed(e: impl std::fmt::Display) -> MembershipError {
    MembershipError::Change(e.to_string())
}

/// The membership task: while this server is the effective leader, converges Raft towards the
/// server pool every period. A failed step is logged, counted and tried again. No server is
/// added before `sealed` holds (a solo server's history is in a snapshot): see
/// `run::seal_solo_history`.
pub async fn run(
    ctx: TaskCtx,
    leadership: Leadership,
    pool: ReadPool,
    zone_id: i64,
    sealed: watch::Receiver<bool>,
) -> Result<(), Infallible> {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if leadership.leading_term().is_none() {
            continue;
        }
        let may_add = *sealed.borrow();
        if let Err(e) = reconcile(leadership.raft(), &pool, zone_id, may_add).await {
            ctx.warn("membership change failed; will retry", &e);
        }
    }
}

async fn desired(
    pool: &ReadPool,
    zone_id: i64,
) -> Result<BTreeMap<u64, ServerNode>, MembershipError> {
    let zone = crate::db::read(pool, move |c| sqlstore::load_zone(c, zone_id))
        .await
        .map_err(|e| MembershipError::ReadPool {
            zone: zone_id,
            reason: e.to_string(),
        })?
        .ok_or(MembershipError::NoZone(zone_id))?;
    Ok(zone
        .servers
        .into_iter()
        .filter(|s| s.id >= 0)
        .map(|s| {
            (
                s.id as u64,
                ServerNode {
                    name: s.name,
                    rpc: s.endpoint,
                },
            )
        })
        .collect())
}

async fn reconcile(
    raft: &Raft,
    pool: &ReadPool,
    zone_id: i64,
    may_add: bool,
) -> Result<(), MembershipError> {
    let want = desired(pool, zone_id).await?;
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let nodes: BTreeMap<u64, ServerNode> =
        membership.nodes().map(|(id, n)| (*id, n.clone())).collect();

    if want.is_empty() {
        // A pool emptied by mistake must not dissolve the group.
        return Ok(());
    }

    let joint = membership.get_joint_config();
    if let (true, Some(target)) = (joint.len() > 1, joint.last()) {
        // A previous leader died between the joint and the final config: finish it.
        let target: BTreeSet<u64> = target.clone();
        info!(voters = ?target, "finishing an interrupted membership change");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(target), true)
            .await
            .map_err(change_failed)?;
        return Ok(());
    }

    for (id, node) in want.iter().filter(|_| may_add) {
        if !nodes.contains_key(id) {
            info!(server = id, node = %node, "adding server as a learner");
            raft.add_learner(*id, node.clone(), false)
                .await
                .map_err(change_failed)?;
            return Ok(());
        }
    }

    let removed_voters: BTreeSet<u64> = voters
        .iter()
        .copied()
        .filter(|id| !want.contains_key(id))
        .collect();
    if !removed_voters.is_empty() {
        info!(servers = ?removed_voters, "removing servers from the zone");
        raft.change_membership(ChangeMembers::RemoveVoters(removed_voters), false)
            .await
            .map_err(change_failed)?;
        return Ok(());
    }
    let removed_learners: BTreeSet<u64> = nodes
        .keys()
        .copied()
        .filter(|id| !want.contains_key(id) && !voters.contains(id))
        .collect();
    if !removed_learners.is_empty() {
        info!(servers = ?removed_learners, "removing learners from the zone");
        raft.change_membership(ChangeMembers::RemoveNodes(removed_learners), false)
            .await
            .map_err(change_failed)?;
        return Ok(());
    }

    // Promote every caught-up learner at once: joint consensus makes a multi-server change
    // safe and skips the fragile even-sized step.
    let last = m.last_log_index.unwrap_or(0);
    let replication = m.replication.clone().unwrap_or_default();
    let ready: BTreeSet<u64> = nodes
        .keys()
        .copied()
        .filter(|id| !voters.contains(id) && want.contains_key(id))
        .filter(|id| {
            replication
                .get(id)
                .and_then(|matched| matched.as_ref())
                .is_some_and(|l| l.index + CATCH_UP_GAP >= last)
        })
        .collect();
    if !ready.is_empty() {
        info!(servers = ?ready, "promoting caught-up learners to voters");
        raft.change_membership(ChangeMembers::AddVoterIds(ready), false)
            .await
            .map_err(change_failed)?;
    }
    // Keep endpoints in step with the pool (an operator may re-add a server at a new address).
    Ok(())
}
