//! The image methods beyond the owned-object calls (`RequestManagerImage`): `clone`,
//! `persistent`, `enable`, `chtype`, the snapshot calls, `restore`; `one.datastore.enable`;
//! what `Image::insert` makes of an allocation's template; and the `dummy` datastore driver's
//! results, which the leader's monitor task replicates.

use sqlstore::objects::datastore::DatastoreRow;
use sqlstore::objects::image::{self as rows, op, ImageRow};
use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use template::{Template, Value as TValue};
use wire::ImageState as S;
use xmlrpc::{Params, Value};

use super::perms::{caller, MANAGE, USE};
use super::storage::{DATASTORES, IMAGES};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// `Image::ImageType`, by number.
pub const TYPES: [&str; 7] = [
    "OS",
    "CDROM",
    "DATABLOCK",
    "KERNEL",
    "RAMDISK",
    "CONTEXT",
    "BACKUP",
];
const OS: i64 = 0;
const CDROM: i64 = 1;
const DATABLOCK: i64 = 2;
const BACKUP: i64 = 6;
/// `Datastore::DatastoreType`.
pub const IMAGE_DS: i64 = 0;
pub const SYSTEM_DS: i64 = 1;

/// `Image::state_to_str`: both USED states print `USED`, both LOCKED_USED ones `LOCKED_USED`.
pub fn state_str(state: i64) -> &'static str {
    rows::hook_state_name(state)
}

/// `stmt`, moving image `oid` from `from` to `to`, after the executions of the state hooks on
/// `to` (`ImagePool::update` fires them when the state changes).
fn moved(oid: i64, from: i64, to: i64, stmt: SqlStmt) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    if from != to {
        stmts = rows::state_events(oid, from, state_str(to), super::vm::now());
    }
    stmts.push(stmt);
    stmts
}

/// A disk image type (OS, CDROM, DATABLOCK) rather than a file (KERNEL, RAMDISK, CONTEXT) or a
/// backup.
fn is_disk(kind: i64) -> bool {
    (OS..=DATABLOCK).contains(&kind)
}

/// `Image::str_to_type`: an unknown name is OS, an empty one the default type.
fn str_to_type(name: &str) -> i64 {
    TYPES
        .iter()
        .position(|t| t.eq_ignore_ascii_case(name))
        .map_or(OS, |i| i as i64)
}

// ---------------------------------------------------------------------------------------------
// Snapshots: the `SNAPSHOTS` element, kept as a text template.

/// The stored snapshots of an image whose set was cleared (`Snapshots::clear`: released by a
/// VM without snapshots, flattened): nothing, not even the new image's defaults. A comment, so
/// it parses as an empty template.
pub const CLEARED: &str = "# cleared";

/// The stored snapshots: OpenNebula's set of a new image (`Snapshots(-1, DENY)`) when none
/// were ever stored, nothing once cleared ([`CLEARED`]).
pub fn snapshots_text(stored: &str) -> String {
    if stored.trim().is_empty() {
        "ALLOW_ORPHANS = \"NO\"\nCURRENT_BASE = \"-1\"\nNEXT_SNAPSHOT = \"0\"".to_string()
    } else if stored == CLEARED {
        String::new()
    } else {
        stored.to_string()
    }
}

/// `Template::get(name, bool&)` and `icasecmp(v, "YES")`: only YES, in any case, is true.
fn yes(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("yes")
}

// ---------------------------------------------------------------------------------------------
// What an allocation's template becomes (`Image::insert`).

/// The columns `Image::insert` takes out of an image's template, which keeps the rest.
pub struct Fields {
    pub persistent: bool,
    pub path: String,
    pub source: String,
    pub format: String,
    pub fs: String,
}

fn conf<'a>(ctx: &'a Ctx, key: &str) -> Option<&'a str> {
    ctx.config
        .raw
        .single(key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `Image::test_set_persistent` with `DEFAULT_IMAGE_PERSISTENT(_NEW)` (the session's user's or
/// group's OPENNEBULA vector, else oned.conf's): an allocation's own PERSISTENT wins; a clone
/// follows the setting when there is one.
pub async fn test_set_persistent(
    ctx: &Ctx,
    s: &Session,
    t: &mut Template,
    allocate: bool,
) -> Result<bool, Failure> {
    let own = t.single("PERSISTENT").map(yes);
    let key = if allocate {
        "DEFAULT_IMAGE_PERSISTENT_NEW"
    } else {
        "DEFAULT_IMAGE_PERSISTENT"
    };
    let setting = super::user_conf::get(ctx, s, key).await?;
    let setting = setting.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let persistent = match (allocate, own, setting) {
        (true, Some(own), _) => own,
        (_, _, Some(setting)) => yes(setting),
        (_, own, None) => own.unwrap_or(false),
    };
    t.set(
        "PERSISTENT",
        TValue::Single(if persistent { "YES" } else { "NO" }.into()),
    );
    if !persistent
        && t.single("PERSISTENT_TYPE")
            .is_some_and(|p| p.eq_ignore_ascii_case("SHAREABLE"))
    {
        t.remove("PERSISTENT_TYPE");
    }
    Ok(persistent)
}

/// `Image::insert`: takes NAME, TYPE, PERSISTENT, SIZE, FS, DRIVER, PATH, SOURCE, FORMAT and
/// TM_MAD out of the template, gives disks a DEV_PREFIX, and works out the format. `ds_driver`
/// is the datastore's DRIVER. Errors are `insert`'s messages.
pub fn take_fields(
    ctx: &Ctx,
    t: &mut Template,
    kind: i64,
    ds_driver: Option<&str>,
    cloning: bool,
) -> Result<Fields, String> {
    let take = |t: &mut Template, k: &str| {
        let v = t.single(k).unwrap_or("").to_string();
        t.remove(k);
        v
    };
    for k in ["NAME", "TYPE", "SIZE", "DRIVER", "TM_MAD"] {
        t.remove(k);
    }
    let persistent_attr = take(t, "PERSISTENT");
    let persistent = match kind {
        OS | CDROM | DATABLOCK => {
            if t.single("DEV_PREFIX").is_none_or(str::is_empty) {
                let prefix = if kind == CDROM {
                    conf(ctx, "DEFAULT_CDROM_DEVICE_PREFIX").unwrap_or("hd")
                } else {
                    conf(ctx, "DEFAULT_DEVICE_PREFIX").unwrap_or("sd")
                };
                t.set("DEV_PREFIX", TValue::Single(prefix.to_string()));
            }
            yes(&persistent_attr)
        }
        BACKUP => {
            t.remove("DEV_PREFIX");
            true
        }
        _ => {
            t.remove("DEV_PREFIX");
            false
        }
    };
    let fs = take(t, "FS");
    let path = take(t, "PATH");
    let source = take(t, "SOURCE");
    let mut format = take(t, "FORMAT");
    if !cloning {
        if !source.is_empty() {
            if !path.is_empty() {
                return Err("PATH and SOURCE cannot be both set.".into());
            }
            if format.is_empty() {
                return Err("SOURCE needs FORMAT to be set.".into());
            }
        } else if kind == BACKUP {
            return Err("SOURCE cannot be empty for BACKUP images".into());
        } else if !path.is_empty() {
            // The driver's `cp` reports the file's format; the dummy one takes the template's.
            if format.is_empty() {
                format = "raw".into();
            }
        } else if kind == DATABLOCK || kind == OS {
            if let Some(driver) = ds_driver.filter(|d| !d.is_empty()) {
                t.set("DRIVER", TValue::Single(driver.to_string()));
                format = driver.to_string();
            } else if format.is_empty() {
                format = "raw".into();
            }
        } else {
            return Err("No PATH nor SOURCE in template.".into());
        }
    }
    Ok(Fields {
        persistent,
        path,
        source,
        format,
        fs,
    })
}

// ---------------------------------------------------------------------------------------------
// Changing an image in place.

/// How often a change is recomputed when the image changed in between.
const RETRIES: usize = 10;

/// Reads image `id`, lets `change` decide (its statements guard what they read: a concurrent
/// change makes one match nothing, and it is decided again), and answers `answer`. No
/// statements: nothing to change.
async fn change(
    ctx: &Ctx,
    id: i64,
    answer: i64,
    change: impl Fn(&ImageRow) -> Result<Vec<SqlStmt>, Failure>,
) -> MethodResult {
    for _ in 0..RETRIES {
        let image = IMAGES.get(ctx, id).await?;
        let stmts = change(&image)?;
        if stmts.is_empty() {
            return Ok(Value::Int(answer as i32));
        }
        let mut raced = false;
        let done = ctx
            .commit(SqlTxn { stmts }, |r| {
                raced = r.kind == TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match done {
            Ok(_) => return Ok(Value::Int(answer as i32)),
            Err(_) if raced => continue,
            Err(f) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot change the image: it kept changing, try again",
    ))
}

/// `one.image.enable(id, enable)`: DISABLED or ERROR images back to READY (or in use), READY
/// or ERROR ones to DISABLED (`ImageManager::enable_image`).
pub async fn enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    IMAGES.authorized(ctx, s, id, MANAGE).await?;
    let refuse = |why: String| {
        let verb = if on { "enable" } else { "disable" };
        fail(code::INTERNAL, format!("Could not {verb} image: {why}"))
    };
    change(ctx, id, id, |i| {
        if i.kind == BACKUP {
            return Err(refuse(
                "Backup images cannot be enabled or disabled.".into(),
            ));
        }
        let state = S::from_i64(i.state);
        let to = match (on, state) {
            (true, Some(S::Disabled)) => S::Ready,
            (true, Some(S::Error)) if i.vms.is_empty() => S::Ready,
            (true, Some(S::Error)) if i.persistent => S::UsedPers,
            (true, Some(S::Error)) => S::Used,
            (true, Some(S::Ready)) | (false, Some(S::Disabled)) => return Ok(vec![]),
            (false, Some(S::Ready | S::Error)) => S::Disabled,
            _ => {
                return Err(refuse(format!(
                    "Image cannot be in state {}.",
                    state_str(i.state)
                )))
            }
        };
        let to = to.as_i64();
        Ok(moved(
            id,
            i.state,
            to,
            rows::set_state(id, i.state, to, "", vec![]),
        ))
    })
    .await
}

/// `lvm` datastores keep an image's persistency (`ImagePersistent`).
fn is_lvm(ds_mad: &str) -> bool {
    ds_mad.eq_ignore_ascii_case("lvm")
}

/// `DS_MAD_CONF`'s `PERSISTENT_ONLY` for `ds_mad`, from oned.conf, or OpenNebula's shipped
/// configuration when oned.conf has none.
pub fn persistent_only(ctx: &Ctx, ds_mad: &str) -> bool {
    let confs = super::ds_conf::vectors(&ctx.config.raw, "DS_MAD_CONF");
    if confs.is_empty() {
        return ["dev", "iscsi_libvirt", "restic", "rsync"].contains(&ds_mad);
    }
    confs
        .iter()
        .find(|c| template::vector_get(c, "NAME").is_some_and(|n| n.eq_ignore_ascii_case(ds_mad)))
        .and_then(|c| template::vector_get(c, "PERSISTENT_ONLY"))
        .is_some_and(yes)
}

/// `one.image.persistent(id, persistent)` (`ImagePersistent::request_execute`).
pub async fn persistent(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    IMAGES.authorized(ctx, s, id, MANAGE).await?;
    let image = IMAGES.get(ctx, id).await?;
    if image.persistent == on {
        return Ok(Value::Int(id as i32));
    }
    let ds = DATASTORES
        .get(ctx, image.datastore_id)
        .await
        .map_err(|_| fail(code::INTERNAL, "Datastore no longer exists."))?;
    if is_lvm(&ds.ds_mad) {
        return Err(fail(
            code::INTERNAL,
            "lvm datastores doesn't support change of image persistency.",
        ));
    }
    let only = persistent_only(ctx, &ds.ds_mad);
    change(ctx, id, id, |i| {
        if i.persistent == on {
            return Ok(vec![]);
        }
        match i.kind {
            OS | CDROM | DATABLOCK => {}
            BACKUP => return Err(fail(code::ACTION, "BACKUP images must be persistent")),
            _ => {
                return Err(fail(
                    code::ACTION,
                    "KERNEL, RAMDISK and CONTEXT must be non-persistent",
                ))
            }
        }
        if only && !on {
            return Err(fail(
                code::INTERNAL,
                "This Datastore only accepts persistent images.",
            ));
        }
        let verb = if on {
            "Could not make image persistent"
        } else {
            "Could not make image non-persistent"
        };
        if !on && !super::image_snaps::of_image(i).snaps.is_empty() {
            return Err(fail(
                code::INTERNAL,
                format!("{verb}: Image has snapshots."),
            ));
        }
        if matches!(
            S::from_i64(i.state),
            Some(S::Used | S::Clone | S::UsedPers | S::LockedUsed | S::LockedUsedPers)
        ) {
            return Err(fail(
                code::INTERNAL,
                format!("{verb}: Image cannot be in state {}.", state_str(i.state)),
            ));
        }
        Ok(vec![rows::set_persistent(id, on, i.state)])
    })
    .await
}

/// oned.conf's DEFAULT_IMAGE_TYPE (`ImagePool::default_type`): OS, CDROM or DATABLOCK, else
/// OS.
pub(super) fn default_type(ctx: &Ctx) -> String {
    match ctx.config.raw.single("DEFAULT_IMAGE_TYPE").map(str::trim) {
        Some(t @ ("OS" | "CDROM" | "DATABLOCK")) => t.to_string(),
        _ => "OS".to_string(),
    }
}

/// `one.image.chtype(id, type)` (`ImageChangeType`): within disks or within files.
pub async fn chtype(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_uppercase();
    IMAGES.authorized(ctx, s, id, MANAGE).await?;
    let name = if name.is_empty() {
        default_type(ctx)
    } else {
        name
    };
    let to = str_to_type(&name);
    change(ctx, id, id, |i| {
        if i.kind == BACKUP {
            return Err(fail(code::ACTION, "Cannot change type for BACKUP images."));
        }
        if is_disk(i.kind) != is_disk(to) || to == BACKUP {
            return Err(fail(
                code::ACTION,
                "Cannot change image type to an incompatible type for the current datastore.",
            ));
        }
        if name != "OS" && name != "DATABLOCK" && !super::image_snaps::of_image(i).snaps.is_empty()
        {
            return Err(fail(
                code::INTERNAL,
                "Image with snapshots can be only of type OS or DATABLOCK",
            ));
        }
        if !TYPES.contains(&name.as_str()) {
            // OpenNebula's `"Unknown type " + type` adds the enum to the literal's pointer:
            // the message loses as many leading characters as the image's type number.
            let msg = "Unknown type ";
            return Err(fail(
                code::INTERNAL,
                msg.get(i.kind.clamp(0, msg.len() as i64) as usize..)
                    .unwrap_or(""),
            ));
        }
        Ok(vec![rows::set_type(id, to, &i.snapshots)])
    })
    .await
}

/// Which snapshot call, with `ImageManager`'s words for its state refusal.
#[derive(Clone, Copy)]
enum SnapOp {
    Delete,
    Revert,
    Flatten,
}

async fn snapshot_call(ctx: &Ctx, s: &Session, p: Params<'_>, which: SnapOp) -> MethodResult {
    let id = p.int(0)? as i64;
    let sid = p.int(1)? as i64;
    IMAGES.authorized(ctx, s, id, MANAGE).await?;
    let refuse = |why: &str| fail(code::ACTION, why.to_string());
    change(ctx, id, sid, |i| {
        if !matches!(i.kind, OS | DATABLOCK) {
            return Err(refuse(
                "IMAGES of type KERNEL, RAMDISK, BACKUP and CONTEXT does not have snapshots.",
            ));
        }
        if i.state != S::Ready.as_i64() {
            let verb = match which {
                SnapOp::Delete => "delete snapshot",
                SnapOp::Revert => "revert to snapshot",
                SnapOp::Flatten => "flatten snapshot",
            };
            return Err(refuse(&format!(
                "Cannot {verb} in state {}",
                state_str(i.state)
            )));
        }
        let snaps = super::image_snaps::of_image(i);
        let (checked, driver_op) = match which {
            SnapOp::Delete => (snaps.test_delete_image(sid), op::SNAP_DELETE),
            SnapOp::Revert => (
                snaps.get(sid).map(drop).ok_or("Snapshot does not exist"),
                op::SNAP_REVERT,
            ),
            SnapOp::Flatten => (
                snaps.get(sid).map(drop).ok_or("Snapshot does not exist"),
                op::SNAP_FLATTEN,
            ),
        };
        checked.map_err(refuse)?;
        let to = S::Locked.as_i64();
        Ok(moved(
            id,
            i.state,
            to,
            rows::set_state(
                id,
                i.state,
                to,
                "target_snapshot = ?3, op = ?4",
                vec![SqlValue::Int(sid), SqlValue::Int(driver_op)],
            ),
        ))
    })
    .await
}

/// `one.image.snapshotdelete(id, snapshot)`.
pub async fn snapshot_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    snapshot_call(ctx, s, p, SnapOp::Delete).await
}

/// `one.image.snapshotrevert(id, snapshot)`.
pub async fn snapshot_revert(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    snapshot_call(ctx, s, p, SnapOp::Revert).await
}

/// `one.image.snapshotflatten(id, snapshot)`.
pub async fn snapshot_flatten(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    snapshot_call(ctx, s, p, SnapOp::Flatten).await
}

/// What OpenNebula's `dummy` datastore driver's `restore` prints (the restored template's id,
/// then the images'): it restores nothing, and `ImageManager::_restore` answers its output.
const DUMMY_RESTORE: &str = "0 dummy_image";

/// `one.image.restore(id, datastore, options)`: `ImageRestore` and `ImageManager::restore_image`.
/// Only BACKUP images restore, into an image datastore. The restore itself is the backup
/// datastore's driver's; OneHA's drivers are OpenNebula's `dummy` ones, whose `restore` creates
/// nothing and answers `DUMMY_RESTORE`, so the call answers that after OpenNebula's checks,
/// and writes nothing.
pub async fn restore(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let ds = p.int(1)? as i64;
    let options = p.string(2)?.to_string();
    let image = IMAGES.authorized(ctx, s, id, USE).await?;
    let dst = DATASTORES.authorized(ctx, s, ds, USE).await?;
    super::validate::template(&options).map_err(|e| fail(code::INTERNAL, e))?;
    if image.kind != BACKUP {
        return Err(fail(code::ACTION, "Can only restore images of type BACKUP"));
    }
    if dst.kind != IMAGE_DS {
        return Err(fail(
            code::ACTION,
            "Destination can be only an image datastore",
        ));
    }
    Ok(Value::String(DUMMY_RESTORE.into()))
}

/// `one.datastore.enable(id, enable)`: only system datastores (`Datastore::enable`).
pub async fn ds_enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    let ds = DATASTORES.authorized(ctx, s, id, MANAGE).await?;
    if ds.kind != SYSTEM_DS {
        return Err(fail(
            code::INTERNAL,
            "Only SYSTEM_DS can be disabled or enabled",
        ));
    }
    let state = if on {
        wire::DatastoreState::Ready
    } else {
        wire::DatastoreState::Disabled
    };
    let stmt = sqlstore::objects::datastore::set_state(id, state.as_i64());
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| {
        r.missing(DATASTORES.missing(id))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

// ---------------------------------------------------------------------------------------------
// Clone and delete.

/// `Datastore::get_avail_mb`: the datastore's LIMIT_MB (else the dummy datastore's capacity)
/// less what its images take, checked unless its DATASTORE_CAPACITY_CHECK (else oned.conf's,
/// default yes) says no.
pub(super) fn no_room(ctx: &Ctx, ds: &DatastoreRow, size: i64) -> bool {
    let t = Template::parse(&ds.template).unwrap_or_default();
    let check = match t.single("DATASTORE_CAPACITY_CHECK") {
        Some(own) => yes(own),
        None => conf(ctx, "DATASTORE_CAPACITY_CHECK").is_none_or(yes),
    };
    let used: i64 = ds.images.iter().map(|i| i.size).sum();
    let total = t
        .single_as::<i64>("LIMIT_MB")
        .unwrap_or(super::storage::DUMMY_TOTAL_MB);
    check && size > (total - used).max(0)
}

/// `one.image.clone(id, name[, datastore])` (`ImageClone::request_execute`): a new image, LOCKED
/// until the driver copied the source, which is cloning (USED, or CLONE if persistent) meanwhile.
pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let ds_id = if p.0.len() > 2 { p.int(2)? as i64 } else { -1 };
    clone_image(ctx, s, id, name, ds_id, false).await
}

/// [`clone`], a `persistent` clone whatever the source (`ImageClone::request_execute`'s flag,
/// which a template's persistent copy sets).
pub async fn clone_image(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    name: String,
    ds_id: i64,
    persistent: bool,
) -> MethodResult {
    let src = IMAGES.get(ctx, id).await?;
    if !is_disk(src.kind) {
        return Err(fail(
            code::ACTION,
            "KERNEL, RAMDISK, BACKUP and CONTEXT cannot be cloned.",
        ));
    }
    if !super::image_snaps::of_image(&src).snaps.is_empty() {
        return Err(fail(code::ACTION, "Cannot clone images with snapshots"));
    }
    // `Image::clone_template`.
    let mut t = Template::parse(&src.template).unwrap_or_default();
    let single = |v: &str| TValue::Single(v.to_string());
    t.set("NAME", single(&name));
    t.set("TYPE", single(TYPES[src.kind as usize]));
    t.set("PATH", single(&src.source));
    t.set("FORMAT", single(&src.format));
    t.set("SIZE", single(&src.size.to_string()));
    if persistent {
        t.set("PERSISTENT", single("YES"));
    } else {
        t.set(
            "PERSISTENT",
            single(if src.persistent { "YES" } else { "NO" }),
        );
        test_set_persistent(ctx, s, &mut t, false).await?;
    }
    let ds_id = if ds_id == -1 { src.datastore_id } else { ds_id };
    let only_image_ds = || fail(code::ACTION, "Clone only supported for IMAGE_DS Datastores");
    let ds = DATASTORES.get(ctx, ds_id).await?;
    if ds.kind != IMAGE_DS {
        return Err(only_image_ds());
    }
    let orig = if ds_id != src.datastore_id {
        let orig = DATASTORES.get(ctx, src.datastore_id).await?;
        if orig.kind != IMAGE_DS {
            return Err(only_image_ds());
        }
        if orig.ds_mad != ds.ds_mad {
            return Err(fail(
                code::ACTION,
                "Clone only supported to same DS_MAD Datastores",
            ));
        }
        Some(orig)
    } else {
        None
    };
    if no_room(ctx, &ds, src.size) {
        return Err(fail(code::ACTION, "Not enough space in datastore"));
    }
    // One authorization request: create, USE the image, USE the datastore(s).
    let c = caller(ctx, s).await?;
    let mut why = Vec::new();
    if !c.may_create(IMAGES.kind) {
        why.push("Not authorized to perform CREATE IMAGE".to_string());
    }
    why.extend(IMAGES.refusal(&c, &src, USE));
    why.extend(DATASTORES.refusal(&c, &ds, USE));
    if let Some(orig) = &orig {
        why.extend(DATASTORES.refusal(&c, orig, USE));
    }
    super::granted_unless(s, &why)?;
    // `quota_authorization` comes before `ImagePool::allocate`'s name and source checks.
    let ask = super::quota::Ask::new_image(ds_id, src.size as f64);
    let charge = super::quota::Charge {
        asks: std::slice::from_ref(&ask),
        uid: s.uid,
        gid: s.gid,
        wording: super::quota::Wording::Caller(s.uid),
    };
    let guard = charge.guard(ctx).await?;
    let allocate_error = |why: String| {
        fail(
            code::ALLOCATE,
            format!("Error allocating a new image. {why}"),
        )
    };
    super::validate::object_name(&name).map_err(allocate_error)?;
    let (taken, uid) = (name.clone(), s.uid);
    if let Some(oid) = ctx.read(move |c| rows::named(c, &taken, uid)).await? {
        return Err(allocate_error(format!(
            "NAME is already taken by IMAGE {oid}."
        )));
    }
    // `ImageManager::can_clone_image`, then `set_clone_state` on the source.
    let src_to = match S::from_i64(src.state) {
        Some(S::Ready) if src.persistent => S::Clone,
        Some(S::Ready) => S::Used,
        Some(s @ (S::Used | S::Clone)) => s,
        _ => {
            return Err(allocate_error(format!(
                "Cannot clone image in state: {}",
                state_str(src.state)
            )))
        }
    };
    let fields = take_fields(ctx, &mut t, src.kind, None, true).map_err(allocate_error)?;
    let insert = rows::insert(rows::NewImage {
        name: name.clone(),
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        kind: src.kind,
        persistent: fields.persistent,
        regtime: super::vm::now(),
        path: fields.path,
        size: src.size,
        state: S::Locked.as_i64(),
        datastore_id: ds_id,
        template: t.to_text(),
        source: String::new(),
        format: fields.format,
        fs: fields.fs,
        cloning_id: id,
        disk_type: super::ds_conf::disk_type_number(&ds.template, ds.kind) as i64,
    });
    let src_to = src_to.as_i64();
    let source_state = moved(
        id,
        src.state,
        src_to,
        rows::set_state(id, src.state, src_to, "", vec![]),
    );
    clone_insert(ctx, s, charge, guard, insert, source_state, &name).await
}

/// Inserts the clone with the source's move in the same transaction, under the quotas
/// (`guard`, `charge`'s answered before).
async fn clone_insert(
    ctx: &Ctx,
    s: &Session,
    charge: super::quota::Charge<'_>,
    guard: Option<SqlStmt>,
    insert: SqlStmt,
    source_state: Vec<SqlStmt>,
    name: &str,
) -> MethodResult {
    // Statement 0 is the insert: the source's move ends `source_state`, the guard follows.
    let mut with = source_state;
    let moved_at = with.len();
    let guard_at = match guard {
        Some(g) => {
            with.push(g);
            Some(with.len())
        }
        None => None,
    };
    let mut refused_at = None;
    let new = super::writes::New {
        what: "image",
        kind: "IMAGE",
        name,
        refusal: super::writes::Refusal::Allocate,
        owner: Some(s.uid),
    };
    let result = super::writes::allocate_next_refused(ctx, rows::TABLE, insert, with, new, |r| {
        refused_at = Some((r.kind, r.stmt))
    })
    .await;
    match (result, refused_at) {
        (Err(_), Some((_, at))) if Some(at) == guard_at => Err(charge.lost_race(ctx).await),
        (Err(_), Some((TxnErrorKind::NotFound, at))) if at == moved_at => Err(fail(
            code::ALLOCATE,
            "Error allocating a new image. Cannot clone image in current state",
        )),
        (other, _) => other,
    }
}

/// Why image `i` cannot be deleted now (`ImageManager::delete_image`), if it cannot.
fn busy(i: &ImageRow) -> Option<String> {
    let vms = || format!("There are {} VMs using it.", i.vms.len());
    match S::from_i64(i.state) {
        Some(S::Ready) if !i.vms.is_empty() && i.kind != BACKUP => Some(vms()),
        Some(S::Clone) => Some(format!(
            "There are {} active clone operations.",
            i.clones.len()
        )),
        Some(S::Used | S::UsedPers | S::LockedUsed | S::LockedUsedPers) => Some(vms()),
        _ => None,
    }
}

/// `one.image.delete(id[, force])` (`ImageDelete`): a locked image only with `force`, and then
/// only with ADMIN; never one in use or being cloned. A LOCKED clone releases its source.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let force = p.opt_bool(1)?.unwrap_or(false);
    let image = IMAGES.get(ctx, id).await?;
    let mut right = MANAGE;
    // `Image::is_locked`: a state the driver holds the image in, not the object's lock (which
    // only the authorization below weighs, as for any object).
    let driver_holds = matches!(
        S::from_i64(image.state),
        Some(S::Locked | S::LockedUsed | S::LockedUsedPers)
    );
    if driver_holds {
        right = super::perms::ADMIN;
        if !force {
            return Err(fail(
                code::INTERNAL,
                "Image locked, use --force flag to remove the image. \
                 Force delete may leave some files on Datastore",
            ));
        }
    }
    if force {
        // `ImageDelete` marks a forced delete in the template before it tries (it stays if the
        // delete is then refused); here only for a caller who may delete the image at all.
        IMAGES.authorized(ctx, s, id, right).await?;
        mark_force_delete(ctx, id).await?;
    }
    delete_object(ctx, s, id, right).await
}

/// FORCE_DELETE = YES in image `id`'s template (`replace_template_attribute(.., true)`).
async fn mark_force_delete(ctx: &Ctx, id: i64) -> Result<(), Failure> {
    let table = rows::TABLE;
    super::writes::write_computed(ctx, id, move || async move {
        let old = ctx
            .read(move |c| sqlstore::objects::template_text(c, table, "template", id))
            .await?
            .ok_or_else(|| IMAGES.missing(id))?;
        let mut t = template::Template::parse(&old).unwrap_or_default();
        t.set("FORCE_DELETE", template::Value::Single("YES".into()));
        Ok(vec![sqlstore::objects::replace_template(
            table,
            "template",
            id,
            t.to_text(),
            old,
        )])
    })
    .await
    .map(|_| ())
}

/// `ImageDelete::request_execute(oid, att)`, which requests that clean up after themselves call
/// (a template's images, a failed clone's copies): the caller's `right` on the image, then
/// the image goes unless VMs or clones use it, whatever state the driver holds it in.
pub async fn delete_object(ctx: &Ctx, s: &Session, id: i64, right: u64) -> MethodResult {
    IMAGES.authorized(ctx, s, id, right).await?;
    change(ctx, id, id, |i| {
        if let Some(why) = busy(i) {
            return Err(fail(code::ACTION, format!("Cannot delete image. {why}")));
        }
        // `ImageManager::delete_image`: an image with a source is DELETE (its hooks fire)
        // while the driver removes it; this one's driver removes it at once.
        let mut stmts = if i.source.is_empty() {
            Vec::new()
        } else {
            rows::state_events(id, i.state, "DELETE", super::vm::now())
        };
        stmts.push(rows::delete_idle(id, i.state));
        stmts.push(sqlstore::objects::acl::drop_rules_on(wire::acl::IMAGE, id));
        if i.state == S::Locked.as_i64() && i.cloning_id >= 0 {
            stmts.extend(rows::release_cloning(i.cloning_id, super::vm::now()));
        }
        Ok(stmts)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The dummy datastore driver.

/// What the leader's driver task finishes in one pass, at most.
pub const DRIVER_BATCH: i64 = 256;

/// The driver's results for the images it has work on (`ImageManager::_cp`, `_mkfs`,
/// `_clone`, `_snap_*`): each image leaves its locked state as `set_state_unlock` does, with
/// a source, and the sources of finished clones are released.
pub fn driver_results(pending: &[ImageRow], now: i64) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    let mut sources = Vec::new();
    for i in pending {
        let Some(to) = rows::UNLOCKS
            .iter()
            .find(|(from, _)| from.as_i64() == i.state)
            .map(|(_, to)| *to)
        else {
            continue;
        };
        if to == S::Ready {
            stmts.extend(rows::state_events(i.head.owned.oid, i.state, "READY", now));
        }
        let oid = i.head.owned.oid;
        let (from, to_i) = (i.state, to.as_i64());
        let source = if i.source.is_empty() {
            format!("/var/lib/one//datastores/{}/{oid}", i.datastore_id)
        } else {
            i.source.clone()
        };
        let format = if i.format.is_empty() {
            "raw".to_string()
        } else {
            i.format.clone()
        };
        let stmt = match i.op {
            op::CLONE => {
                sources.push(i.cloning_id);
                rows::driver_done(
                    oid,
                    from,
                    to_i,
                    op::CLONE,
                    "source = ?5, cloning_id = -1",
                    vec![SqlValue::Text(source)],
                )
            }
            op::SNAP_DELETE | op::SNAP_REVERT | op::SNAP_FLATTEN => {
                let mut snaps = super::image_snaps::of_image(i);
                let mut size = i.size;
                // A flattened image has no snapshots left, not even a set's defaults.
                let text = match i.op {
                    op::SNAP_DELETE => {
                        snaps.delete(i.target_snapshot);
                        super::image_snaps::set_text(&snaps)
                    }
                    op::SNAP_REVERT => {
                        size = snaps.revert(i.target_snapshot).unwrap_or(size);
                        super::image_snaps::set_text(&snaps)
                    }
                    _ => CLEARED.to_string(),
                };
                rows::driver_done(
                    oid,
                    from,
                    to_i,
                    i.op,
                    "snapshots = ?5, size = ?6",
                    vec![SqlValue::Text(text), SqlValue::Int(size)],
                )
            }
            _ => rows::driver_done(
                oid,
                from,
                to_i,
                op::REGISTER,
                "source = ?5, format = ?6",
                vec![SqlValue::Text(source), SqlValue::Text(format)],
            ),
        };
        stmts.push(stmt);
    }
    sources.sort_unstable();
    sources.dedup();
    stmts.extend(
        sources
            .into_iter()
            .flat_map(|src| rows::release_cloning(src, now)),
    );
    stmts
}

// ---------------------------------------------------------------------------------------------
// For the VM side: taking and releasing an image as a disk.

/// `ImageManager::acquire_image`: the statements that make VM `vid` use image `i` (read just
/// before; they match nothing if its state changed meanwhile, which fails the caller's
/// transaction), or OpenNebula's refusal. `attach` is a hot-plug, which a locked image refuses.
pub fn acquire(i: &ImageRow, vid: i64, attach: bool) -> Result<Vec<SqlStmt>, String> {
    acquire_as(i, attach, rows::add_vm(i.head.owned.oid, vid))
}

/// [`acquire`] by the VM the same transaction creates.
pub fn acquire_new(i: &ImageRow) -> Result<Vec<SqlStmt>, String> {
    acquire_as(i, false, rows::add_new_vm(i.head.owned.oid))
}

fn acquire_as(i: &ImageRow, attach: bool, add: SqlStmt) -> Result<Vec<SqlStmt>, String> {
    let oid = i.head.owned.oid;
    if !is_disk(i.kind) {
        return Err(format!(
            "Image {oid} ({}) of type {} cannot be used as DISK.",
            i.head.name,
            TYPES.get(i.kind as usize).copied().unwrap_or("")
        ));
    }
    let shareable = Template::parse(&i.template)
        .ok()
        .and_then(|t| {
            t.single("PERSISTENT_TYPE")
                .map(|p| p.eq_ignore_ascii_case("SHAREABLE"))
        })
        .unwrap_or(false);
    let locked = || format!("Cannot acquire image {oid}, it is locked");
    let in_use = || format!("Cannot acquire image {oid}, it is persistent and already in use");
    let to = match S::from_i64(i.state) {
        Some(S::Ready) if i.persistent => S::UsedPers,
        Some(S::Ready) => S::Used,
        Some(S::Locked) if attach => return Err(locked()),
        Some(S::Locked) if i.persistent => S::LockedUsedPers,
        Some(S::Locked) => S::LockedUsed,
        Some(S::UsedPers) if !shareable => return Err(in_use()),
        Some(S::LockedUsedPers) if !shareable => return Err(in_use()),
        Some(S::LockedUsed | S::LockedUsedPers) if attach => return Err(locked()),
        Some(s @ (S::Used | S::UsedPers | S::LockedUsed | S::LockedUsedPers)) => s,
        _ => {
            return Err(format!(
                "Cannot acquire image {oid}, it is in state: {}",
                state_str(i.state)
            ))
        }
    };
    let to = to.as_i64();
    let mut stmts = moved(
        oid,
        i.state,
        to,
        rows::set_state(oid, i.state, to, "", vec![]),
    );
    // The move and the use must find the image as it was read; the hooks' executions need not.
    stmts.push(add.must_match());
    Ok(stmts)
}

/// `ImageManager::release_image`: the statements that end VM `vid`'s use of image `i`; the
/// image is READY (or LOCKED, if the driver is still at it) once no VM uses it, or in ERROR
/// when the VM's disk `failed`. Nothing for an image in a state nothing uses.
pub fn release(i: &ImageRow, vid: i64, failed: bool, now: i64) -> Vec<SqlStmt> {
    let oid = i.head.owned.oid;
    let (persistent, to) = match S::from_i64(i.state) {
        Some(S::UsedPers) => (true, S::Ready),
        Some(S::LockedUsedPers) => (true, S::Locked),
        Some(S::Used) => (false, S::Ready),
        Some(S::LockedUsed) => (false, S::Locked),
        _ => return Vec::new(),
    };
    let mut stmts = vec![rows::remove_vm(oid, vid)];
    if persistent && failed {
        let mut to_error = rows::set_state(
            oid,
            i.state,
            S::Error.as_i64(),
            "modtime = ?3",
            vec![SqlValue::Int(now)],
        );
        // The VM's transaction goes on whatever the image's state became meanwhile.
        to_error.must_match = false;
        stmts.extend(moved(oid, i.state, S::Error.as_i64(), to_error));
    } else {
        let modtime = persistent.then_some(now);
        // Released only once no VM (and, for a non-persistent one, no clone) uses it.
        let mut cond = " AND NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = o.oid)".to_string();
        if !persistent {
            cond.push_str(
                " AND NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = o.oid)",
            );
        }
        let to = to.as_i64();
        stmts.extend(rows::state_events_if(
            oid,
            i.state,
            state_str(to),
            &cond,
            now,
        ));
        stmts.push(rows::release_if_unused(oid, i.state, to, modtime));
    }
    stmts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_delete_and_revert_as_opennebula() {
        let text = "ALLOW_ORPHANS = \"NO\"\nCURRENT_BASE = \"-1\"\nNEXT_SNAPSHOT = \"3\"\n\
            SNAPSHOT = [ ID = \"0\", PARENT = \"-1\", CHILDREN = \"1\", SIZE = \"10\", DATE = \"1\" ]\n\
            SNAPSHOT = [ ID = \"1\", PARENT = \"0\", CHILDREN = \"2\", SIZE = \"20\", DATE = \"2\" ]\n\
            SNAPSHOT = [ ID = \"2\", PARENT = \"1\", ACTIVE = \"YES\", SIZE = \"30\", DATE = \"3\" ]";
        let mut s = super::super::image_snaps::parse_set(text);
        let field = |s: &super::super::vm_disk_snaps::DiskSnaps, id: i64, k: &str| {
            s.get(id)
                .and_then(|v| template::vector_get(v, k))
                .map(str::to_string)
        };
        assert_eq!(
            s.test_delete_image(2),
            Err("Cannot delete the active snapshot")
        );
        assert_eq!(
            s.test_delete_image(1),
            Err("Cannot delete snapshot with children")
        );
        assert_eq!(s.test_delete_image(7), Err("Snapshot does not exist"));
        assert_eq!(s.revert(0), Some(10));
        assert_eq!(s.test_delete_image(2), Ok(()));
        s.delete(2);
        assert_eq!(s.snaps.len(), 2);
        assert_eq!(field(&s, 1, "CHILDREN"), None);
        assert_eq!(s.test_delete_image(1), Ok(()));
        // Emptied, the set keeps its head and next id.
        s.delete(1);
        s.delete(0);
        assert_eq!(
            super::super::image_snaps::set_text(&s),
            "ALLOW_ORPHANS=\"NO\"\nCURRENT_BASE=\"-1\"\nNEXT_SNAPSHOT=\"3\"\n"
        );
        assert_eq!(state_str(S::UsedPers.as_i64()), "USED");
        assert_eq!(str_to_type("nonsense"), OS);
    }

    #[test]
    fn a_linear_revert_drops_the_younger_snapshots() {
        let text = "ALLOW_ORPHANS = \"LINEAR\"\nCURRENT_BASE = \"-1\"\nNEXT_SNAPSHOT = \"3\"\n\
            SNAPSHOT = [ ID = \"0\", PARENT = \"-1\", SIZE = \"10\", DATE = \"1\" ]\n\
            SNAPSHOT = [ ID = \"1\", PARENT = \"-1\", SIZE = \"20\", DATE = \"2\" ]\n\
            SNAPSHOT = [ ID = \"2\", PARENT = \"-1\", ACTIVE = \"YES\", SIZE = \"30\", DATE = \"3\" ]";
        let mut s = super::super::image_snaps::parse_set(text);
        assert_eq!(s.revert(0), Some(10));
        assert_eq!(s.snaps.len(), 1);
        assert_eq!(s.active(), 0);
    }
}
