//! `one.vm.backup`, `one.vm.backupcancel` and `one.vm.restore`, as OpenNebula's
//! `VirtualMachineBackup*`, `VirtualMachineRestore` and `DispatchManager::backup*/restore`: a
//! RUNNING or POWEROFF VM goes to BACKUP / BACKUP_POWEROFF, and the leader's dummy driver
//! (`pass`, from `crate::scheduler`) finishes it as `LifeCycleManager::trigger_backup_success`:
//! a READY image of type BACKUP in the backup datastore, its id in the VM's BACKUP_IDS, and the
//! VM back where it was. A restore takes a POWEROFF VM through RESTORE back to POWEROFF.
//!
//! The VM's `Backups` (BACKUP_CONFIG and BACKUP_IDS) live in its system template, so every
//! change of them is one guarded template write; `take_xml` moves them into `<BACKUPS>`.

use sqlstore::objects::image as irows;
use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::{ReadPool, SqlStmt, SqlTxn};
use template::{Template, Value};
use tracing::debug;
use wire::LcmState as L;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::{ADMIN, USE};
use super::quota::{Ask, Charge, Wording};
use super::storage::{DATASTORES, IMAGES};
use super::vm::{lcm, now, state, VMS};
use super::vm_nics::state_str;
use super::vm_snapshots::{stored, write_vm};
use super::xml::Xml;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::cluster::Cluster;
use crate::method;
use crate::tasks::TaskCtx;

pub const METHODS: &[Method] = &[
    method!("one.vm.backup", Write, Auth::Object, backup),
    method!("one.vm.backupcancel", Write, Auth::Object, cancel),
    method!("one.vm.restore", Write, Auth::Object, restore),
];

/// OpenNebula's `Datastore::BACKUP_DS`.
pub const BACKUP_DS: i64 = 3;
/// OpenNebula's `Image::BACKUP`.
const BACKUP_IMAGE: i64 = 6;
/// Backup ids a VM keeps, at most: its template must not grow without bound.
const IDS_MAX: usize = 1024;
/// VMs the driver finishes per pass, at most.
const BATCH: i64 = 32;

const BACKUP: i64 = L::Backup.as_i64();
const BACKUP_POWEROFF: i64 = L::BackupPoweroff.as_i64();
const RESTORE: i64 = L::Restore.as_i64();

type Pairs = Vec<(String, String)>;

/// The VM's BACKUP_CONFIG pairs (empty if it has none).
pub fn config(t: &Template) -> Pairs {
    t.vector("BACKUP_CONFIG")
        .map(<[_]>::to_vec)
        .unwrap_or_default()
}

fn get<'a>(c: &'a [(String, String)], k: &str) -> Option<&'a str> {
    template::vector_get(c, k).map(str::trim)
}

fn put(c: &mut Pairs, k: &str, v: Option<String>) {
    c.retain(|(n, _)| n != k);
    if let Some(v) = v {
        c.push((k.to_string(), v));
        c.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// `Backups::parse`: the VM's BACKUP_CONFIG `old` after the BACKUP_CONFIG `given` (at
/// allocate, or `one.vm.updateconf` with `append`), with OpenNebula's defaults and
/// corrections. `can_increment` is `VirtualMachineDisks::backup_increment`: without it only
/// FULL backups are kept. What the config holds besides (BACKUP_JOB_ID...) stays.
pub fn parse_config(
    old: &[(String, String)],
    given: &[(String, String)],
    can_increment: bool,
    append: bool,
) -> Pairs {
    let mut c: Pairs = old.to_vec();
    let upper = |k: &str| get(given, k).map(str::to_uppercase).unwrap_or_default();
    match get(given, "KEEP_LAST").and_then(|v| v.parse::<i64>().ok()) {
        Some(n) => put(&mut c, "KEEP_LAST", Some(n.max(0).to_string())),
        None if !append => put(&mut c, "KEEP_LAST", None),
        None => {}
    }
    match upper("BACKUP_VOLATILE").as_str() {
        b @ ("YES" | "NO") => put(&mut c, "BACKUP_VOLATILE", Some(b.to_string())),
        _ if !append => put(&mut c, "BACKUP_VOLATILE", Some("NO".into())),
        _ => {}
    }
    let freeze = upper("FS_FREEZE");
    if !freeze.is_empty() {
        let freeze = match freeze.as_str() {
            "NONE" | "AGENT" | "SUSPEND" => freeze,
            _ => "NONE".to_string(),
        };
        put(&mut c, "FS_FREEZE", Some(freeze));
    } else if !append {
        put(&mut c, "FS_FREEZE", Some("NONE".into()));
    }
    let reset = |c: &mut Pairs| {
        put(c, "INCREMENTAL_BACKUP_ID", Some("-1".into()));
        put(c, "LAST_INCREMENT_ID", Some("-1".into()));
    };
    if !can_increment {
        reset(&mut c);
        put(&mut c, "MODE", Some("FULL".into()));
        put(&mut c, "INCREMENT_MODE", None);
        return c;
    }
    let mode = upper("MODE");
    if !mode.is_empty() || !append {
        let increment = mode == "INCREMENT";
        let was_increment = get(&c, "MODE").is_some_and(|m| m.eq_ignore_ascii_case("INCREMENT"));
        if !increment || !was_increment {
            reset(&mut c);
        }
        put(
            &mut c,
            "MODE",
            Some(if increment { "INCREMENT" } else { "FULL" }.into()),
        );
        let im = upper("INCREMENT_MODE");
        if !im.is_empty() {
            let im = if im == "CBT" || im == "SNAPSHOT" {
                im
            } else {
                "CBT".to_string()
            };
            put(&mut c, "INCREMENT_MODE", Some(im));
        } else if !append {
            put(&mut c, "INCREMENT_MODE", Some("CBT".into()));
        }
    }
    c
}

/// `VirtualMachineDisks::backup_increment` for the dummy TM: no QCOW2 disk (but swap, and
/// volatile ones unless BACKUP_VOLATILE) with snapshots.
pub fn can_increment(t: &Template, do_volatile: bool) -> bool {
    t.get_all("DISK").all(|d| {
        let up = |k: &str| d.vector_get(k).unwrap_or("").trim().to_uppercase();
        let ty = up("TYPE");
        if ty == "SWAP" || (ty == "FS" && !do_volatile) {
            return true;
        }
        let id = d.vector_get("DISK_ID").unwrap_or("");
        !(up("FORMAT") == "QCOW2" && super::vm_disk_snaps::disk_has_snapshots(t, id))
    })
}

/// A new VM's BACKUP_CONFIG as `VirtualMachine::insert` parses it (nothing without one).
pub fn parse_at_allocate(t: &mut Template) {
    if t.get("BACKUP_CONFIG").is_none() {
        return;
    }
    let given = config(t);
    let c = parse_config(&[], &given, can_increment(t, true), false);
    set_config(t, c);
}

/// Writes `c` back as the template's BACKUP_CONFIG (none if empty).
pub fn set_config(t: &mut Template, c: Pairs) {
    t.remove("BACKUP_CONFIG");
    if !c.is_empty() {
        t.push("BACKUP_CONFIG", Value::Vector(c));
    }
}

/// The VM's backup image ids, oldest first.
pub fn ids(t: &Template) -> Vec<i64> {
    t.single("BACKUP_IDS")
        .unwrap_or("")
        .split([',', ' '])
        .filter_map(|i| i.trim().parse().ok())
        .collect()
}

fn set_ids(t: &mut Template, ids: &[i64]) {
    t.remove("BACKUP_IDS");
    if !ids.is_empty() {
        let text = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        t.push("BACKUP_IDS", Value::Single(text));
    }
}

/// The backup job the VM belongs to, or -1.
pub fn job_id(t: &Template) -> i64 {
    get(&config(t), "BACKUP_JOB_ID")
        .and_then(|j| j.parse().ok())
        .unwrap_or(-1)
}

/// Takes BACKUP_CONFIG and BACKUP_IDS out of the VM's template and writes `Backups::to_xml`.
pub fn take_xml(t: &mut Template) -> String {
    let c = config(t);
    let ids = ids(t);
    t.remove("BACKUP_CONFIG");
    t.remove("BACKUP_IDS");
    let mut out = String::new();
    Xml::new(&mut out).elem("BACKUPS", |x| {
        x.elem("BACKUP_CONFIG", |x| {
            for (k, v) in &c {
                if template::is_attribute_name(k) {
                    x.raw(&format!("<{k}>{}</{k}>", super::xml::cdata(v)));
                }
            }
        })
        .elem("BACKUP_IDS", |x| {
            for i in &ids {
                x.num("ID", i);
            }
        });
    });
    out
}

/// `VirtualMachine::backup_size`: the disks a backup copies (volatile ones only with
/// BACKUP_VOLATILE), in MB.
pub fn backup_size(t: &Template) -> i64 {
    let volatile =
        get(&config(t), "BACKUP_VOLATILE").is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    t.get_all("DISK")
        .filter_map(|d| d.value.as_vector())
        .filter(|d| volatile || template::vector_get(d, "IMAGE_ID").is_some())
        .filter_map(|d| template::vector_get(d, "SIZE"))
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .sum()
}

fn wrong(id: i64, v: &VmRow) -> Failure {
    fail(
        code::INTERNAL,
        format!(
            "Could not create a new backup for VM {id}, wrong state {}.",
            state_str(v)
        ),
    )
}

/// `DispatchManager::backup`'s move: RUNNING to BACKUP, POWEROFF to BACKUP_POWEROFF.
fn backup_state(v: &VmRow) -> Option<(i64, i64)> {
    match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) => Some((state::ACTIVE, BACKUP)),
        (state::POWEROFF, _) => Some((state::ACTIVE, BACKUP_POWEROFF)),
        _ => None,
    }
}

/// The VM's template as `DispatchManager::backup` leaves it: the target datastore, and the
/// increment chain forgotten on `reset`. `job` is the backup job starting it, if any.
pub fn start_template(t: &mut Template, ds_id: i64, reset: bool, job: Option<i64>) {
    let mut c = config(t);
    put(&mut c, "LAST_DATASTORE_ID", Some(ds_id.to_string()));
    if reset {
        put(&mut c, "LAST_INCREMENT_ID", Some("-1".into()));
        put(&mut c, "INCREMENTAL_BACKUP_ID", Some("-1".into()));
    }
    if let Some(j) = job {
        put(&mut c, "BACKUP_JOB_ID", Some(j.to_string()));
    }
    set_config(t, c);
}

/// The statements that start VM `v`'s backup into `ds_id`, guarded by its state and
/// template as read; None if its state allows no backup.
pub fn start_stmts(v: &VmRow, ds_id: i64, reset: bool, job: Option<i64>) -> Option<Vec<SqlStmt>> {
    let t = Template::parse(&v.template).ok()?;
    start_stmts_from(v, t, ds_id, reset, job)
}

/// [`start_stmts`] from template `t` (the VM's, edited), still guarded on the VM's text.
pub fn start_stmts_from(
    v: &VmRow,
    mut t: Template,
    ds_id: i64,
    reset: bool,
    job: Option<i64>,
) -> Option<Vec<SqlStmt>> {
    let to = backup_state(v)?;
    start_template(&mut t, ds_id, reset, job);
    Some(write_vm(v, &t, to))
}

/// Checks datastore `ds_id` takes a backup of `size` MB: a BACKUP_DS with room for it.
pub async fn check_datastore(ctx: &Ctx, ds_id: i64, size: i64) -> Result<(), Failure> {
    let ds = DATASTORES.get(ctx, ds_id).await?;
    if ds.kind != BACKUP_DS {
        return Err(fail(code::ACTION, "Datastore needs to be of type BACKUP"));
    }
    let used: i64 = ds.images.iter().map(|i| i.size).sum();
    if super::storage::DUMMY_TOTAL_MB - used < size {
        return Err(fail(
            code::ACTION,
            "Not enough free space on target datastore",
        ));
    }
    Ok(())
}

/// `one.vm.backup(id, ds_id, reset)`.
pub async fn backup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let ds_id = if p.0.len() > 1 { p.int(1)? as i64 } else { -1 };
    let reset = if p.0.len() > 2 { p.bool(2)? } else { false };
    let v = VMS.get(ctx, id).await?;
    let t = stored(&v)?;
    let job = job_id(&t);
    if job != -1 {
        return Err(fail(
            code::INTERNAL,
            format!(
                "Unable to start an individual backup for the Virtual Machine, it is part of \
                 Backup Job ID {job}"
            ),
        ));
    }
    let size = backup_size(&t);
    check_datastore(ctx, ds_id, size).await?;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "backup", ADMIN).await?,
    )
    .await?;
    DATASTORES.authorized(ctx, s, ds_id, USE).await?;
    // The owner's DATASTORE quota must take the backup image (OpenNebula reserves it; here
    // the image counts once the driver made it, so this checks there is room for it).
    let ask = Ask {
        kind: "DATASTORE",
        rid: ds_id,
        amounts: vec![("SIZE", size as f64), ("IMAGES", 1.0)],
    };
    let charge = Charge {
        ask: &ask,
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: Wording::Caller(s.uid),
    };
    charge.guard(ctx).await?;
    let charge = &charge;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS.get(ctx, id).await?;
        let mut stmts = start_stmts(&v, ds_id, reset, None).ok_or_else(|| wrong(id, &v))?;
        stmts.extend(charge.guard(ctx).await?);
        Ok(stmts)
    })
    .await
}

/// `one.vm.backupcancel(id)`: the dummy driver's cancel is a failed backup
/// (`trigger_backup_failure`): the VM back where it was, no image.
pub async fn cancel(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "backup-cancel", ADMIN).await?,
    )
    .await?;
    cancel_backup(ctx, id).await
}

/// Cancels VM `id`'s backup in progress (no authorization: the caller checked it).
pub async fn cancel_backup(ctx: &Ctx, id: i64) -> MethodResult {
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS.get(ctx, id).await?;
        if v.state != state::ACTIVE || !matches!(v.lcm_state, BACKUP | BACKUP_POWEROFF) {
            return Err(fail(
                code::INTERNAL,
                format!("Could not cancel backup for VM {id}, no backup in progress"),
            ));
        }
        let mut t = stored(&v)?;
        let job = job_id(&t);
        clear_last(&mut t);
        let mut stmts = write_vm(&v, &t, back_from(v.lcm_state));
        stmts.extend(job_finished(job, id, false));
        Ok(stmts)
    })
    .await
}

/// `one.vm.restore(id, image_id, increment_id, disk_id)`.
pub async fn restore(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let image_id = p.int(1)? as i64;
    let inc_id = p.int(2)? as i64;
    let disk_id = p.int(3)? as i64;
    let v = VMS.get(ctx, id).await?;
    if disk_id != -1 && super::vm_disk_ops::disk(&stored(&v)?, disk_id).is_none() {
        return Err(fail(code::ACTION, "VM disk does not exist"));
    }
    let image = IMAGES.get(ctx, image_id).await?;
    if image.kind != BACKUP_IMAGE {
        return Err(fail(code::ACTION, "Image has to be of type BACKUP"));
    }
    // A full backup has no increments: its last increment id is -1.
    if inc_id > -1 {
        return Err(fail(code::ACTION, "Wrong increment"));
    }
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "restore", ADMIN).await?,
    )
    .await?;
    IMAGES.authorized(ctx, s, image_id, USE).await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS.get(ctx, id).await?;
        if v.state != state::POWEROFF {
            return Err(fail(
                code::ACTION,
                "Could not restore VM, it must be in poweroff",
            ));
        }
        Ok(rows::move_stmts(&rows::Move {
            oid: id,
            from: (v.state, v.lcm_state),
            to: (state::ACTIVE, RESTORE),
            now: now(),
            leaves_host: false,
        }))
    })
    .await
}

/// Where a backup or restore returns the VM: RUNNING, or POWEROFF.
fn back_from(lcm_state: i64) -> (i64, i64) {
    if lcm_state == BACKUP {
        (state::ACTIVE, lcm::RUNNING)
    } else {
        (state::POWEROFF, lcm::INIT)
    }
}

/// `Backups::last_backup_clear`.
fn clear_last(t: &mut Template) {
    let mut c = config(t);
    for k in [
        "LAST_DATASTORE_ID",
        "LAST_BRIDGE",
        "LAST_BACKUP_ID",
        "LAST_BACKUP_SIZE",
        "LAST_BACKUP_FORMAT",
    ] {
        put(&mut c, k, None);
    }
    set_config(t, c);
}

/// The backup job's bookkeeping when VM `vid` of job `job` (-1: none) finishes
/// (`BackupJob::backup_finished`).
fn job_finished(job: i64, vid: i64, ok: bool) -> Vec<SqlStmt> {
    if job < 0 {
        return Vec::new();
    }
    sqlstore::objects::backupjob::vm_finished(job, vid, ok, now())
}

/// `dd-Mon HH.MM.SS` of `secs` (UTC), as OpenNebula names backup images.
fn stamp(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (_, month, day) = super::vm_sched::civil(days);
    format!(
        "{day:02}-{} {:02}.{:02}.{:02}",
        MONTHS[(month - 1).clamp(0, 11) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The write that finishes VM `v`'s backup (`next` is the image counter as read) or restore.
fn finish_txn(v: &VmRow, next: i64, at: i64) -> Option<SqlTxn> {
    let mut t = Template::parse(&v.template).ok()?;
    let vid = v.head.owned.oid;
    if v.lcm_state == RESTORE {
        let stmts = write_vm(v, &t, (state::POWEROFF, lcm::INIT));
        return Some(SqlTxn { stmts });
    }
    let c = config(&t);
    let Some(ds_id) = get(&c, "LAST_DATASTORE_ID").and_then(|d| d.parse::<i64>().ok()) else {
        // No target recorded (the template was changed by hand): the backup fails.
        clear_last(&mut t);
        let mut stmts = write_vm(v, &t, back_from(v.lcm_state));
        stmts.extend(job_finished(job_id(&t), vid, false));
        return Some(SqlTxn { stmts });
    };
    let size = backup_size(&t);
    let image_id = next + 1;
    let mut it = Template::default();
    let single = |s: String| Value::Single(s);
    let name = format!("{vid} {}", stamp(at));
    let source = format!("dummy-backup/{vid}/{image_id}");
    it.push("NAME", single(name.clone()));
    it.push("VM_ID", single(vid.to_string()));
    it.push("TYPE", single("BACKUP".into()));
    let job = job_id(&t);
    if job >= 0 {
        it.push("BACKUP_JOB_ID", single(job.to_string()));
    }
    let insert = irows::insert(irows::NewImage {
        name,
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        // OpenNebula allocates backups with umask 0177.
        perms: 0o600,
        kind: BACKUP_IMAGE,
        persistent: true,
        regtime: at,
        path: String::new(),
        size,
        state: wire::ImageState::Ready.as_i64(),
        datastore_id: ds_id,
        template: it.to_text(),
        source,
        format: "raw".into(),
        fs: String::new(),
        cloning_id: -1,
    });
    let mut ids = ids(&t);
    ids.push(image_id);
    // KEEP_LAST: the oldest backups beyond it are forgotten (`Backups::remove_last`).
    let keep = get(&c, "KEEP_LAST")
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|k| *k > 0)
        .unwrap_or(IDS_MAX)
        .min(IDS_MAX);
    let dropped: Vec<i64> = if ids.len() > keep {
        ids.drain(..ids.len() - keep).collect()
    } else {
        Vec::new()
    };
    set_ids(&mut t, &ids);
    clear_last(&mut t);
    let mut stmts = vec![
        sqlstore::objects::backup::counter_is(irows::TABLE, next),
        insert,
    ];
    stmts.extend(write_vm(v, &t, back_from(v.lcm_state)));
    stmts.push(sqlstore::objects::next_oid(irows::TABLE));
    for old in dropped {
        // Not guarded: a backup the user deleted meanwhile is simply gone already.
        stmts.push(SqlStmt {
            must_match: false,
            ..irows::delete_idle(old, wire::ImageState::Ready.as_i64())
        });
    }
    stmts.extend(job_finished(job, vid, true));
    Some(SqlTxn { stmts })
}

fn waiting(c: &sqlstore::Conn) -> Result<(Vec<VmRow>, i64), sqlstore::SqlError> {
    let sql = format!(
        "{} WHERE v.state = ?1 AND v.lcm_state IN ({BACKUP}, {BACKUP_POWEROFF}, {RESTORE}) \
         ORDER BY v.oid LIMIT {BATCH}",
        rows::ROWS.select
    );
    let mut st = c.prepare_cached(&sql)?;
    let found = st
        .query_map([state::ACTIVE], |r| (rows::ROWS.read)(c, r))?
        .collect::<Result<Vec<_>, _>>()?;
    let next = sqlstore::objects::backup::last_oid(c, irows::TABLE)?;
    Ok((found, next))
}

/// One pass of the dummy backup driver on the leader: every VM in BACKUP, BACKUP_POWEROFF or
/// RESTORE (a batch) is finished, each by one write guarded by its state, its template and the
/// image counter; a write refused because one changed is tried again next pass.
pub async fn pass(ctx: &TaskCtx, cluster: &Cluster, pool: &ReadPool) {
    let (vms, mut next) = match crate::db::read(pool, waiting).await {
        Ok(found) => found,
        Err(e) => {
            ctx.warn("reading VMs in backup or restore failed", &e);
            return;
        }
    };
    for v in &vms {
        let Some(txn) = finish_txn(v, next, now()) else {
            continue;
        };
        let made = v.lcm_state != RESTORE;
        match cluster.write(txn).await {
            Ok(_) if made => next += 1,
            Ok(_) => {}
            Err(consensus::WriteError::NotLeader) => return,
            Err(e) => {
                debug!(error = %e, vm = v.head.owned.oid, "finishing a backup");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_images_are_named_by_the_vm_and_the_utc_time() {
        assert_eq!(stamp(0), "01-Jan 00.00.00");
        // 2024-02-29T13:05:09Z
        assert_eq!(stamp(1_709_211_909), "29-Feb 13.05.09");
    }

    #[test]
    fn backups_print_their_config_and_ids_in_the_xsds_order() {
        let mut t = Template::parse(
            "BACKUP_CONFIG = [ KEEP_LAST = 2, MODE = FULL ]\nBACKUP_IDS = \"3,7\"\nCPU = 1",
        )
        .unwrap();
        assert_eq!(
            take_xml(&mut t),
            "<BACKUPS><BACKUP_CONFIG><KEEP_LAST><![CDATA[2]]></KEEP_LAST><MODE><![CDATA[FULL]]></MODE></BACKUP_CONFIG>\
             <BACKUP_IDS><ID>3</ID><ID>7</ID></BACKUP_IDS></BACKUPS>"
        );
        assert!(t.get("BACKUP_IDS").is_none() && t.get("BACKUP_CONFIG").is_none());
        let mut none = Template::default();
        assert_eq!(
            take_xml(&mut none),
            "<BACKUPS><BACKUP_CONFIG></BACKUP_CONFIG><BACKUP_IDS></BACKUP_IDS></BACKUPS>"
        );
    }
}
