//! Keeps the Raft membership equal to the zone's `SERVER_POOL`.
//!
//! `one.zone.addserver/delserver` only change the zone's server rows (a replicated write). The
//! leader then converges Raft towards them: a new server becomes a learner (never counted in a
//! quorum, so a server added but not started costs nothing), is promoted to voter once it has
//! caught up, and a deleted server is removed. Being level-triggered, the loop also finishes a
//! change that a previous leader left half done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use consensus::{Raft, ServerNode};
use openraft::{ChangeMembers, ServerState};
use sqlstore::ReadPool;
use tracing::{info, warn};

/// A learner within this many entries of the leader's log is promoted.
const CATCH_UP_GAP: u64 = 64;
const PERIOD: Duration = Duration::from_millis(200);

pub fn spawn(raft: Raft, pool: ReadPool, zone_id: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if raft.metrics().borrow().state != ServerState::Leader {
                continue;
            }
            if let Err(e) = reconcile(&raft, &pool, zone_id).await {
                warn!(error = %e, "membership change failed; will retry");
            }
        }
    });
}

async fn desired(pool: &ReadPool, zone_id: i64) -> Result<BTreeMap<u64, ServerNode>, String> {
    let pool = pool.clone();
    let zone = tokio::task::spawn_blocking(move || pool.with(|c| sqlstore::load_zone(c, zone_id)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(zone
        .map(|z| {
            z.servers
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
                .collect()
        })
        .unwrap_or_default())
}

async fn reconcile(raft: &Raft, pool: &ReadPool, zone_id: i64) -> Result<(), String> {
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

    if membership.get_joint_config().len() > 1 {
        // A previous leader died between the joint and the final config: finish it.
        let target: BTreeSet<u64> = membership
            .get_joint_config()
            .last()
            .cloned()
            .unwrap_or_default();
        info!(voters = ?target, "finishing an interrupted membership change");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(target), true)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }

    for (id, node) in &want {
        if !nodes.contains_key(id) {
            info!(server = id, node = %node, "adding server as a learner");
            raft.add_learner(*id, node.clone(), false)
                .await
                .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
    }
    // Keep endpoints in step with the pool (an operator may re-add a server at a new address).
    Ok(())
}
