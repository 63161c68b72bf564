//! `one.vm.backup`, `one.vm.backupcancel` and `one.vm.restore`, as OpenNebula's
//! `VirtualMachineBackup*`, `VirtualMachineRestore` and `DispatchManager::backup*/restore`: a
//! RUNNING or POWEROFF VM goes to BACKUP / BACKUP_POWEROFF, and the leader's dummy driver
//! (`pass`, from `crate::scheduler`) finishes it as `LifeCycleManager::trigger_backup_success`:
//! a READY image of type BACKUP in the backup datastore, its id in the VM's BACKUP_IDS, and the
//! VM back where it was. A restore takes a POWEROFF VM through RESTORE back to POWEROFF.
//!
//! The VM's `Backups` (BACKUP_CONFIG and BACKUP_IDS) live in its system template, so every
//! change of them is one guarded template write; `take_xml` moves them into `<BACKUPS>`.
//!
//! MODE INCREMENT keeps a chain (`super::backup_incs`) in one BACKUP image: the first backup,
//! or one with `reset`, makes the image with a FULL increment, later ones append INCREMENTs
//! (the VM's INCREMENTAL_BACKUP_ID and LAST_INCREMENT_ID say where), each guarded on the chain
//! as read. The write that starts a backup also reserves what it asks of the owner's DATASTORE
//! quota and of the datastore (`backup_reserve`, guarded by the quota); the write that ends it
//! (success, failure, cancel) drops the reservation, so a backup counts once, first reserved,
//! then as the image. [`prepare`] and [`start_write`] are what `one.vm.backup`, the scheduled
//! `backup` action (`crate::sched_runner`) and backup jobs share.

use sqlstore::objects::backup::Reservation;
use sqlstore::objects::image::{self as irows, ImageRow};
use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::{ReadPool, SqlStmt, SqlTxn};
use template::{vector_put_sorted as put, Template, Value};
use tracing::debug;
use wire::LcmState as L;
use xmlrpc::Params;

use super::backup_incs as incs;
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
pub const BACKUP_IMAGE: i64 = 6;
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

fn num(c: &[(String, String)], k: &str) -> i64 {
    get(c, k).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// `VirtualMachineSnapshotCreate` and `VirtualMachineDiskSnapshotCreate`: a VM whose backups
/// keep increment chains takes no snapshot.
pub fn refuse_snapshots(t: &Template, action: &str) -> Result<(), super::Failure> {
    if is_increment(&config(t)) {
        return Err(super::fail(
            super::code::ACTION,
            format!("Action \"{action}\" is not compatible with incremental backups"),
        ));
    }
    Ok(())
}

/// Whether the config keeps increment chains (MODE INCREMENT).
pub fn is_increment(c: &[(String, String)]) -> bool {
    get(c, "MODE").is_some_and(|m| m.eq_ignore_ascii_case("INCREMENT"))
}

/// Whether the backup this config starts makes a new image (`Backups::FULL` or no chain yet):
/// what the DATASTORE quota's IMAGES counts.
fn makes_image(c: &[(String, String)]) -> bool {
    !is_increment(c) || num(c, "LAST_INCREMENT_ID") == -1 || num(c, "INCREMENTAL_BACKUP_ID") == -1
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
/// Where a backup image keeps the ids of the disks it holds, in its stored template (shown as
/// BACKUP_DISK_IDS, never in TEMPLATE).
pub const DISK_IDS: &str = "BACKUP_DISK_IDS";

/// `VirtualMachineDisks::backup_disk_ids`: every disk of VM template `t` but SWAP and CDROM
/// ones, and volatile file systems unless BACKUP_VOLATILE.
pub fn backup_disk_ids(t: &Template) -> Vec<i64> {
    let volatile =
        get(&config(t), "BACKUP_VOLATILE").is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    t.get_all("DISK")
        .filter_map(|d| d.value.as_vector())
        .filter(|d| {
            let kind = template::vector_get(d, "TYPE").unwrap_or("").to_uppercase();
            !matches!(kind.as_str(), "SWAP" | "CDROM" | "RBD_CDROM") && (volatile || kind != "FS")
        })
        .filter_map(|d| template::vector_get(d, "DISK_ID")?.trim().parse().ok())
        .collect()
}

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
    let c = config(&t);
    let reservation = Reservation {
        vid: v.head.owned.oid,
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        datastore_id: ds_id,
        size: backup_size(&t),
        images: makes_image(&c) as i64,
    };
    let mut stmts = write_vm(v, &t, to);
    stmts.extend(sqlstore::objects::backup::reserve(&reservation));
    Some(stmts)
}

/// Where the next backup of a VM with template `t` goes (`VirtualMachineBackup::request_execute`): `ds_id`, or the
/// chain's datastore when it adds an increment to one.
pub async fn target_datastore(
    pool: &ReadPool,
    t: &Template,
    ds_id: i64,
    reset: bool,
) -> Result<i64, Failure> {
    let c = config(t);
    if is_increment(&c) && !reset && num(&c, "LAST_INCREMENT_ID") != -1 {
        let chain = IMAGES
            .get_in(pool, num(&c, "INCREMENTAL_BACKUP_ID"))
            .await?;
        return Ok(chain.datastore_id);
    }
    Ok(ds_id)
}

/// What starting the backup of a VM with template `t` asks of its owner's DATASTORE quota in
/// `ds_id`.
pub fn quota_ask(t: &Template, ds_id: i64, reset: bool) -> Ask {
    let c = config(t);
    let images = if reset || makes_image(&c) { 1.0 } else { 0.0 };
    Ask {
        kind: "DATASTORE",
        rid: ds_id,
        amounts: vec![("SIZE", backup_size(t) as f64), ("IMAGES", images)],
        scope: Default::default(),
    }
}

/// Checks datastore `ds_id` takes a backup of `size` MB: a BACKUP_DS with room for it.
pub async fn check_datastore(pool: &ReadPool, ds_id: i64, size: i64) -> Result<(), Failure> {
    let ds = DATASTORES.get_in(pool, ds_id).await?;
    if ds.kind != BACKUP_DS {
        return Err(fail(code::ACTION, "Datastore needs to be of type BACKUP"));
    }
    let used: i64 = ds.images.iter().map(|i| i.size).sum();
    let reserved = super::read_in(pool, move |c| {
        sqlstore::objects::backup::reserved_in(c, ds_id)
    })
    .await?;
    if super::storage::DUMMY_TOTAL_MB - used - reserved < size {
        return Err(fail(
            code::ACTION,
            "Not enough free space on target datastore",
        ));
    }
    Ok(())
}

/// The checks before a backup of VM `v` starts, shared by `one.vm.backup` and the scheduled
/// action and backup jobs, on the VM's template `t`: the datastore it goes to (see
/// [`target_datastore`]), a BACKUP one with room for it.
pub async fn prepare(
    pool: &ReadPool,
    t: &Template,
    ds_id: i64,
    reset: bool,
) -> Result<i64, Failure> {
    let ds_id = target_datastore(pool, t, ds_id, reset).await?;
    check_datastore(pool, ds_id, backup_size(t)).await?;
    Ok(ds_id)
}

/// The write that starts VM `v`'s backup into `ds_id` from its template `t` (the stored one,
/// or the scheduled action's edit of it), guarded by the template read and by the owner's
/// DATASTORE quota; shared by `one.vm.backup`, the scheduled action and backup jobs (`job`).
pub async fn start_write(
    pool: &ReadPool,
    v: &VmRow,
    t: Template,
    (ds_id, reset, job): (i64, bool, Option<i64>),
    wording: Wording,
) -> Result<Vec<SqlStmt>, Failure> {
    let ask = quota_ask(&t, ds_id, reset);
    let charge = Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording,
    };
    let guard = charge.guard_in(pool).await?;
    let id = v.head.owned.oid;
    let mut stmts = start_stmts_from(v, t, ds_id, reset, job).ok_or_else(|| wrong(id, v))?;
    stmts.extend(guard);
    Ok(stmts)
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
    let ds_id = prepare(&ctx.pool, &t, ds_id, reset).await?;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "backup", ADMIN).await?,
    )
    .await?;
    DATASTORES.authorized(ctx, s, ds_id, USE).await?;
    // The owner's DATASTORE quota holds the backup from its start: the write that starts it
    // reserves it (`backup_reserve`), guarded by the quota, and the one that ends it turns the
    // reservation into the image (or gives it back).
    let wording = Wording::Caller(s.uid);
    let ask = quota_ask(&t, ds_id, reset);
    Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording,
    }
    .guard(ctx)
    .await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS.get(ctx, id).await?;
        let t = stored(&v)?;
        let mut stmts = start_write(&ctx.pool, &v, t, (ds_id, reset, None), wording).await?;
        let backup = super::vm_actions::number::BACKUP;
        stmts.extend(super::vm_actions::closed_by(s, id, backup));
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
        stmts.push(sqlstore::objects::backup::release(id));
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
    if inc_id > super::backup_incs::last_id(&super::backup_incs::parse(&image.increments)) {
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
        let mut stmts = rows::move_stmts(&rows::Move {
            oid: id,
            from: (v.state, v.lcm_state),
            to: (state::ACTIVE, RESTORE),
            now: now(),
            leaves_host: false,
        });
        let restore = super::vm_actions::number::RESTORE;
        stmts.extend(super::vm_actions::closed_by(s, id, restore));
        Ok(stmts)
    })
    .await
}

/// The text of a refusal, as a scheduled action or a backup job records it.
pub fn message(f: &Failure) -> String {
    match f {
        Failure::Api { message, .. } => message.clone(),
        Failure::Fault(f) => f.message.clone(),
        Failure::NotLeader => "Cannot process request, leadership changed".into(),
        Failure::Replication { message, .. } => message.clone(),
    }
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

/// The write that ends VM `v`'s backup without an image (`trigger_backup_failure`): the VM
/// back where it was, its reservation given back, its job told.
fn failed_stmts(v: &VmRow, mut t: Template) -> Vec<SqlStmt> {
    let vid = v.head.owned.oid;
    clear_last(&mut t);
    let mut stmts = write_vm(v, &t, back_from(v.lcm_state));
    stmts.push(sqlstore::objects::backup::release(vid));
    stmts.extend(job_finished(job_id(&t), vid, false));
    stmts
}

/// The write that finishes VM `v`'s backup (`next` is the image counter as read, `chain` the
/// image its increment goes to, if it adds one) or restore.
fn finish_txn(v: &VmRow, next: i64, at: i64, chain: Option<&ImageRow>) -> Option<SqlTxn> {
    let mut t = Template::parse(&v.template).ok()?;
    let vid = v.head.owned.oid;
    if v.lcm_state == RESTORE {
        let stmts = write_vm(v, &t, (state::POWEROFF, lcm::INIT));
        return Some(SqlTxn { stmts });
    }
    let mut c = config(&t);
    let Some(ds_id) = get(&c, "LAST_DATASTORE_ID").and_then(|d| d.parse::<i64>().ok()) else {
        // No target recorded (the template was changed by hand): the backup fails.
        return Some(SqlTxn {
            stmts: failed_stmts(v, t),
        });
    };
    let size = backup_size(&t);
    let increment = is_increment(&c);
    let chain_id = num(&c, "INCREMENTAL_BACKUP_ID");
    let job = job_id(&t);
    let keep = get(&c, "KEEP_LAST")
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|k| *k > 0);
    if increment && chain_id != -1 {
        // `trigger_backup_success` adding an INCREMENT to the chain's image.
        let Some(image) = chain.filter(|i| i.head.owned.oid == chain_id) else {
            debug!(vm = vid, image = chain_id, "backup image does not exists");
            return Some(SqlTxn {
                stmts: failed_stmts(v, t),
            });
        };
        let mut list = incs::parse(&image.increments);
        let source = format!("dummy-backup/{vid}/{chain_id}/{}", incs::last_id(&list) + 1);
        let last = incs::add(&mut list, source, size, at);
        // KEEP_LAST on a chain merges its oldest increments (`flatten_increments`), here in
        // the same write; without it the chain is still bounded.
        incs::flatten(&mut list, keep.unwrap_or(incs::MAX));
        put(&mut c, "LAST_INCREMENT_ID", Some(last.to_string()));
        set_config(&mut t, c);
        clear_last(&mut t);
        let mut stmts = vec![sqlstore::objects::backup::set_increments(
            chain_id,
            incs::to_text(&list),
            image.increments.clone(),
            incs::total(&list),
        )];
        stmts.extend(write_vm(v, &t, back_from(v.lcm_state)));
        stmts.push(sqlstore::objects::backup::release(vid));
        stmts.extend(job_finished(job, vid, true));
        return Some(SqlTxn { stmts });
    }
    let image_id = next + 1;
    let mut it = Template::default();
    let single = |s: String| Value::Single(s);
    let name = format!("{vid} {}", stamp(at));
    let source = format!("dummy-backup/{vid}/{image_id}");
    it.push("NAME", single(name.clone()));
    it.push("VM_ID", single(vid.to_string()));
    it.push("TYPE", single("BACKUP".into()));
    if job >= 0 {
        it.push("BACKUP_JOB_ID", single(job.to_string()));
    }
    // What the image shows as BACKUP_DISK_IDS (`add_backup_disk`).
    let disks: Vec<String> = backup_disk_ids(&t).iter().map(i64::to_string).collect();
    it.push(DISK_IDS, single(disks.join(",")));
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
        source: source.clone(),
        format: "raw".into(),
        fs: String::new(),
        cloning_id: -1,
        // A backup datastore's disks are files.
        disk_type: 0,
    });
    let mut ids = ids(&t);
    ids.push(image_id);
    // KEEP_LAST: the oldest backups beyond it are forgotten (`Backups::remove_last`).
    let keep = keep.unwrap_or(IDS_MAX).min(IDS_MAX);
    let dropped: Vec<i64> = if ids.len() > keep {
        ids.drain(..ids.len() - keep).collect()
    } else {
        Vec::new()
    };
    set_ids(&mut t, &ids);
    let mut chain_text = None;
    if increment {
        // The chain's first backup: a FULL increment of a new image.
        let mut list = Vec::new();
        let first = incs::add(&mut list, source, size, at);
        put(&mut c, "INCREMENTAL_BACKUP_ID", Some(image_id.to_string()));
        put(&mut c, "LAST_INCREMENT_ID", Some(first.to_string()));
        set_config(&mut t, c);
        chain_text = Some(incs::to_text(&list));
    }
    clear_last(&mut t);
    let mut stmts = vec![
        sqlstore::objects::backup::counter_is(irows::TABLE, next),
        insert,
    ];
    if let Some(text) = chain_text {
        stmts.push(sqlstore::objects::backup::set_increments(
            image_id,
            text,
            String::new(),
            size,
        ));
    }
    stmts.extend(write_vm(v, &t, back_from(v.lcm_state)));
    stmts.push(sqlstore::objects::next_oid(irows::TABLE));
    stmts.push(sqlstore::objects::backup::release(vid));
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

/// VMs waiting for the driver, the image counter, and the chain images their increments go to.
type Waiting = (Vec<VmRow>, i64, Vec<ImageRow>);

fn waiting(c: &sqlstore::Conn) -> Result<Waiting, sqlstore::SqlError> {
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
    let mut chains = Vec::new();
    let mut by_id = c.prepare_cached(&irows::ROWS.by_id())?;
    for v in &found {
        let cfg = Template::parse(&v.template)
            .map(|t| config(&t))
            .unwrap_or_default();
        let chain = num(&cfg, "INCREMENTAL_BACKUP_ID");
        if v.lcm_state == RESTORE || !is_increment(&cfg) || chain == -1 {
            continue;
        }
        let mut rows = by_id.query_map([chain], |r| (irows::ROWS.read)(c, r))?;
        if let Some(image) = rows.next() {
            chains.push(image?);
        }
    }
    Ok((found, next, chains))
}

/// One pass of the dummy backup driver on the leader: every VM in BACKUP, BACKUP_POWEROFF or
/// RESTORE (a batch) is finished, each by one write guarded by its state, its template and the
/// image counter (or its chain's increments); a write refused because one changed is tried
/// again next pass.
pub async fn pass(ctx: &TaskCtx, cluster: &Cluster, pool: &ReadPool) {
    let (vms, mut next, chains) = match crate::db::read(pool, waiting).await {
        Ok(found) => found,
        Err(e) => {
            ctx.warn("reading VMs in backup or restore failed", &e);
            return;
        }
    };
    for v in &vms {
        let chain_id = Template::parse(&v.template)
            .map(|t| num(&config(&t), "INCREMENTAL_BACKUP_ID"))
            .unwrap_or(-1);
        let chain = chains.iter().find(|i| i.head.owned.oid == chain_id);
        let Some(txn) = finish_txn(v, next, now(), chain) else {
            continue;
        };
        // Only a write that makes an image starts with the counter's guard.
        let made =
            txn.stmts.first() == Some(&sqlstore::objects::backup::counter_is(irows::TABLE, next));
        match cluster.write(txn).await {
            Ok(sqlstore::TxnOutcome::Done { .. }) if made => next += 1,
            Ok(sqlstore::TxnOutcome::Done { .. }) => {}
            Ok(sqlstore::TxnOutcome::Failed(e)) => {
                // A chain another VM's write changed, or the counter moved: read again.
                debug!(error = ?e, vm = v.head.owned.oid, "finishing a backup raced");
                return;
            }
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
