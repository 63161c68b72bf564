//! Runs the VMs' scheduled actions on the leader, as OpenNebula's scheduled action manager:
//! every period, each due action (`SCHED_ACTION` of a VM template, see `api::vm_sched`) runs
//! as the VM action it names.
//!
//! Exactly once across a leader change: the action's state change and the record that it ran
//! (DONE, the next TIME of a repeating one) are one replicated write, guarded on the template
//! text it was computed from and on the VM state. Once it applied, every leader reads the
//! action as done; if it did not, the next leader finds it still due and runs it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use consensus::WriteError;
use sqlstore::objects::vm::{self as rows, Move};
use sqlstore::{Conn, ReadPool, SqlStmt, SqlTxn};
use tracing::{debug, info};

use crate::api::vm::{lcm, now, state};
use crate::api::vm_sched::{actions, with_actions, SchedAction};
use crate::cluster::{Cluster, LeaderTicks};
use crate::tasks::TaskCtx;

const PERIOD: Duration = Duration::from_millis(500);
/// How long an action that failed waits before it is tried again (OpenNebula's manager
/// passes every 30 s).
const RETRY_FAILED: Duration = Duration::from_secs(30);
/// VMs read per period.
const BATCH: i64 = 256;

/// A VM with scheduled actions.
struct WithActions {
    oid: i64,
    state: i64,
    lcm_state: i64,
    template: String,
}

fn read_vms(c: &Conn) -> Result<Vec<WithActions>, sqlstore::SqlError> {
    let mut st = c.prepare_cached(
        "SELECT oid, state, lcm_state, template FROM vm_pool
         WHERE state <> ?1 AND template LIKE '%SCHED_ACTION%' ORDER BY oid LIMIT ?2",
    )?;
    let rows = st
        .query_map([state::DONE, BATCH], |r| {
            Ok(WithActions {
                oid: r.get(0)?,
                state: r.get(1)?,
                lcm_state: r.get(2)?,
                template: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The (state, lcm) a VM action moves a VM in (`st`, `lc`) to, as `one.vm.action` does.
pub fn target(action: &str, st: i64, lc: i64) -> Option<(i64, i64)> {
    use lcm::*;
    use state::*;
    let running = st == ACTIVE && lc == RUNNING;
    match action {
        "terminate" | "terminate-hard" if running => Some((ACTIVE, SHUTDOWN)),
        "terminate" | "terminate-hard"
            if matches!(
                st,
                PENDING | HOLD | POWEROFF | SUSPENDED | STOPPED | UNDEPLOYED
            ) =>
        {
            Some((DONE, INIT))
        }
        "hold" if st == PENDING => Some((HOLD, INIT)),
        "release" if st == HOLD => Some((PENDING, INIT)),
        "poweroff" | "poweroff-hard" if running => Some((ACTIVE, SHUTDOWN_POWEROFF)),
        "suspend" if running => Some((ACTIVE, SAVE_SUSPEND)),
        "stop" if running => Some((ACTIVE, SAVE_STOP)),
        "undeploy" | "undeploy-hard" if running => Some((ACTIVE, SHUTDOWN_UNDEPLOY)),
        "reboot" | "reboot-hard" if running => Some((ACTIVE, RUNNING)),
        "resume" => match st {
            POWEROFF => Some((ACTIVE, BOOT_POWEROFF)),
            SUSPENDED => Some((ACTIVE, BOOT_SUSPENDED)),
            STOPPED | UNDEPLOYED => Some((PENDING, INIT)),
            _ => None,
        },
        _ => None,
    }
}

fn state_str(st: i64, lc: i64) -> &'static str {
    if st == state::ACTIVE {
        wire::LcmState::from_i64(lc).map_or("UNKNOWN", wire::LcmState::name)
    } else {
        wire::VmState::from_i64(st).map_or("UNKNOWN", wire::VmState::name)
    }
}

/// The write that runs action `sa` of `vm` at `now`: its state change (if it can run) and the
/// record of the run, or of the failure, guarded on the template read. Whether it runs.
fn run_stmts(vm: &WithActions, sa: &SchedAction, now: i64) -> (Vec<SqlStmt>, bool) {
    let t = template::Template::parse(&vm.template).unwrap_or_default();
    let mut list = actions(&t, vm.oid);
    let to = target(&sa.action, vm.state, vm.lcm_state);
    let mut stmts = Vec::new();
    for a in list.iter_mut().filter(|a| a.id == sa.id) {
        match to {
            Some(_) => {
                a.message.clear();
                a.next_action(now);
            }
            None => {
                let why = if crate::api::vm_sched::VM_ACTIONS[..13].contains(&sa.action.as_str()) {
                    format!(
                        "Error performing action \"{}\": This action is not available for \
                         state {}",
                        sa.action,
                        state_str(vm.state, vm.lcm_state)
                    )
                } else {
                    format!("Action \"{}\" is not supported by this server", sa.action)
                };
                a.message = format!("{} : {why}", log_time(now));
            }
        }
    }
    if let Some(to) = to {
        stmts.extend(rows::move_stmts(&Move {
            oid: vm.oid,
            from: (vm.state, vm.lcm_state),
            to,
            now,
            leaves_host: to.0 == state::DONE || to.0 == state::PENDING,
        }));
    }
    stmts.push(sqlstore::objects::replace_template(
        rows::TABLE,
        "template",
        vm.oid,
        with_actions(&t, &list).to_text(),
        vm.template.clone(),
    ));
    (stmts, to.is_some())
}

/// `one_util::log_time`: `Tue Dec 01 01:44:47 2026` (UTC here).
fn log_time(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = crate::api::vm_sched::civil(day);
    format!(
        "{} {} {d:02} {:02}:{:02}:{:02} {y}",
        DAYS[day.rem_euclid(7) as usize],
        MONTHS[((m - 1).clamp(0, 11)) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The task: every period, on the leader (or solo), runs the due actions, one write each.
pub async fn run(ctx: TaskCtx, cluster: Cluster, pool: ReadPool) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    let mut failed: HashMap<(i64, i64), Instant> = HashMap::new();
    loop {
        ticks.next().await;
        crate::api::backupjob::pass(&ctx, &cluster, &pool).await;
        let vms = match crate::db::read(&pool, read_vms).await {
            Ok(v) => v,
            Err(e) => {
                ctx.warn("reading scheduled actions failed", &e);
                continue;
            }
        };
        failed.retain(|_, at| at.elapsed() < RETRY_FAILED);
        let now = now();
        for vm in &vms {
            let t = template::Template::parse(&vm.template).unwrap_or_default();
            // One action per VM and pass: the next one is computed from what this one left.
            let Some(sa) = actions(&t, vm.oid)
                .into_iter()
                .find(|a| a.is_due(now) && !failed.contains_key(&(vm.oid, a.id)))
            else {
                continue;
            };
            let (stmts, runs) = run_stmts(vm, &sa, now);
            if !runs {
                failed.insert((vm.oid, sa.id), Instant::now());
            }
            match cluster.write(SqlTxn { stmts }).await {
                Ok(sqlstore::TxnOutcome::Done { .. }) if runs => info!(
                    vm = vm.oid,
                    sched = sa.id,
                    action = %sa.action,
                    "scheduled action ran"
                ),
                Ok(sqlstore::TxnOutcome::Done { .. }) => {}
                // The VM or its template changed since it was read: read again next period.
                Ok(sqlstore::TxnOutcome::Failed(e)) => {
                    debug!(vm = vm.oid, sched = sa.id, error = ?e, "scheduled action raced")
                }
                Err(WriteError::NotLeader) => debug!("scheduled action: not the leader any more"),
                Err(e) => ctx.warn("running a scheduled action failed", &e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_is_opennebulas_format() {
        assert_eq!(log_time(0), "Thu Jan 01 00:00:00 1970");
        assert_eq!(log_time(1_795_907_087), "Sat Nov 28 23:04:47 2026");
    }

    #[test]
    fn a_due_action_runs_once_in_one_guarded_write() {
        let vm = WithActions {
            oid: 4,
            state: state::ACTIVE,
            lcm_state: lcm::RUNNING,
            template: "SCHED_ACTION = [ ACTION = \"poweroff\", ID = \"0\", TIME = \"10\" ]".into(),
        };
        let t = template::Template::parse(&vm.template).unwrap_or_default();
        let sa = actions(&t, 4).remove(0);
        assert!(sa.is_due(11));
        let (stmts, runs) = run_stmts(&vm, &sa, 11);
        assert!(runs);
        assert!(stmts.len() >= 2);
        let hold = target("hold", state::ACTIVE, lcm::RUNNING);
        assert_eq!(hold, None);
    }
}
