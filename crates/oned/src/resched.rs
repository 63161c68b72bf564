//! The scheduler's answer to RESCHED (`onevm resched`, `onehost flush`): a flagged VM is moved
//! to another host that fits it, in a cluster it may use, meeting its requirements, by its
//! rank and within its VM group's rules, as OpenNebula's scheduler migrates rescheduled VMs.
//! oned.conf's `LIVE_RESCHEDS` (read as `PlanManager` reads it: `1` is live, anything else
//! cold, OpenNebula's default `0`) chooses the move: live, a RUNNING VM goes through MIGRATE
//! back to RUNNING; cold, through SAVE_MIGRATE, PROLOG_MIGRATE and BOOT_MIGRATE (a powered-off
//! one through PROLOG_MIGRATE_POWEROFF either way). The flag is cleared in the same write,
//! which is guarded by the VM's state and host, so a leader change never moves a VM twice. A
//! VM no other host takes keeps its flag and is tried again next period.

use std::collections::BTreeMap;

use sqlstore::objects::host::HostRoom;
use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::{Conn, SqlTxn};

use crate::api::vm::now;
use crate::api::vm_migrate::{first_state, new_host_stmts};
use crate::cluster::Cluster;
use crate::sweep::Sweep;
use crate::tasks::TaskCtx;

/// Flagged VMs looked at per period.
pub const BATCH: usize = 64;

/// A flagged VM and where it may go.
struct Flagged {
    vm: VmRow,
    clusters: Option<Vec<i64>>,
    rules: Option<crate::affinity::Rules>,
    /// The hosts its requirements keep (`None`: they do not parse, it stays where it is).
    matched: Option<crate::sched_expr::Matched>,
}

/// `LIVE_RESCHEDS` of oned.conf: whether rescheduled VMs (and plan migrations) move live.
pub fn live_rescheds(t: &template::Template) -> bool {
    t.single("LIVE_RESCHEDS")
        .and_then(|v| v.trim().parse::<i64>().ok())
        == Some(1)
}

/// What a period reads: the flagged VMs, the hosts with their room, where group peers are.
struct Found {
    flagged: Vec<Flagged>,
    hosts: Vec<HostRoom>,
    host_of: BTreeMap<i64, i64>,
}

fn read(c: &Conn, sweep: &mut Sweep) -> Result<Found, sqlstore::SqlError> {
    let mut host_of = BTreeMap::new();
    let mut flagged = Vec::new();
    let found = rows::rescheduled(c, sweep.after(), sweep.limit())?;
    sweep.advance(found.len(), found.last().map(|v| v.head.owned.oid));
    let bodies = if found.is_empty() {
        Vec::new()
    } else {
        crate::sched_expr::host_resources(c)?
    };
    for vm in found {
        let (images, nets) = crate::scheduler::images_and_networks(&vm.template);
        let clusters = sqlstore::objects::cluster::allowed_for(c, &images, &nets)?;
        let rules = crate::affinity::read_rules(c, vm.head.owned.oid, &vm.template, &mut host_of)?;
        let ask = crate::sched_expr::VmAsk::of(&vm.template, &vm.user_template);
        let matched = crate::sched_expr::match_hosts(&ask, &bodies).ok();
        flagged.push(Flagged {
            vm,
            clusters,
            rules,
            matched,
        });
    }
    let hosts = if flagged.is_empty() {
        Vec::new()
    } else {
        sqlstore::objects::host::with_room(c)?
    };
    Ok(Found {
        flagged,
        hosts,
        host_of,
    })
}

/// Where each flagged VM goes: (vm, its host now, the new host), least loaded host first.
fn choose(
    flagged: &[Flagged],
    mut hosts: Vec<HostRoom>,
    mut host_of: BTreeMap<i64, i64>,
) -> Vec<(usize, i64, i64)> {
    let mut out = Vec::new();
    for (i, f) in flagged.iter().enumerate() {
        let Some(now_on) = f.vm.history.last().map(|h| h.hid) else {
            continue;
        };
        let Some(matched) = &f.matched else {
            continue;
        };
        let need_cpu = (f.vm.cpu * 100.0).round() as i64;
        let need_mem = f.vm.memory * 1024;
        crate::scheduler::order_hosts(&mut hosts, Some(matched));
        let allowed = |h: &HostRoom| {
            f.clusters
                .as_ref()
                .is_none_or(|c| c.contains(&h.cluster_id))
                && matched.hosts.contains_key(&h.oid)
        };
        let fits = |h: &HostRoom| h.free_cpu >= need_cpu && h.free_mem >= need_mem;
        let keeps = |h: &HostRoom| f.rules.as_ref().is_none_or(|r| r.allows(h.oid, &host_of));
        if let Some(h) = hosts
            .iter_mut()
            .find(|h| h.oid != now_on && allowed(h) && fits(h) && keeps(h))
        {
            h.free_cpu -= need_cpu;
            h.free_mem -= need_mem;
            h.running_vms += 1;
            host_of.insert(f.vm.head.owned.oid, h.oid);
            out.push((i, now_on, h.oid));
        }
    }
    out
}

/// One period: moves the flagged VMs another host takes, of those `sweep` reads next. A write
/// refused because the VM or the host changed is tried again next period; a failed write is
/// logged.
pub async fn pass(
    ctx: &TaskCtx,
    cluster: &Cluster,
    pool: &sqlstore::ReadPool,
    live: bool,
    sweep: &mut Sweep,
) {
    let mut next = *sweep;
    let read = move |c: &Conn| read(c, &mut next).map(|found| (found, next));
    let Found {
        flagged,
        hosts,
        host_of,
    } = match crate::db::read(pool, read).await {
        Ok((found, next)) => {
            *sweep = next;
            found
        }
        Err(e) => {
            ctx.warn("reading VMs flagged for rescheduling failed", &e);
            return;
        }
    };
    for (i, from, to) in choose(&flagged, hosts, host_of) {
        let v = &flagged[i].vm;
        let Some(first) = first_state(v, live) else {
            continue;
        };
        let oid = v.head.owned.oid;
        let mut stmts = rows::move_stmts(&Move {
            oid,
            from: (v.state, v.lcm_state),
            to: first,
            now: now(),
            leaves_host: false,
        });
        stmts.extend(new_host_stmts(oid, from, to, None, now()));
        stmts.push(rows::host_fits(oid));
        stmts.push(rows::resched_done(oid));
        match cluster.write(SqlTxn { stmts }).await {
            Ok(_) | Err(consensus::WriteError::NotLeader) => {}
            Err(e) => ctx.warn("moving a VM flagged for rescheduling failed", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn only_live_rescheds_1_moves_vms_live() {
        let live = |text: &str| live_rescheds(&template::Template::parse(text).unwrap());
        assert!(!live(""), "OpenNebula's default is cold");
        assert!(!live("LIVE_RESCHEDS = 0"));
        assert!(live("LIVE_RESCHEDS = 1"));
        assert!(live("LIVE_RESCHEDS = \" 1 \""));
        assert!(!live("LIVE_RESCHEDS = 2"), "PlanManager compares with 1");
        assert!(!live("LIVE_RESCHEDS = yes"));
        assert!(!live(include_str!("../../../share/etc/oned.conf")));
    }
}
