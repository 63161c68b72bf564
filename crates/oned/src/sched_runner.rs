//! Runs the VMs' scheduled actions on the leader, as OpenNebula's scheduled action manager:
//! every period, each due action (`SCHED_ACTION` of a VM template, see `api::vm_sched`) runs
//! as the VM action it names.
//!
//! Exactly once across a leader change: the action's state change and the record that it ran
//! (DONE, the next TIME of a repeating one) are one replicated write, guarded on the template
//! text it was computed from and on the VM state. Once it applied, every leader reads the
//! action as done; if it did not, the next leader finds it still due and runs it.
//!
//! Snapshots, disk snapshots and backups (`ScheduledActionManager::vm_action_call`) take their
//! ARGS as OpenNebula parses them and are built by the methods' own code (`api::vm_snapshots`,
//! `api::vm_disk_ops`, `api::vm_backup`) as oneadmin, quota guards included; a refusal is the
//! action's MESSAGE, worded as OpenNebula's `Request::failure_message`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::WriteError;
use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::{Conn, ReadPool, SqlStmt, SqlTxn};
use tracing::{debug, info};

use crate::api::quota::{Charge, Wording};
use crate::api::vm::{now, state, VMS};
use crate::api::vm_actions::{outcome, Outcome};
use crate::api::vm_sched::{actions, with_actions, SchedAction};
use crate::api::{vm_backup, vm_disk_ops, vm_snapshots, Failure};
use crate::cluster::{Cluster, LeaderTicks};
use crate::config::Config;
use crate::sweep::Sweep;
use crate::tasks::TaskCtx;

const PERIOD: Duration = Duration::from_millis(500);
/// How long an action that failed waits before it is tried again (OpenNebula's manager
/// passes every 30 s).
const RETRY_FAILED: Duration = Duration::from_secs(30);
/// VMs read per period, in a [`Sweep`]: VMs keep their actions once done, so reading the same
/// lowest ids every period would leave the actions of any VM past them unrun for good.
const BATCH: usize = 256;

/// A VM with scheduled actions.
struct WithActions {
    oid: i64,
    state: i64,
    lcm_state: i64,
    template: String,
    uid: i64,
    gid: i64,
}

fn read_vms(c: &Conn, sweep: Sweep) -> Result<Vec<WithActions>, sqlstore::SqlError> {
    let mut st = c.prepare_cached(sqlstore::objects::vm::WITH_SCHED_ACTIONS)?;
    let rows = st
        .query_map([state::DONE, sweep.limit() as i64, sweep.after()], |r| {
            Ok(WithActions {
                oid: r.get(0)?,
                state: r.get(1)?,
                lcm_state: r.get(2)?,
                template: r.get(3)?,
                uid: r.get(4)?,
                gid: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The write that runs action `sa` of `vm` at `now`: its state change (if it can run) and the
/// record of the run, or of the failure, guarded on the template read. Whether it runs.
fn run_stmts(vm: &WithActions, sa: &SchedAction, now: i64) -> (Vec<SqlStmt>, bool) {
    let t = template::Template::parse(&vm.template).unwrap_or_default();
    let mut list = actions(&t, vm.oid);
    let (to, refused) = match outcome(&sa.action, vm.oid, vm.state, vm.lcm_state) {
        Outcome::Move(to) => (Some(to), None),
        Outcome::Nothing => (None, None),
        Outcome::Refused(why) => (
            None,
            Some(format!("Error performing action \"{}\": {why}", sa.action)),
        ),
        Outcome::Unsupported => (
            None,
            Some(format!(
                "Action \"{}\" is not supported by this server",
                sa.action
            )),
        ),
    };
    let mut stmts = Vec::new();
    for a in list.iter_mut().filter(|a| a.id == sa.id) {
        match &refused {
            None => {
                a.message.clear();
                a.next_action(now);
            }
            Some(why) => a.message = timed_message(now, why),
        }
    }
    if let Some(to) = to {
        let from = (vm.state, vm.lcm_state);
        stmts.extend(crate::api::vm::action_move(
            &vm.template,
            vm.oid,
            from,
            to,
            now,
        ));
        // Run for the VM's owner, whose action it is.
        let by = (vm.uid, vm.gid);
        let history = crate::api::vm_actions::history(&sa.action, vm.oid, None, from, to, by, now);
        stmts.extend(history);
    }
    stmts.push(sqlstore::objects::replace_template(
        rows::TABLE,
        "template",
        vm.oid,
        with_actions(&t, &list).to_text(),
        vm.template.clone(),
    ));
    (stmts, refused.is_none())
}

/// A VM call of a scheduled action, its ARGS parsed.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    SnapshotCreate(String),
    SnapshotRevert(i64),
    SnapshotDelete(i64),
    DiskSnapshotCreate(i64, String),
    DiskSnapshotRevert(i64, i64),
    DiskSnapshotDelete(i64, i64),
    Backup(i64, bool),
}

/// One ARGS token as `one_util::str_cast` reads it: an integer with nothing after it.
fn int(t: Option<&str>) -> Option<i64> {
    t.map(str::trim_start).and_then(|t| t.parse().ok())
}

/// A bool token as `istream >> bool` reads it: 0 or 1.
fn flag(t: Option<&str>) -> Option<bool> {
    match int(t)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn text(t: Option<&str>) -> Option<String> {
    t.filter(|t| !t.is_empty()).map(str::to_string)
}

/// `vm_action_call`'s parse of `args` for `action`: None for the state actions, else the call
/// or OpenNebula's refusal of malformed ARGS.
fn parse_call(action: &str, args: &str) -> Option<Result<Call, String>> {
    let mut toks: Vec<&str> = if args.is_empty() {
        Vec::new()
    } else {
        args.split(',').collect()
    };
    let bad = |fmt: &str| format!("Missing or malformed ARGS for: {action}. Format: {fmt}");
    let (a, b) = (toks.first().copied(), toks.get(1).copied());
    let call = match action {
        "snapshot-create" => text(a)
            .map(Call::SnapshotCreate)
            .ok_or_else(|| bad("snapshot-name")),
        "snapshot-revert" => int(a)
            .map(Call::SnapshotRevert)
            .ok_or_else(|| bad("snapshot-id")),
        "snapshot-delete" => int(a)
            .map(Call::SnapshotDelete)
            .ok_or_else(|| bad("snapshot-id")),
        "disk-snapshot-create" => int(a)
            .zip(text(b))
            .map(|(d, n)| Call::DiskSnapshotCreate(d, n))
            .ok_or_else(|| bad("disk-id, snapshot-name")),
        "disk-snapshot-revert" => int(a)
            .zip(int(b))
            .map(|(d, n)| Call::DiskSnapshotRevert(d, n))
            .ok_or_else(|| bad("disk-id, snapshot-id")),
        "disk-snapshot-delete" => int(a)
            .zip(int(b))
            .map(|(d, n)| Call::DiskSnapshotDelete(d, n))
            .ok_or_else(|| bad("disk-id, snapshot-id")),
        "backup" => {
            // A datastore alone means no reset, for backward compatibility.
            if toks.len() == 1 {
                toks.push("0");
            }
            int(toks.first().copied())
                .zip(flag(toks.get(1).copied()))
                .map(|(d, r)| Call::Backup(d, r))
                .ok_or_else(|| bad("datastore-id, reset"))
        }
        _ => return None,
    };
    Some(call)
}

/// The write of call `call` of action `sa` on VM `v` as read (its template `t` with the action
/// list `list` already recording the run): what the method writes, as oneadmin.
async fn call_stmts(
    pool: &ReadPool,
    config: &Config,
    v: &VmRow,
    mut t: template::Template,
    call: &Call,
) -> Result<Vec<SqlStmt>, Failure> {
    let hotplug = (state::ACTIVE, vm_snapshots::HOTPLUG_SNAPSHOT);
    // The scheduler acts as oneadmin (`RequestAttributes(ONEADMIN_ID...)`).
    let wording = Wording::Caller(0);
    let charged = |ask, uid, gid| async move {
        Charge {
            asks: std::slice::from_ref(&ask),
            uid,
            gid,
            wording,
        }
        .guard_in(pool)
        .await
    };
    let (to, guard) = match call {
        Call::SnapshotCreate(name) => {
            let factor = vm_snapshots::factor_of(config);
            let (_, size) = vm_snapshots::create_edit(v, &mut t, name, factor)?;
            let ask = crate::api::quota::Ask::vm(vec![("SYSTEM_DISK_SIZE", size)])
                .within(crate::api::quota::cluster_of(v));
            (
                hotplug,
                charged(ask, v.head.owned.uid, v.head.owned.gid).await?,
            )
        }
        Call::SnapshotRevert(snap) => {
            vm_snapshots::mark_edit(v, &mut t, *snap, "REVERT")?;
            (hotplug, None)
        }
        Call::SnapshotDelete(snap) => {
            vm_snapshots::mark_edit(v, &mut t, *snap, "DELETE")?;
            (hotplug, None)
        }
        Call::DiskSnapshotCreate(disk, name) => {
            let made = vm_disk_ops::snap_create_edit(v, &mut t, *disk, name)?;
            let image = match vm_disk_ops::charged_image(&made.disk) {
                Some(img) => Some(crate::api::storage::IMAGES.get_in(pool, img).await?),
                None => None,
            };
            let (ask, uid, gid) = vm_disk_ops::disk_ask(v, &made.disk, made.size, image.as_ref());
            (made.to, charged(ask, uid, gid).await?)
        }
        Call::DiskSnapshotRevert(disk, snap) => (
            vm_disk_ops::snap_revert_edit(v, &mut t, *disk, *snap)?,
            None,
        ),
        Call::DiskSnapshotDelete(disk, snap) => (
            vm_disk_ops::snap_delete_edit(v, &mut t, *disk, *snap)?,
            None,
        ),
        Call::Backup(ds_id, reset) => {
            let job = vm_backup::job_id(&t);
            if job != -1 {
                return Err(crate::api::fail(
                    crate::api::code::INTERNAL,
                    format!(
                        "Unable to launch scheduled backup for VM {}, the VM is part of \
                         Backup Job ID {job}",
                        v.head.owned.oid
                    ),
                ));
            }
            let ds_id = vm_backup::prepare(pool, &t, *ds_id, *reset).await?;
            return vm_backup::start_write(pool, v, t, (ds_id, *reset, None), wording).await;
        }
    };
    let mut stmts = vm_snapshots::write_vm(v, &t, to);
    stmts.extend(guard);
    Ok(stmts)
}

/// The write that runs action `sa` of `vm`, a snapshot, disk snapshot or backup call, at `now`:
/// the call and the record of the run in one write, or the record of the refusal; guarded on
/// the template read. None when the VM changed since it was read (the next period reads it
/// again). Whether it runs.
async fn call_write(
    pool: &ReadPool,
    config: &Config,
    vm: &WithActions,
    sa: &SchedAction,
    parsed: Result<Call, String>,
    now: i64,
) -> Option<(Vec<SqlStmt>, bool)> {
    let v = VMS.get_in(pool, vm.oid).await.ok()?;
    if v.template != vm.template {
        return None;
    }
    let t = template::Template::parse(&vm.template).unwrap_or_default();
    let mut list = actions(&t, vm.oid);
    let mut ran = list.clone();
    for a in ran.iter_mut().filter(|a| a.id == sa.id) {
        a.message.clear();
        a.next_action(now);
    }
    let result = match &parsed {
        Ok(call) => call_stmts(pool, config, &v, with_actions(&t, &ran), call)
            .await
            .map_err(|e| format!("[{}] {}", sa.action, vm_backup::message(&e))),
        Err(why) => Err(why.clone()),
    };
    match result {
        Ok(stmts) => Some((stmts, true)),
        Err(why) => {
            for a in list.iter_mut().filter(|a| a.id == sa.id) {
                a.message = timed_message(now, &why);
            }
            let stmts = vec![sqlstore::objects::replace_template(
                rows::TABLE,
                "template",
                vm.oid,
                with_actions(&t, &list).to_text(),
                vm.template.clone(),
            )];
            Some((stmts, false))
        }
    }
}

/// `<log_time> : <why>`, as `set_template_error_message` and a scheduled action's MESSAGE
/// word a failure at `now`.
pub(crate) fn timed_message(now: i64, why: &str) -> String {
    format!("{} : {why}", log_time(now))
}

/// `one_util::log_time`: `Tue Dec 01 01:44:47 2026` (UTC here).
pub(crate) fn log_time(t: i64) -> String {
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
pub async fn run(
    ctx: TaskCtx,
    cluster: Cluster,
    pool: ReadPool,
    config: Arc<Config>,
) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    let mut failed: HashMap<(i64, i64), Instant> = HashMap::new();
    let mut jobs_failed: HashMap<(i64, i64), Instant> = HashMap::new();
    let mut sweep = Sweep::new(BATCH);
    let mut jobs = Sweep::new(crate::api::backupjob::BATCH);
    loop {
        ticks.next().await;
        jobs_failed.retain(|_, at| at.elapsed() < RETRY_FAILED);
        crate::api::backupjob::pass(&ctx, &cluster, &pool, &mut jobs_failed, &mut jobs).await;
        let vms = match crate::db::read(&pool, move |c| read_vms(c, sweep)).await {
            Ok(v) => {
                sweep.advance(v.len(), v.last().map(|w: &WithActions| w.oid));
                v
            }
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
            let (stmts, runs) = match parse_call(&sa.action, &sa.args) {
                None => run_stmts(vm, &sa, now),
                Some(parsed) => match call_write(&pool, &config, vm, &sa, parsed, now).await {
                    Some(w) => w,
                    None => continue,
                },
            };
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
    use crate::api::vm::lcm;

    #[test]
    fn log_time_is_opennebulas_format() {
        assert_eq!(log_time(0), "Thu Jan 01 00:00:00 1970");
        assert_eq!(log_time(1_795_907_087), "Sat Nov 28 23:04:47 2026");
    }

    #[test]
    fn args_are_parsed_as_opennebula_does() {
        let p = |a: &str, args: &str| parse_call(a, args);
        assert_eq!(p("poweroff", ""), None);
        assert_eq!(
            p("disk-snapshot-create", "0,snap-name"),
            Some(Ok(Call::DiskSnapshotCreate(0, "snap-name".into())))
        );
        assert_eq!(p("backup", "100"), Some(Ok(Call::Backup(100, false))));
        assert_eq!(p("backup", "100,1"), Some(Ok(Call::Backup(100, true))));
        assert_eq!(
            p("backup", ""),
            Some(Err(
                "Missing or malformed ARGS for: backup. Format: datastore-id, reset".into()
            ))
        );
        assert_eq!(
            p("snapshot-revert", "1x"),
            Some(Err(
                "Missing or malformed ARGS for: snapshot-revert. Format: snapshot-id".into()
            ))
        );
        assert_eq!(
            p("snapshot-create", "a"),
            Some(Ok(Call::SnapshotCreate("a".into())))
        );
    }

    #[test]
    fn a_due_action_runs_once_in_one_guarded_write() {
        let vm = WithActions {
            uid: 0,
            gid: 0,
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
        let hold = outcome("hold", 4, state::ACTIVE, lcm::RUNNING);
        assert!(matches!(hold, Outcome::Refused(_)), "{hold:?}");
    }
}
