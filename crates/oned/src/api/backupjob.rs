//! `one.backupjob.*` and `one.backupjobpool.info`: backup jobs, as OpenNebula's
//! `RequestManagerBackupJob`, `BackupJob` and the backup part of `ScheduledActionManager`. A
//! job's template holds its configuration (BACKUP_VMS in backup order, DATASTORE_ID, MODE,
//! KEEP_LAST, EXECUTION...) and its scheduled actions (`SCHED_ACTION` vectors, the machinery of
//! `super::vm_sched`); the VMs' progress through a run is `backupjob_vm` rows. A VM of a job
//! carries BACKUP_JOB_ID in its BACKUP_CONFIG (`super::vm_backup`).
//!
//! The leader's [`pass`] (from `crate::sched_runner`) runs due scheduled actions and starts the
//! OUTDATED VMs' backups, by priority; each step is one replicated write guarded on what it was
//! computed from, so a leader change never runs one twice.

use std::sync::atomic::{AtomicI64, Ordering};

use sqlstore::objects::backupjob::{self as rows, BackupJobRow, List};
use sqlstore::objects::vm::VmRow;
use sqlstore::{ReadPool, SqlStmt, SqlTxn};
use template::{Template, Value as TValue};
use tracing::{debug, info};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{ADMIN, MANAGE};
use super::vm::{now, state, VMS};
use super::vm_backup as vb;
use super::vm_sched::{actions, given, with_actions, BodyXml, SchedAction};
use super::xml::{self, Xml};
use super::{code, fail, owned, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::cluster::Cluster;
use crate::method;
use crate::tasks::TaskCtx;
use wire::acl::BACKUPJOB;

pub static BACKUPJOBS: Family<BackupJobRow> = Family {
    table: rows::TABLE,
    kind: BACKUPJOB,
    acl: "BACKUPJOB",
    what: "backup job",
    pool: "BACKUPJOB_POOL",
    template: "template",
    rows: &rows::ROWS,
    xml: job_xml,
    quota: None,
    // The pool prints the bodies it stores, written by `BackupJob::to_xml` without the
    // actions' SCHED_ACTION (only `one.backupjob.info` adds them, `to_xml_extended(xml,
    // true)`).
    pool_xml: Some(job_pool_xml),
};

pub const METHODS: &[Method] = &[
    method!("one.backupjob.allocate", Write, Auth::Object, allocate),
    method!(
        "one.backupjob.info",
        Read,
        Auth::Object,
        owned::info,
        &BACKUPJOBS
    ),
    method!("one.backupjob.delete", Write, Auth::Object, delete),
    method!("one.backupjob.update", Write, Auth::Object, update),
    method!("one.backupjob.backup", Write, Auth::Object, execute),
    method!("one.backupjob.cancel", Write, Auth::Object, cancel),
    method!("one.backupjob.retry", Write, Auth::Object, retry),
    method!("one.backupjob.priority", Write, Auth::Object, priority),
    method!("one.backupjob.schedadd", Write, Auth::Object, schedadd),
    method!(
        "one.backupjob.scheddelete",
        Write,
        Auth::Object,
        scheddelete
    ),
    method!(
        "one.backupjob.schedupdate",
        Write,
        Auth::Object,
        schedupdate
    ),
    method!(
        "one.backupjobpool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &BACKUPJOBS
    ),
];

/// chmod, chown, rename, lock, unlock; update is the job's own (it moves VMs).
pub const OWNED: &[Method] = &crate::owned_methods!(
    @each "one.backupjob", &BACKUPJOBS, [chmod, chown, rename, lock, unlock]
);

/// `BackupJob::MAX_PRIO`, `MIN_PRIO`, `MAX_USER_PRIO`.
const MAX_PRIO: i64 = 99;
const MIN_PRIO: i64 = 0;
const MAX_USER_PRIO: i64 = 49;
/// VMs a job may name, and scheduled actions it may hold: bounds on what a client stores.
const MAX_VMS: usize = 4096;
const MAX_ACTIONS: usize = 128;
/// Jobs with scheduled actions read per pass of the leader's runner, in a
/// [`crate::sweep::Sweep`]: jobs keep their actions once done.
pub const BATCH: usize = 64;
/// How often a write is computed again after a concurrent change.
const RETRIES: usize = 10;

/// `BackupJob::to_xml_extended(xml, true)`: the scheduled actions in TEMPLATE too.
fn job_xml(j: &BackupJobRow, out: &mut String) {
    job_xml_with(j, out, true)
}

fn job_pool_xml(j: &BackupJobRow, out: &mut String) {
    job_xml_with(j, out, false)
}

fn job_xml_with(j: &BackupJobRow, out: &mut String, extended: bool) {
    let oid = j.head.owned.oid;
    let mut t = Template::parse(&j.template).unwrap_or_else(|e| {
        xml::corrupt_template(&e);
        Template::default()
    });
    let list = actions(&t, oid);
    t.remove("SCHED_ACTION");
    let mut body = BodyXml {
        ids: String::new(),
        actions: String::new(),
    };
    Xml::new(&mut body.ids).elem("SCHED_ACTIONS", |x| {
        for a in &list {
            x.num("ID", a.id);
        }
    });
    let mut x = Xml::new(&mut body.actions);
    for a in list.iter().filter(|_| extended) {
        a.xml_as(&mut x, "BACKUPJOB");
    }
    let ids = |x: &mut Xml<'_>, name: &str, l: List| {
        x.elem(name, |x| {
            for v in j.in_list(l) {
                x.num("ID", v);
            }
        });
    };
    Xml::new(out).elem("BACKUPJOB", |x| {
        xml::owned_head(x, &j.head, Some(&j.lock));
        x.num("PRIORITY", j.priority)
            .num("LAST_BACKUP_TIME", j.last_time)
            .num("LAST_BACKUP_DURATION", j.last_duration)
            .raw(&body.ids);
        ids(x, "UPDATED_VMS", List::Updated);
        ids(x, "OUTDATED_VMS", List::Outdated);
        ids(x, "BACKING_UP_VMS", List::BackingUp);
        ids(x, "ERROR_VMS", List::Error);
        x.raw(&body.template(&t));
    });
}

fn stored(j: &BackupJobRow) -> Result<Template, Failure> {
    Template::parse(&j.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The job's VMs, in backup order.
pub fn backup_vms(t: &Template) -> Vec<i64> {
    t.single("BACKUP_VMS")
        .unwrap_or("")
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn yes(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("YES") || v.trim().eq_ignore_ascii_case("TRUE")
}

/// `BackupJob::parse`: the template's attributes with OpenNebula's defaults, and the priority
/// it sets (if valid). BACKUP_VMS loses consecutive repeats (`std::unique`).
fn parse(t: &mut Template) -> Result<Option<i64>, String> {
    let single = |v: String| TValue::Single(v);
    let keep = t
        .single("KEEP_LAST")
        .and_then(|k| k.trim().parse::<i64>().ok())
        .filter(|k| *k >= 0)
        .unwrap_or(0);
    t.set("KEEP_LAST", single(keep.to_string()));
    let volatile = t.single("BACKUP_VOLATILE").is_some_and(yes);
    t.set(
        "BACKUP_VOLATILE",
        single(if volatile { "YES" } else { "NO" }.into()),
    );
    let upper = |t: &Template, k: &str| t.single(k).unwrap_or("").trim().to_ascii_uppercase();
    let mut fs = upper(t, "FS_FREEZE");
    if !matches!(fs.as_str(), "NONE" | "AGENT" | "SUSPEND") {
        fs = "NONE".into();
    }
    t.set("FS_FREEZE", single(fs));
    let mut mode = upper(t, "MODE");
    if mode != "INCREMENT" {
        mode = "FULL".into();
    }
    t.set("MODE", single(mode.clone()));
    if mode == "INCREMENT" {
        let mut im = upper(t, "INCREMENT_MODE");
        if im != "SNAPSHOT" {
            im = "CBT".into();
        }
        t.set("INCREMENT_MODE", single(im));
    }
    let exec = if upper(t, "EXECUTION") == "PARALLEL" {
        "PARALLEL"
    } else {
        "SEQUENTIAL"
    };
    t.set("EXECUTION", single(exec.into()));
    let priority = t
        .single("PRIORITY")
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (MIN_PRIO..=MAX_PRIO).contains(p));
    t.remove("PRIORITY");
    let mut vms = backup_vms(t);
    vms.dedup();
    if vms.len() > MAX_VMS {
        return Err(format!("A backup job holds at most {MAX_VMS} VMs"));
    }
    let text = vms.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    t.set("BACKUP_VMS", single(text));
    Ok(priority)
}

/// The VM writes `BackupJob::process_backup_vms` makes: BACKUP_JOB_ID set on the VMs `new`
/// adds to `old`, removed from those it drops; a VM already in another job refuses the call.
async fn membership(
    ctx: &Ctx,
    job: i64,
    old: &[i64],
    new: &[i64],
) -> Result<Vec<SqlStmt>, Failure> {
    let mut stmts = Vec::new();
    let (mut added, mut removed): (Vec<i64>, Vec<i64>) = (
        new.iter().filter(|v| !old.contains(v)).copied().collect(),
        old.iter().filter(|v| !new.contains(v)).copied().collect(),
    );
    added.sort_unstable();
    added.dedup();
    removed.sort_unstable();
    removed.dedup();
    for vid in added {
        let Ok(v) = VMS.get(ctx, vid).await else {
            continue;
        };
        let mut t = Template::parse(&v.template).unwrap_or_default();
        let in_job = vb::job_id(&t);
        if in_job != -1 && in_job != job {
            return Err(fail(
                code::INTERNAL,
                format!(
                    "Unable to add VM {vid} to Backup Job {job}. It's already in Backup Job \
                     {in_job}"
                ),
            ));
        }
        set_job(&mut t, Some(job));
        stmts.push(vm_template(&v, &t));
    }
    for vid in removed {
        stmts.push(rows::drop_vm(job, vid));
        let Ok(v) = VMS.get(ctx, vid).await else {
            continue;
        };
        let mut t = Template::parse(&v.template).unwrap_or_default();
        if vb::job_id(&t) == job {
            set_job(&mut t, None);
            stmts.push(vm_template(&v, &t));
        }
    }
    Ok(stmts)
}

/// BACKUP_JOB_ID of the VM's BACKUP_CONFIG set, or removed (`remove_id_from_vms`: an
/// increment chain starts again).
fn set_job(t: &mut Template, job: Option<i64>) {
    let mut c = vb::config(t);
    c.retain(|(k, _)| k != "BACKUP_JOB_ID");
    match job {
        Some(j) => c.push(("BACKUP_JOB_ID".into(), j.to_string())),
        None if vb::is_increment(&c) => {
            for k in ["INCREMENTAL_BACKUP_ID", "LAST_INCREMENT_ID"] {
                c.retain(|(n, _)| n != k);
                c.push((k.into(), "-1".into()));
            }
        }
        None => {}
    }
    c.sort_by(|a, b| a.0.cmp(&b.0));
    vb::set_config(t, c);
}

/// The VM's template write, guarded on the text read.
fn vm_template(v: &VmRow, t: &Template) -> SqlStmt {
    sqlstore::objects::replace_template(
        sqlstore::objects::vm::TABLE,
        "template",
        v.head.owned.oid,
        t.to_text(),
        v.template.clone(),
    )
}

/// Commits `compute`'s statements, computing them again after a concurrent change (a guard
/// that matched nothing); answers `answer`.
async fn write_retried<F, Fut>(ctx: &Ctx, answer: &AtomicI64, mut compute: F) -> MethodResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<SqlStmt>, Failure>>,
{
    for _ in 0..RETRIES {
        let stmts = compute().await?;
        let mut changed = false;
        let written = ctx
            .commit(SqlTxn { stmts }, |r| {
                changed = r.kind == sqlstore::TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match written {
            Ok(_) => return Ok(Value::Int(answer.load(Ordering::Relaxed) as i32)),
            Err(_) if changed => continue,
            Err(f) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot change the backup job: it kept changing, try again",
    ))
}

/// `one.backupjob.allocate(template)` (`BackupJobAllocate`).
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    BACKUPJOBS.may_create(ctx, s).await?;
    let given: Vec<Vec<(String, String)>> = t
        .get_all("SCHED_ACTION")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    t.remove("SCHED_ACTION");
    if let Some(pr) = t.single("PRIORITY") {
        let pr = pr.trim().parse::<i64>().unwrap_or(-1);
        if !(MIN_PRIO..=MAX_PRIO).contains(&pr) {
            return Err(fail(code::INTERNAL, "Wrong priority value"));
        }
        if !s.is_admin() && pr > 50 {
            // `pool_allocate` answers AUTHORIZATION without a message of its own.
            return Err(fail(
                code::AUTHORIZATION,
                format!(
                    "User [{}] not authorized to perform action on backup job.",
                    s.uid
                ),
            ));
        }
    }
    let name = t.single("NAME").unwrap_or("").to_string();
    t.remove("NAME");
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let (named, uid) = (name.clone(), s.uid);
    if let Some(other) = ctx
        .read(move |c| sqlstore::objects::owned_named(c, rows::TABLE, &named, uid))
        .await?
    {
        return Err(fail(
            code::INTERNAL,
            format!("NAME is already taken by BACKUP JOB {other}."),
        ));
    }
    let priority = parse(&mut t)
        .map_err(|e| fail(code::INTERNAL, e))?
        .unwrap_or(50);
    if given.len() > MAX_ACTIONS {
        return Err(fail(
            code::ACTION,
            format!("A backup job holds at most {MAX_ACTIONS} scheduled actions"),
        ));
    }
    let mut list = Vec::new();
    for (n, mut va) in given.into_iter().enumerate() {
        // ARGS is not used by a backup job's actions.
        va.retain(|(k, _)| k != "ARGS");
        let mut a = SchedAction::new(n as i64, -1);
        // `ScheduledActionPool::allocate` refusing it: INTERNAL.
        job_action(&mut a, &va).map_err(|e| fail(code::INTERNAL, e))?;
        list.push(a);
    }
    let vms = backup_vms(&t);
    let made = AtomicI64::new(-1);
    let (made_ref, t, list, name, vms) = (&made, &t, &list, &name, &vms);
    write_retried(ctx, &made, move || async move {
        // The new id is the counter's next: the VMs joining it name it in the same write.
        let last = ctx
            .read(|c| sqlstore::objects::backup::last_oid(c, rows::TABLE))
            .await?;
        let id = last + 1;
        made_ref.store(id, Ordering::Relaxed);
        let mut jt = t.clone();
        for a in list {
            let mut a = a.clone();
            a.parent = id;
            jt.push("SCHED_ACTION", TValue::Vector(a.to_pairs()));
        }
        let mut stmts = vec![
            sqlstore::objects::backup::counter_is(rows::TABLE, last),
            rows::insert(
                name,
                s.uid,
                s.gid,
                super::umask::new_object(ctx, s),
                priority,
                jt.to_text(),
            ),
            sqlstore::objects::next_oid(rows::TABLE),
        ];
        stmts.extend(membership(ctx, id, &[], vms).await?);
        Ok(stmts)
    })
    .await
}

/// `one.backupjob.delete(id)`: the job, its actions, and BACKUP_JOB_ID of its VMs.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let answer = AtomicI64::new(id);
    write_retried(ctx, &answer, move || async move {
        let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
        let t = stored(&j)?;
        let mut stmts = vec![rows::set_template(
            id,
            j.template.clone(),
            j.template.clone(),
        )];
        stmts.extend(membership(ctx, id, &backup_vms(&t), &[]).await?);
        stmts.extend(rows::delete(id));
        Ok(stmts)
    })
    .await
}

/// `one.backupjob.update(id, template, type)`: the template replaced or merged, parsed again,
/// its VMs joining and leaving; its scheduled actions stay.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = super::writes::update_type(&p)?;
    let answer = AtomicI64::new(id);
    let text = &text;
    write_retried(ctx, &answer, move || async move {
        let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
        let old = stored(&j)?;
        let kept: Vec<_> = old.get_all("SCHED_ACTION").cloned().collect();
        let mut base = old.clone();
        base.remove("SCHED_ACTION");
        let merged = super::writes::merged(&base.to_text(), text, merge)?;
        let mut t = Template::parse(&merged).map_err(|e| fail(code::INTERNAL, e.to_string()))?;
        // `BackupJob::post_update_template`: the priority changes through
        // `one.backupjob.priority` only.
        for name in ["SCHED_ACTION", "NAME", "PRIORITY"] {
            t.remove(name);
        }
        let refused = |e: String| fail(code::INTERNAL, format!("Cannot update template. {e}"));
        parse(&mut t).map_err(refused)?;
        for a in kept {
            t.attrs.push(a);
        }
        let mut stmts = vec![rows::set_template(id, t.to_text(), j.template.clone())];
        let joins = membership(ctx, id, &backup_vms(&old), &backup_vms(&t)).await;
        stmts.extend(joins.map_err(|f| match f {
            Failure::Api { message, .. } => refused(message),
            other => other,
        })?);
        Ok(stmts)
    })
    .await
}

/// `ScheduledAction::parse` for a backup job: its action is always `backup`, whatever ACTION
/// says.
fn job_action(a: &mut SchedAction, va: &[(String, String)]) -> Result<(), String> {
    a.action = "backup".into();
    let without: Vec<(String, String)> = va
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("ACTION"))
        .cloned()
        .collect();
    a.parse(&without, 0)
}

/// The template without ERROR (`clear_template_error_message`), and with ERROR `msg`.
fn with_error(t: &Template, msg: Option<&str>) -> Template {
    let mut t = t.clone();
    t.remove("ERROR");
    if let Some(m) = msg {
        t.set("ERROR", TValue::Single(m.to_string()));
    }
    t
}

/// `BackupJob::execute` at `now`: the statements that start a run of job `j` (but for its
/// template, whose ERROR the caller clears), or why not.
fn execute_stmts(j: &BackupJobRow, now: i64) -> Result<Vec<SqlStmt>, String> {
    if !j.in_list(List::BackingUp).is_empty() || !j.in_list(List::Outdated).is_empty() {
        return Err("Unable to execute Backup Job, pending backups in progress".into());
    }
    let t = Template::parse(&j.template).map_err(|e| e.to_string())?;
    if t.single("BACKUP_VMS").is_none() {
        return Err("Wrong BACKUP_VMS attribute or not defined".into());
    }
    let oid = j.head.owned.oid;
    let mut stmts = vec![rows::start_run(oid, now), rows::clear_vms(oid)];
    let mut vms = backup_vms(&t);
    vms.sort_unstable();
    vms.dedup();
    for v in vms {
        stmts.extend(rows::put_vm(oid, v, List::Outdated));
    }
    Ok(stmts)
}

/// `one.backupjob.backup(id)`: a run now.
pub async fn execute(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let answer = AtomicI64::new(id);
    write_retried(ctx, &answer, move || async move {
        let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
        let mut stmts = execute_stmts(&j, now()).map_err(|e| fail(code::ACTION, e))?;
        let t = with_error(&stored(&j)?, None);
        stmts.push(rows::set_template(id, t.to_text(), j.template.clone()));
        Ok(stmts)
    })
    .await
}

/// `one.backupjob.cancel(id)`: no VM OUTDATED or BACKING_UP any more, and the backups in
/// progress cancelled (a VM that finished meanwhile is left alone).
pub async fn cancel(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
    let active = j.in_list(List::BackingUp);
    let stmts = vec![
        rows::clear_list(id, List::Outdated),
        rows::clear_list(id, List::BackingUp),
    ];
    ctx.commit(SqlTxn { stmts }, |r| r.missing(BACKUPJOBS.missing(id)))
        .await?;
    for vid in active {
        if let Err(e) = vb::cancel_backup(ctx, vid).await {
            debug!(vm = vid, error = ?e, "backup job cancel: the VM's backup was not cancelled");
        }
    }
    Ok(Value::Int(id as i32))
}

/// `one.backupjob.retry(id)`: the ERROR VMs are OUTDATED again.
pub async fn retry(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let answer = AtomicI64::new(id);
    write_retried(ctx, &answer, move || async move {
        let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
        let t = stored(&j)?;
        Ok(vec![
            rows::set_template(id, with_error(&t, None).to_text(), j.template.clone()),
            rows::move_list(id, List::Error, List::Outdated),
        ])
    })
    .await
}

/// `one.backupjob.priority(id, priority)`: above 49 only with ADMIN on the job.
pub async fn priority(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let pr = p.int(1)? as i64;
    if !(MIN_PRIO..=MAX_PRIO).contains(&pr) {
        return Err(fail(code::ACTION, "Wrong priority value"));
    }
    let right = if pr > MAX_USER_PRIO { ADMIN } else { MANAGE };
    BACKUPJOBS.authorized(ctx, s, id, right).await?;
    let stmts = vec![rows::set_priority(id, pr)];
    ctx.commit(SqlTxn { stmts }, |r| r.missing(BACKUPJOBS.missing(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// Reads job `id` (MANAGE), lets `change` edit its actions, and writes its template back
/// guarded on the text read. Answers what `change` answers.
async fn edit_actions(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    change: impl Fn(&mut Vec<SchedAction>) -> Result<i64, Failure>,
) -> MethodResult {
    let answer = AtomicI64::new(-1);
    let (answer_ref, change) = (&answer, &change);
    write_retried(ctx, &answer, move || async move {
        let j = BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
        let t = stored(&j)?;
        let mut list = actions(&t, id);
        answer_ref.store(change(&mut list)?, Ordering::Relaxed);
        let new = with_actions(&t, &list).to_text();
        Ok(vec![rows::set_template(id, new, j.template.clone())])
    })
    .await
}

pub async fn schedadd(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
    let mut va = given(&text, code::ACTION)?;
    va.retain(|(k, _)| k != "ARGS");
    edit_actions(ctx, s, id, |list| {
        if list.len() >= MAX_ACTIONS {
            return Err(fail(
                code::ACTION,
                format!("A backup job holds at most {MAX_ACTIONS} scheduled actions"),
            ));
        }
        let next = list.iter().map(|a| a.id + 1).max().unwrap_or(0);
        let mut a = SchedAction::new(next, id);
        // `ScheduledActionPool::allocate` refusing it: ACTION (`BackupJobSchedAdd`).
        job_action(&mut a, &va).map_err(|e| fail(code::ACTION, e))?;
        list.push(a);
        Ok(next)
    })
    .await
}

pub async fn schedupdate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let sa_id = p.int(1)? as i64;
    let text = p.string(2)?.to_string();
    BACKUPJOBS.authorized(ctx, s, id, MANAGE).await?;
    let va = given(&text, code::INTERNAL)?;
    edit_actions(ctx, s, id, |list| {
        let Some(a) = list.iter_mut().find(|a| a.id == sa_id) else {
            return Err(fail(
                code::INTERNAL,
                format!("SCHED_ACTION with id = {sa_id} doesn't exist"),
            ));
        };
        job_action(a, &va).map_err(|e| fail(code::INTERNAL, e))?;
        Ok(sa_id)
    })
    .await
}

pub async fn scheddelete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let sa_id = p.int(1)? as i64;
    edit_actions(ctx, s, id, |list| {
        let before = list.len();
        list.retain(|a| a.id != sa_id);
        if list.len() == before {
            return Err(fail(
                code::NO_EXISTS,
                format!("Error getting scheduled action [{sa_id}]."),
            ));
        }
        Ok(sa_id)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The leader's runner.

/// The write that runs job `j`'s first due action at `now`: a run started (or the reason it
/// could not, in the action's MESSAGE) and the action marked done, guarded on the template.
fn due_stmts(
    j: &BackupJobRow,
    now: i64,
    retry: impl Fn(i64) -> bool,
) -> Option<(Vec<SqlStmt>, bool, i64)> {
    let oid = j.head.owned.oid;
    let t = Template::parse(&j.template).ok()?;
    let mut list = actions(&t, oid);
    let sa = list.iter_mut().find(|a| a.is_due(now) && retry(a.id))?;
    let sa_id = sa.id;
    let run = if sa.action == "backup" {
        execute_stmts(j, now)
    } else {
        Err(format!("Action \"{}\" is not supported", sa.action))
    };
    let mut stmts = Vec::new();
    let ran = run.is_ok();
    match run {
        Ok(s) => {
            sa.message.clear();
            sa.next_action(now);
            stmts.extend(s);
            let t = with_error(&t, None);
            stmts.push(rows::set_template(
                oid,
                with_actions(&t, &list).to_text(),
                j.template.clone(),
            ));
        }
        Err(why) => {
            sa.message = crate::sched_runner::timed_message(now, &why);
            stmts.push(rows::set_template(
                oid,
                with_actions(&t, &list).to_text(),
                j.template.clone(),
            ));
        }
    }
    Some((stmts, ran, sa_id))
}

/// The job's BACKUP_CONFIG for its VMs (`BackupJob::get_backup_config`).
fn job_config(t: &Template) -> Vec<(String, String)> {
    let mut c: Vec<(String, String)> = [
        "KEEP_LAST",
        "BACKUP_VOLATILE",
        "FS_FREEZE",
        "MODE",
        "INCREMENT_MODE",
    ]
    .iter()
    .filter_map(|k| t.single(k).map(|v| (k.to_string(), v.to_string())))
    .collect();
    c.sort_by(|a, b| a.0.cmp(&b.0));
    c
}

/// What the runner does next for job `j`: the write starting one OUTDATED VM's backup, or
/// recording why it cannot, or removing a VM that is gone. None when the job must wait.
async fn next_vm(ctx: &Runner<'_>, j: &BackupJobRow) -> Option<(i64, Vec<SqlStmt>, bool)> {
    let oid = j.head.owned.oid;
    let t = Template::parse(&j.template).ok()?;
    let outdated = j.in_list(List::Outdated);
    let sequential = t.single("EXECUTION") != Some("PARALLEL");
    if sequential && !j.in_list(List::BackingUp).is_empty() {
        return None;
    }
    let ds_id: i64 = t
        .single("DATASTORE_ID")
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(-1);
    let reset = t.single("RESET").is_some_and(yes);
    for vid in backup_vms(&t).into_iter().filter(|v| outdated.contains(v)) {
        let vm = ctx.vm(vid).await;
        let Some(v) = vm.filter(|v| v.state != state::DONE) else {
            // `BackupJob::remove_vm`.
            let mut nt = t.clone();
            let left: Vec<String> = backup_vms(&t)
                .into_iter()
                .filter(|x| *x != vid)
                .map(|x| x.to_string())
                .collect();
            nt.set("BACKUP_VMS", TValue::Single(left.join(",")));
            let stmts = vec![
                rows::set_template(oid, nt.to_text(), j.template.clone()),
                rows::drop_vm(oid, vid),
            ];
            return Some((vid, stmts, false));
        };
        if v.history.is_empty() {
            continue;
        }
        let mut vt = Template::parse(&v.template).unwrap_or_default();
        let mut c = vb::config(&vt);
        for (k, val) in job_config(&t) {
            c.retain(|(n, _)| *n != k);
            c.push((k, val));
        }
        c.sort_by(|a, b| a.0.cmp(&b.0));
        vb::set_config(&mut vt, c);
        // `VirtualMachineBackup::request_execute` as oneadmin: the same checks, reservation
        // and quota guard as `one.vm.backup`.
        let started = match vb::prepare(ctx.pool, &vt, ds_id, reset).await {
            Ok(ds) => {
                let wording = super::quota::Wording::Caller(0);
                vb::start_write(ctx.pool, &v, vt, (ds, reset, Some(oid)), wording).await
            }
            Err(e) => Err(e),
        };
        let vm_stmts = match started {
            Ok(stmts) => stmts,
            // The read failed: try again next pass.
            Err(e @ super::Failure::Api { code, .. })
                if code == super::code::INTERNAL
                    && vb::message(&e).starts_with("database error") =>
            {
                return None
            }
            Err(e) => {
                let why = vb::message(&e);
                let mut stmts = vec![rows::set_template(
                    oid,
                    with_error(&t, Some(&why)).to_text(),
                    j.template.clone(),
                )];
                stmts.extend(rows::put_vm(oid, vid, List::Error));
                return Some((vid, stmts, false));
            }
        };
        let mut stmts = vec![rows::vm_started(oid, vid)];
        stmts.extend(vm_stmts);
        return Some((vid, stmts, true));
    }
    None
}

/// The runner's reads.
struct Runner<'a> {
    pool: &'a ReadPool,
}

impl Runner<'_> {
    async fn vm(&self, vid: i64) -> Option<VmRow> {
        crate::db::read(self.pool, move |c| {
            use sqlstore::Optional;
            let r = &sqlstore::objects::vm::ROWS;
            c.prepare_cached(&r.by_id())?
                .query_row([vid], |row| (r.read)(c, row))
                .optional()
        })
        .await
        .ok()
        .flatten()
    }
}

/// One pass on the leader: the jobs' due scheduled actions run, then the OUTDATED VMs of the
/// active jobs start their backups, highest priority first. A write refused because its job or
/// VM changed meanwhile is computed again at the next pass. A due action that could not run
/// (the job still has backups pending, as a job whose schedule repeats faster than its VMs back
/// up) is in `failed` and tried again once it leaves it, as OpenNebula tries each period.
pub async fn pass(
    ctx: &TaskCtx,
    cluster: &Cluster,
    pool: &ReadPool,
    failed: &mut std::collections::HashMap<(i64, i64), std::time::Instant>,
    sweep: &mut crate::sweep::Sweep,
) {
    let at = now();
    let (after, limit) = (sweep.after(), sweep.limit() as i64);
    let scheduled = match crate::db::read(pool, move |c| rows::scheduled(c, after, limit)).await {
        Ok(j) => {
            sweep.advance(j.len(), j.last().map(|j| j.head.owned.oid));
            j
        }
        Err(e) => {
            ctx.warn("reading backup jobs failed", &e);
            return;
        }
    };
    for j in &scheduled {
        let oid = j.head.owned.oid;
        let Some((stmts, ran, sa)) = due_stmts(j, at, |sa| !failed.contains_key(&(oid, sa))) else {
            continue;
        };
        if !ran {
            failed.insert((oid, sa), std::time::Instant::now());
        }
        match cluster.write(SqlTxn { stmts }).await {
            Ok(sqlstore::TxnOutcome::Done { .. }) => {
                info!(job = j.head.owned.oid, "backup job scheduled action ran")
            }
            Ok(sqlstore::TxnOutcome::Failed(e)) => {
                debug!(job = j.head.owned.oid, error = ?e, "backup job action raced")
            }
            Err(consensus::WriteError::NotLeader) => return,
            Err(e) => ctx.warn("running a backup job's action failed", &e),
        }
    }
    let active = match crate::db::read(pool, |c| rows::active(c, BATCH as i64)).await {
        Ok(j) => j,
        Err(e) => {
            ctx.warn("reading active backup jobs failed", &e);
            return;
        }
    };
    let runner = Runner { pool };
    for j in &active {
        let Some((vid, stmts, started)) = next_vm(&runner, j).await else {
            continue;
        };
        match cluster.write(SqlTxn { stmts }).await {
            Ok(sqlstore::TxnOutcome::Done { .. }) if started => {
                info!(
                    job = j.head.owned.oid,
                    vm = vid,
                    "backup job started a VM's backup"
                )
            }
            Ok(_) => {}
            Err(consensus::WriteError::NotLeader) => return,
            Err(e) => ctx.warn("starting a backup job's VM backup failed", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_run_does_not_start_while_the_last_one_is_still_backing_up() {
        use sqlstore::objects::{Head, Owned};
        let job = |vms: Vec<(i64, i64)>| BackupJobRow {
            head: Head {
                owned: Owned {
                    oid: 4,
                    uid: 0,
                    gid: 0,
                    perms: 0o600,
                },
                name: "often".into(),
                uname: "oneadmin".into(),
                gname: "oneadmin".into(),
            },
            lock: Default::default(),
            priority: 50,
            last_time: 0,
            last_duration: 0,
            template: "BACKUP_VMS = \"3\"\nSCHED_ACTION = [ ACTION = \"backup\", ID = \"0\", \
                       REPEAT = \"3\", DAYS = \"1\", END_TYPE = \"0\", TIME = \"10\" ]"
                .into(),
            vms,
        };
        let (stmts, ran, sa) = due_stmts(&job(vec![(3, List::BackingUp as i64)]), 11, |_| true)
            .expect("the action is due");
        assert!(!ran && sa == 0);
        // Only the action's MESSAGE is written: no run, no VM put back OUTDATED.
        assert_eq!(stmts.len(), 1);
        let text = match &stmts[0].params[1] {
            sqlstore::SqlValue::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            text.contains("pending backups in progress")
                && text.contains("Thu Jan 01 00:00:11 1970"),
            "{text}"
        );
        // A failed action waits for its retry.
        assert!(due_stmts(&job(vec![(3, List::BackingUp as i64)]), 11, |_| false).is_none());
        let (_, ran, _) = due_stmts(&job(vec![(3, List::Updated as i64)]), 11, |_| true)
            .expect("the action is due");
        assert!(ran);
    }

    #[test]
    fn a_new_job_takes_opennebulas_defaults() {
        let mut t = Template::parse(
            "BACKUP_VMS = \"3,3,4,3\"\nMODE = increment\nPRIORITY = 70\nFS_FREEZE = odd",
        )
        .unwrap();
        assert_eq!(parse(&mut t), Ok(Some(70)));
        assert_eq!(t.single("BACKUP_VMS"), Some("3,4,3"));
        assert_eq!(t.single("MODE"), Some("INCREMENT"));
        assert_eq!(t.single("INCREMENT_MODE"), Some("CBT"));
        assert_eq!(t.single("FS_FREEZE"), Some("NONE"));
        assert_eq!(t.single("EXECUTION"), Some("SEQUENTIAL"));
        assert_eq!(t.single("KEEP_LAST"), Some("0"));
        assert_eq!(t.single("BACKUP_VOLATILE"), Some("NO"));
        assert!(t.single("PRIORITY").is_none());
    }
}
