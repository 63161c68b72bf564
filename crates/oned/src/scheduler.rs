//! Leader-only duties for virtual machines, as OpenNebula's scheduler and the `dummy` driver:
//!
//! - the scheduler places PENDING VMs on MONITORED hosts with free capacity, lowest id first, on
//!   the least loaded host;
//! - the driver moves VMs through the transient states an action or a deployment left
//!   (PROLOG -> BOOT -> RUNNING, SHUTDOWN -> EPILOG -> DONE...), one step per period.
//!
//! Every change is a replicated write whose statements re-check the state they expect, so a new
//! leader carries on where the old one stopped and no VM is ever deployed twice.

use std::convert::Infallible;
use std::time::Duration;

use consensus::WriteError;
use sqlstore::{ReadPool, SqlStmt, SqlTxn, SqlValue};
use tracing::debug;

use crate::api::host::MONITORED;
use crate::api::vm::{deploy_stmts, lcm, now, state};
use crate::cluster::{Cluster, Role};
use crate::tasks::TaskCtx;

const PERIOD: Duration = Duration::from_millis(300);
/// VMs placed per period.
const BATCH: usize = 16;

/// Driver steps, latest stage first so a VM moves one step per period: (state, lcm) -> (state,
/// lcm), and whether the VM leaves its host.
/// (STATE, LCM_STATE) of a VM.
type VmState = (i64, i64);

const STEPS: &[(VmState, VmState, bool)] = &[
    (
        (state::ACTIVE, lcm::BOOT),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_POWEROFF),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_SUSPENDED),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG),
        (state::ACTIVE, lcm::BOOT),
        false,
    ),
    ((state::ACTIVE, lcm::EPILOG), (state::DONE, lcm::INIT), true),
    (
        (state::ACTIVE, lcm::SHUTDOWN),
        (state::ACTIVE, lcm::EPILOG),
        false,
    ),
    (
        (state::ACTIVE, lcm::SHUTDOWN_POWEROFF),
        (state::POWEROFF, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::SAVE_SUSPEND),
        (state::SUSPENDED, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::EPILOG_STOP),
        (state::STOPPED, lcm::INIT),
        true,
    ),
    (
        (state::ACTIVE, lcm::SAVE_STOP),
        (state::ACTIVE, lcm::EPILOG_STOP),
        false,
    ),
    (
        (state::ACTIVE, lcm::EPILOG_UNDEPLOY),
        (state::UNDEPLOYED, lcm::INIT),
        true,
    ),
    (
        (state::ACTIVE, lcm::SHUTDOWN_UNDEPLOY),
        (state::ACTIVE, lcm::EPILOG_UNDEPLOY),
        false,
    ),
];

fn driver_txn(now: i64) -> SqlTxn {
    let mut stmts = Vec::new();
    for &((fs, fl), (ts, tl), leaves) in STEPS {
        if leaves {
            stmts.push(SqlStmt::new(
                "UPDATE history SET etime = ?3 WHERE etime = 0 AND vid IN
                   (SELECT oid FROM vm_pool WHERE state = ?1 AND lcm_state = ?2)",
                vec![SqlValue::Int(fs), SqlValue::Int(fl), SqlValue::Int(now)],
            ));
        }
        stmts.push(SqlStmt::new(
            &format!(
                "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = ?3,
                lcm_state = ?4, hid = CASE WHEN ?5 THEN -1 ELSE hid END,
                etime = CASE WHEN ?3 = {} THEN ?6 ELSE etime END
             WHERE state = ?1 AND lcm_state = ?2",
                state::DONE
            ),
            vec![
                SqlValue::Int(fs),
                SqlValue::Int(fl),
                SqlValue::Int(ts),
                SqlValue::Int(tl),
                SqlValue::Int(leaves as i64),
                SqlValue::Int(now),
            ],
        ));
    }
    stmts.push(sqlstore::objects::vm::recount_hosts());
    SqlTxn { stmts }
}

/// (pending VMs in id order with their cpu and memory, monitored hosts with free capacity).
type Plan = (Vec<(i64, f64, i64)>, Vec<(i64, i64, i64, i64)>);

fn read_plan(pool: &ReadPool) -> Result<(Plan, bool), sqlstore::DbError> {
    pool.with(|c| {
        let mut st = c.prepare(&format!(
            "SELECT oid, cpu, memory FROM vm_pool WHERE state = {} ORDER BY oid LIMIT ?1",
            state::PENDING
        ))?;
        let vms: Vec<(i64, f64, i64)> = st
            .query_map([BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare(&format!(
            "SELECT oid, total_cpu - cpu_usage, total_mem - mem_usage, running_vms
             FROM host_pool WHERE state = {MONITORED} ORDER BY running_vms, oid"
        ))?;
        let hosts: Vec<(i64, i64, i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let moving: i64 = c.query_row(
            &format!(
                "SELECT count(*) FROM vm_pool WHERE state = {} AND lcm_state != {}",
                state::ACTIVE,
                lcm::RUNNING
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(((vms, hosts), moving > 0))
    })
}

/// Chooses a host for each pending VM that fits somewhere, least loaded first.
fn place(plan: Plan) -> Vec<(i64, i64)> {
    let (vms, mut hosts) = plan;
    let mut out = Vec::new();
    for (vid, cpu, memory) in vms {
        let need_cpu = (cpu * 100.0).round() as i64;
        let need_mem = memory * 1024;
        hosts.sort_by_key(|h| (h.3, h.0));
        if let Some(h) = hosts
            .iter_mut()
            .find(|h| h.1 >= need_cpu && h.2 >= need_mem)
        {
            h.1 -= need_cpu;
            h.2 -= need_mem;
            h.3 += 1;
            out.push((vid, h.0));
        }
    }
    out
}

/// The scheduler task: every period, on the leader (or solo), moves VMs one driver step and
/// places pending ones. A failed read or write is logged, counted and tried again next period.
pub async fn run(ctx: TaskCtx, cluster: Cluster, pool: ReadPool) -> Result<(), Infallible> {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !matches!(cluster.role(), Role::Leader | Role::Solo) {
            continue;
        }
        let reader = pool.clone();
        let (plan, moving) = match tokio::task::spawn_blocking(move || read_plan(&reader)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                ctx.warn("reading pending VMs and hosts failed", &e);
                continue;
            }
            Err(e) => {
                ctx.warn("reading pending VMs and hosts failed", &e);
                continue;
            }
        };
        if moving {
            if let Err(e) = cluster.write(driver_txn(now())).await {
                write_failed(&ctx, "driver step failed; retried next period", &e);
            }
        }
        for (vid, hid) in place(plan) {
            // Each placement re-checks the VM is still pending and the host still has room.
            let txn = SqlTxn {
                stmts: deploy_stmts(vid, hid, true, now()),
            };
            if let Err(e) = cluster.write(txn).await {
                let what = format!("placing VM {vid} on host {hid} failed; retried next period");
                write_failed(&ctx, &what, &e);
            }
        }
    }
}

/// A write refused because leadership moved is expected (the new leader carries on); any other
/// failure is a warning.
fn write_failed(ctx: &TaskCtx, what: &str, e: &WriteError) {
    match e {
        WriteError::NotLeader { .. } => debug!(error = %e, "{what}: not the leader any more"),
        _ => ctx.warn(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_vms_go_to_the_least_loaded_host_that_fits() {
        let vms = vec![
            (0, 1.0, 1024),
            (1, 4.0, 1024),
            (2, 8.0, 1024),
            (3, 0.5, 512),
        ];
        let hosts = vec![(0, 800, 16 << 20, 0), (1, 300, 16 << 20, 0)];
        assert_eq!(place((vms, hosts)), vec![(0, 0), (1, 0), (3, 1)]);
    }
}
