//! Cluster optimization plans (OpenNebula 7's DRS: `Plan`, `PlanManager`): `one.cluster.optimize`
//! computes a plan of migrations, `one.cluster.planexecute` starts it, and the leader applies
//! it here, one replicated write per period and plan.
//!
//! Where OpenNebula asks an external optimizer (`one_drs`), OneHA balances the allocated CPU
//! of the cluster's MONITORED hosts: while the most and the least loaded host (by CPU_USAGE,
//! then id) differ by more than a RUNNING VM of the first, the VM that leaves them closest
//! moves (each VM once, the target needing room for its CPU and memory and allowed by the
//! VM's group rules as [`crate::affinity`] reads them), at most
//! [`MAX_PLAN_ACTIONS`] moves. A plan without actions is not stored, as OpenNebula skips it.
//!
//! Applying follows `PlanManager::execute_plan` with oned.conf's defaults: at most
//! [`MAX_ACTIONS_PER_HOST`] running actions per target host and [`MAX_ACTIONS_PER_CLUSTER`]
//! per cluster; a migration (live with oned.conf's `LIVE_RESCHEDS = 1`, else cold) starts in
//! the same write that marks its action APPLYING; the action is DONE when the VM runs on its
//! host again, ERROR if the VM cannot migrate or ends elsewhere, TIMEOUT after
//! [`ACTION_TIMEOUT`] seconds; the plan is DONE, ERROR or TIMEOUT (`Plan::check_completed`)
//! once no action is READY or APPLYING. A VM moves only to a host its requirements keep.

use std::collections::{BTreeMap, BTreeSet};

use sqlstore::objects::plan::{self as rows, HostLoad, VmLoad};
use sqlstore::objects::vm::{self as vm_rows, Move};
use sqlstore::{Conn, SqlTxn};
use template::{Template, Value};

use crate::api::vm::{lcm, now, state};
use crate::cluster::Cluster;
use crate::tasks::TaskCtx;

/// `PlanState`.
pub mod plan_state {
    pub const READY: i64 = 0;
    pub const APPLYING: i64 = 1;
    pub const DONE: i64 = 2;
    pub const ERROR: i64 = 3;
    pub const TIMEOUT: i64 = 4;
}
use plan_state::*;

/// oned.conf's `MAX_ACTIONS_PER_HOST` default.
pub const MAX_ACTIONS_PER_HOST: usize = 1;
/// oned.conf's `MAX_ACTIONS_PER_CLUSTER` default.
pub const MAX_ACTIONS_PER_CLUSTER: usize = 30;
/// oned.conf's `ACTION_TIMEOUT` default, seconds.
pub const ACTION_TIMEOUT: i64 = 300;
/// The most migrations one plan holds.
pub const MAX_PLAN_ACTIONS: usize = 64;
/// The dummy driver's only system datastore.
const SYSTEM_DS: i64 = 0;

/// `PlanAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub id: i64,
    pub vm: i64,
    pub state: i64,
    pub operation: String,
    pub host: i64,
    pub ds: i64,
    pub timestamp: i64,
}

/// A plan's actions, as stored (`ACTION = [ ... ]` vectors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn parse(body: &str) -> Plan {
        let Ok(t) = Template::parse(body) else {
            return Plan::default();
        };
        let actions = t
            .get_all("ACTION")
            .filter_map(|a| a.value.as_vector())
            .map(|p| {
                let get = |k: &str| template::vector_get(p, k).unwrap_or("");
                let num = |k: &str| get(k).trim().parse().unwrap_or(-1);
                Action {
                    id: num("ID"),
                    vm: num("VM_ID"),
                    state: num("STATE"),
                    // Only OneHA writes plans: anything but a plain word is not an operation.
                    operation: Some(get("OPERATION"))
                        .filter(|o| o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                        .unwrap_or("")
                        .to_string(),
                    host: num("HOST_ID"),
                    ds: num("DS_ID"),
                    timestamp: num("TIMESTAMP").max(0),
                }
            })
            .collect();
        Plan { actions }
    }

    pub fn to_text(&self) -> String {
        let mut t = Template::default();
        for a in &self.actions {
            let pairs = [
                ("ID", a.id.to_string()),
                ("VM_ID", a.vm.to_string()),
                ("STATE", a.state.to_string()),
                ("OPERATION", a.operation.clone()),
                ("HOST_ID", a.host.to_string()),
                ("DS_ID", a.ds.to_string()),
                ("TIMESTAMP", a.timestamp.to_string()),
            ];
            let pairs = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            t.push("ACTION", Value::Vector(pairs));
        }
        t.to_text()
    }

    /// `Plan::check_completed`: the plan's state once no action is READY or APPLYING.
    fn completed(&self) -> Option<i64> {
        let mut st = DONE;
        for a in &self.actions {
            match a.state {
                READY | APPLYING => return None,
                ERROR => st = ERROR,
                TIMEOUT if st != ERROR => st = TIMEOUT,
                _ => {}
            }
        }
        Some(st)
    }
}

/// `Plan::to_xml`: the cluster body's PLAN.
pub fn plan_xml(cid: i64, state: i64, body: &str) -> String {
    let mut out = format!("<PLAN><ID>{cid}</ID><STATE>{state}</STATE>");
    for a in Plan::parse(body).actions {
        out.push_str(&format!(
            "<ACTION><ID>{}</ID><VM_ID>{}</VM_ID><STATE>{}</STATE><OPERATION>{}</OPERATION>\
             <HOST_ID>{}</HOST_ID><DS_ID>{}</DS_ID><TIMESTAMP>{}</TIMESTAMP></ACTION>",
            a.id, a.vm, a.state, a.operation, a.host, a.ds, a.timestamp
        ));
    }
    out.push_str("</PLAN>");
    out
}

/// The VM group rules of the VMs that have some, and where their peers are.
#[derive(Debug, Default)]
pub struct GroupRules {
    pub rules: BTreeMap<i64, crate::affinity::Rules>,
    pub host_of: BTreeMap<i64, i64>,
    /// The hosts each VM's requirements keep (AUTOMATIC_REQUIREMENTS & SCHED_REQUIREMENTS,
    /// OpenNebula's "Optimize:" matching); none for requirements that do not parse. A VM
    /// not listed may go anywhere.
    pub meets: BTreeMap<i64, BTreeSet<i64>>,
}

/// Reads the VM group rules of `vms`.
pub fn group_rules(c: &Conn, vms: &[VmLoad]) -> Result<GroupRules, sqlstore::SqlError> {
    let mut g = GroupRules::default();
    let bodies = if vms.is_empty() {
        Vec::new()
    } else {
        crate::sched_expr::host_resources(c)?
    };
    for v in vms {
        if let Some(r) = crate::affinity::read_rules(c, v.oid, &v.template, &mut g.host_of)? {
            g.rules.insert(v.oid, r);
        }
        let ut = sqlstore::objects::placement::user_template(c, v.oid)?.unwrap_or_default();
        let ask = crate::sched_expr::VmAsk::of(&v.template, &ut);
        let meets = crate::sched_expr::match_hosts(&ask, &bodies)
            .map(|m| m.hosts.into_keys().collect())
            .unwrap_or_default();
        g.meets.insert(v.oid, meets);
    }
    Ok(g)
}

/// The balancing policy described above: (vm, target host) moves, in order. A VM moves only
/// to a host its requirements keep and, in a VM group, its group's rules allow, as the
/// scheduler places it.
pub fn optimize(hosts: &[HostLoad], vms: &[VmLoad], groups: &GroupRules) -> Vec<(i64, i64)> {
    let mut usage: BTreeMap<i64, (i64, i64)> = hosts
        .iter()
        .map(|h| (h.oid, (h.cpu_usage, h.mem_usage)))
        .collect();
    let total: BTreeMap<i64, (i64, i64)> = hosts
        .iter()
        .map(|h| (h.oid, (h.total_cpu, h.total_mem)))
        .collect();
    let mut at = groups.host_of.clone();
    at.extend(vms.iter().map(|v| (v.oid, v.hid)));
    let mut moved = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < MAX_PLAN_ACTIONS {
        let by_load = |&(&h, &(cpu, _)): &(&i64, &(i64, i64))| (cpu, std::cmp::Reverse(h));
        let (Some((&src, &(src_cpu, _))), Some((&dst, &(dst_cpu, dst_mem)))) = (
            usage.iter().max_by_key(by_load),
            usage.iter().min_by_key(|&(&h, &(cpu, _))| (cpu, h)),
        ) else {
            break;
        };
        let (dst_total_cpu, dst_total_mem) = total.get(&dst).copied().unwrap_or((0, 0));
        let best = vms
            .iter()
            .filter(|v| at.get(&v.oid) == Some(&src) && !moved.contains(&v.oid))
            .filter(|v| v.cpu > 0 && dst_cpu + v.cpu < src_cpu)
            .filter(|v| dst_cpu + v.cpu <= dst_total_cpu && dst_mem + v.mem <= dst_total_mem)
            .filter(|v| groups.rules.get(&v.oid).is_none_or(|r| r.allows(dst, &at)))
            .filter(|v| groups.meets.get(&v.oid).is_none_or(|m| m.contains(&dst)))
            .min_by_key(|v| (((src_cpu - v.cpu) - (dst_cpu + v.cpu)).abs(), v.oid));
        let Some(v) = best else { break };
        if let Some(u) = usage.get_mut(&src) {
            u.0 -= v.cpu;
            u.1 -= v.mem;
        }
        if let Some(u) = usage.get_mut(&dst) {
            u.0 += v.cpu;
            u.1 += v.mem;
        }
        at.insert(v.oid, dst);
        moved.insert(v.oid);
        out.push((v.oid, dst));
    }
    out
}

/// A new READY plan for the moves.
pub fn new_plan(moves: &[(i64, i64)]) -> Plan {
    Plan {
        actions: moves
            .iter()
            .enumerate()
            .map(|(i, &(vm, host))| Action {
                id: i as i64,
                vm,
                state: READY,
                operation: "migrate".into(),
                host,
                ds: SYSTEM_DS,
                timestamp: 0,
            })
            .collect(),
    }
}

/// One period of an APPLYING plan (`PlanManager::execute_plan`): the statements that move
/// its actions on and start new migrations, with the plan's new state and body; `None` if
/// nothing changes.
/// `live`: oned.conf's `LIVE_RESCHEDS`, which `PlanManager` applies to every migration.
fn step(
    c: &Conn,
    cid: i64,
    body: &str,
    now: i64,
    live: bool,
) -> Result<Option<SqlTxn>, sqlstore::SqlError> {
    let mut plan = Plan::parse(body);
    let before = plan.clone();
    let mut stmts = Vec::new();
    let mut per_host: BTreeMap<i64, usize> = BTreeMap::new();
    let mut in_cluster = 0;
    for a in plan.actions.iter_mut().filter(|a| a.state == APPLYING) {
        match rows::vm_state(c, a.vm)? {
            Some((state::ACTIVE, lcm::RUNNING, hid)) if hid == a.host => a.state = DONE,
            Some((state::ACTIVE, lcm::RUNNING, _)) | None => a.state = ERROR,
            Some((st, _, _)) if st != state::ACTIVE => a.state = ERROR,
            _ if a.timestamp + ACTION_TIMEOUT < now => a.state = TIMEOUT,
            _ => {
                *per_host.entry(a.host).or_default() += 1;
                in_cluster += 1;
            }
        }
    }
    for a in plan.actions.iter_mut().filter(|a| a.state == READY) {
        let busy = per_host.get(&a.host).copied().unwrap_or(0);
        if busy >= MAX_ACTIONS_PER_HOST || in_cluster >= MAX_ACTIONS_PER_CLUSTER {
            break;
        }
        a.timestamp = now;
        match rows::vm_state(c, a.vm)? {
            Some((state::ACTIVE, lcm::RUNNING, hid)) if hid != a.host && hid >= 0 => {
                stmts.extend(vm_rows::move_stmts(&Move {
                    oid: a.vm,
                    from: (state::ACTIVE, lcm::RUNNING),
                    to: (
                        state::ACTIVE,
                        if live {
                            lcm::MIGRATE
                        } else {
                            lcm::SAVE_MIGRATE
                        },
                    ),
                    now,
                    leaves_host: false,
                }));
                stmts.extend(crate::api::vm_migrate::new_host_stmts(
                    a.vm, hid, a.host, None, now,
                ));
                a.state = APPLYING;
                *per_host.entry(a.host).or_default() += 1;
                in_cluster += 1;
            }
            _ => a.state = ERROR,
        }
    }
    let new_state = plan.completed().unwrap_or(APPLYING);
    if plan == before && new_state == APPLYING {
        return Ok(None);
    }
    stmts.push(rows::set(
        cid,
        new_state,
        plan.to_text(),
        Some((APPLYING, body.to_string())),
    ));
    Ok(Some(SqlTxn { stmts }))
}

/// The leader's pass over APPLYING plans, each a write that re-checks the plan and its VMs
/// as read: one that changed meanwhile is read again next period.
pub async fn pass(ctx: &TaskCtx, cluster: &Cluster, pool: &sqlstore::ReadPool, live: bool) {
    let read = crate::db::read(pool, move |c| {
        let mut txns = Vec::new();
        for (cid, _, body) in rows::in_state(c, APPLYING)? {
            txns.extend(step(c, cid, &body, now(), live)?);
        }
        Ok(txns)
    })
    .await;
    let txns = match read {
        Ok(t) => t,
        Err(e) => {
            ctx.warn("reading optimization plans failed", &e);
            return;
        }
    };
    for txn in txns {
        // A refusal means the plan or a VM changed: the next period reads them again. A write
        // that failed is logged, unless leadership moved (the new leader carries on).
        match cluster.write(txn).await {
            Ok(_) | Err(consensus::WriteError::NotLeader) => {}
            Err(e) => ctx.warn("applying an optimization plan step failed", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(oid: i64, cpu_usage: i64) -> HostLoad {
        HostLoad {
            oid,
            total_cpu: 800,
            cpu_usage,
            total_mem: 1 << 24,
            mem_usage: 0,
        }
    }

    fn vm(oid: i64, hid: i64, cpu: i64) -> VmLoad {
        VmLoad {
            oid,
            hid,
            cpu,
            mem: 1024,
            template: String::new(),
        }
    }

    #[test]
    fn the_busiest_host_gives_vms_to_the_idlest_until_they_are_balanced() {
        let none = GroupRules::default();
        let vms = [vm(0, 0, 100), vm(1, 0, 100), vm(2, 0, 100), vm(3, 0, 100)];
        let moves = optimize(&[host(0, 400), host(1, 0)], &vms, &none);
        assert_eq!(moves, vec![(0, 1), (1, 1)]);
        // Balanced already, or a VM too big to help: nothing.
        assert!(optimize(&[host(0, 100), host(1, 100)], &[vm(0, 0, 100)], &none).is_empty());
        assert!(optimize(&[host(0, 300), host(1, 0)], &[vm(0, 0, 300)], &none).is_empty());
        // A host with no room takes nothing.
        let mut full = host(1, 0);
        full.total_cpu = 50;
        assert!(optimize(&[host(0, 400), full], &vms, &none).is_empty());
    }

    #[test]
    fn requirements_keep_a_vm_off_the_hosts_they_exclude() {
        let vms = [vm(0, 0, 100), vm(1, 0, 100), vm(2, 0, 100), vm(3, 0, 100)];
        let mut groups = GroupRules::default();
        for v in 0..4 {
            groups.meets.insert(v, BTreeSet::from([0]));
        }
        assert!(optimize(&[host(0, 400), host(1, 0)], &vms, &groups).is_empty());
        groups.meets.insert(2, BTreeSet::from([0, 1]));
        assert_eq!(
            optimize(&[host(0, 400), host(1, 0)], &vms, &groups),
            vec![(2, 1)]
        );
    }

    #[test]
    fn vm_group_rules_keep_a_vm_where_it_is() {
        // VM 0 is kept on host 0 (HOST_AFFINED), VM 1 away from host 1, where VM 9 runs.
        let roles = "ROLE=[ ID=\"0\", NAME=\"a\", HOST_AFFINED=\"0\", VMS=\"0\" ]\n\
                     ROLE=[ ID=\"1\", NAME=\"b\", POLICY=\"ANTI_AFFINED\", VMS=\"1,9\" ]\n";
        let mut groups = GroupRules::default();
        groups
            .rules
            .insert(0, crate::affinity::rules_for(0, "a", roles, ""));
        groups
            .rules
            .insert(1, crate::affinity::rules_for(1, "b", roles, ""));
        groups.host_of.insert(9, 1);
        let vms = [vm(0, 0, 100), vm(1, 0, 100), vm(2, 0, 100), vm(3, 0, 100)];
        let moves = optimize(&[host(0, 400), host(1, 0)], &vms, &groups);
        assert_eq!(moves, vec![(2, 1), (3, 1)]);
    }

    #[test]
    fn plans_round_trip_and_complete_as_opennebula() {
        let mut p = new_plan(&[(4, 1), (5, 1)]);
        assert_eq!(Plan::parse(&p.to_text()), p);
        assert_eq!(p.completed(), None);
        p.actions[0].state = DONE;
        p.actions[1].state = TIMEOUT;
        assert_eq!(p.completed(), Some(TIMEOUT));
        p.actions[0].state = ERROR;
        assert_eq!(p.completed(), Some(ERROR));
        let xml = plan_xml(100, READY, &new_plan(&[(4, 1)]).to_text());
        assert_eq!(
            xml,
            "<PLAN><ID>100</ID><STATE>0</STATE><ACTION><ID>0</ID><VM_ID>4</VM_ID><STATE>0</STATE>\
             <OPERATION>migrate</OPERATION><HOST_ID>1</HOST_ID><DS_ID>0</DS_ID>\
             <TIMESTAMP>0</TIMESTAMP></ACTION></PLAN>"
        );
    }
}
