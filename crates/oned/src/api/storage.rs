//! `one.datastore.*`, `one.datastorepool.info`, `one.image.*` and `one.imagepool.info`.
//! Datastores 0 `system`, 1 `default` and 2 `files` exist from the start. A new image is
//! LOCKED until the leader's driver task (`crate::monitor`) makes it READY, as a replicated write.

use sqlstore::objects::cluster::{self as cluster_rows, Member};
use sqlstore::objects::datastore::{self as ds, DatastoreRow, NewDatastore};
use sqlstore::objects::image::{self, ImageRow, NewImage};
use sqlstore::SqlTxn;
use xmlrpc::{Params, Value};

use super::family::Family;
use super::images::TYPES;
use super::method::{Auth, Method};
use super::owned;
use super::perms::USE;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};

pub use wire::acl::{DATASTORE, IMAGE};
/// Image states.
pub const LOCKED: i64 = wire::ImageState::Locked.as_i64();
/// Capacity the dummy datastores report, in MB.
pub(super) const DUMMY_TOTAL_MB: i64 = 1024 * 1024;
/// What a new datastore adds to the maker's umask: its group's USE (`Datastore::Datastore`).
const DATASTORE_GROUP_USE: i64 = 0o040;

pub static DATASTORES: Family<DatastoreRow> = Family {
    table: ds::TABLE,
    kind: DATASTORE,
    acl: "DATASTORE",
    what: "datastore",
    pool: "DATASTORE_POOL",
    template: "template",
    rows: &ds::ROWS,
    xml: ds_xml,
    quota: None,
    pool_xml: None,
};

pub static IMAGES: Family<ImageRow> = Family {
    table: image::TABLE,
    kind: IMAGE,
    acl: "IMAGE",
    what: "image",
    pool: "IMAGE_POOL",
    template: "template",
    rows: &image::ROWS,
    xml: image_xml,
    quota: Some(|i| Some(super::quota::Ask::new_image(i.datastore_id, i.size as f64))),
    pool_xml: None,
};

pub const DATASTORE_METHODS: &[Method] = &[
    // CREATE DATASTORE and ADMIN on the cluster, by ACL rules, after the template and the
    // cluster are read (`RequestManagerAllocate::allocate_authorization`).
    method!("one.datastore.allocate", Write, Auth::Object, ds_allocate),
    method!(
        "one.datastore.info",
        Read,
        Auth::Object,
        owned::info,
        &DATASTORES
    ),
    method!("one.datastore.delete", Write, Auth::Object, ds_delete),
    method!(
        "one.datastore.enable",
        Write,
        Auth::Object,
        super::images::ds_enable
    ),
    method!(
        "one.datastore.update",
        Write,
        Auth::Object,
        super::ds_update::update
    ),
    method!("one.datastorepool.info", Read, Auth::Object, ds_pool_info),
];

/// The owned-object calls: chmod, chown, rename, update.
pub const DATASTORE_OWNED: &[Method] =
    &owned_methods!(@each "one.datastore", &DATASTORES, [chmod, chown, rename]);

pub const IMAGE_METHODS: &[Method] = &[
    method!("one.image.allocate", Write, Auth::Object, image_allocate),
    method!("one.image.info", Read, Auth::Object, owned::info, &IMAGES),
    method!(
        "one.image.delete",
        Write,
        Auth::Object,
        super::images::delete
    ),
    method!("one.image.clone", Write, Auth::Object, super::images::clone),
    method!(
        "one.image.persistent",
        Write,
        Auth::Object,
        super::images::persistent
    ),
    method!(
        "one.image.enable",
        Write,
        Auth::Object,
        super::images::enable
    ),
    method!(
        "one.image.chtype",
        Write,
        Auth::Object,
        super::images::chtype
    ),
    method!(
        "one.image.snapshotdelete",
        Write,
        Auth::Object,
        super::images::snapshot_delete
    ),
    method!(
        "one.image.snapshotrevert",
        Write,
        Auth::Object,
        super::images::snapshot_revert
    ),
    method!(
        "one.image.snapshotflatten",
        Write,
        Auth::Object,
        super::images::snapshot_flatten
    ),
    method!(
        "one.image.restore",
        Write,
        Auth::Object,
        super::images::restore
    ),
    method!(
        "one.imagepool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &IMAGES
    ),
];

/// The owned-object calls: chmod, chown, rename, update, lock, unlock.
pub const IMAGE_OWNED: &[Method] = &owned_methods!(lockable "one.image", &IMAGES);

pub(super) fn ds_xml(d: &DatastoreRow, out: &mut String) {
    let used: i64 = d.images.iter().map(|i| i.size).sum();
    Xml::new(out).elem("DATASTORE", |x| {
        xml::owned_head(x, &d.head, None);
        x.text("DS_MAD", &d.ds_mad)
            .text("TM_MAD", &d.tm_mad)
            .text(
                "BASE_PATH",
                &format!("/var/lib/one//datastores/{}", d.head.owned.oid),
            )
            .num("TYPE", d.kind)
            .num(
                "DISK_TYPE",
                super::ds_conf::disk_type_number(&d.template, d.kind),
            )
            .num("STATE", d.state)
            .elem("CLUSTERS", |x| {
                for c in &d.clusters {
                    x.num("ID", c);
                }
            })
            .num("TOTAL_MB", DUMMY_TOTAL_MB)
            .num("FREE_MB", DUMMY_TOTAL_MB - used)
            .num("USED_MB", used)
            .elem("IMAGES", |x| {
                for i in &d.images {
                    x.num("ID", i.oid);
                }
            })
            .raw(&xml::template(&d.template, "TEMPLATE"));
    });
}

/// `one.datastore.allocate(template, cluster)` in 7.0.2's order: the cluster, then
/// `DatastorePool::allocate` (name, duplicates) and `Datastore::insert` (DS_MAD, TM_MAD and
/// what their oned.conf entries require), every refusal INTERNAL in oned's words.
pub async fn ds_allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let cluster = super::clusters::allocation_cluster(ctx, &p, 1).await?;
    {
        use super::method::{self as table, Need};
        table::require(
            ctx,
            s,
            &[
                Need::kind(wire::acl::DATASTORE, wire::acl::CREATE),
                Need::on(wire::acl::CLUSTER, cluster, wire::acl::ADMIN),
            ],
        )
        .await?;
    }
    let internal = |m: String| fail(code::INTERNAL, m);
    let name = t.single("NAME").unwrap_or("").to_string();
    super::validate::object_name(&name).map_err(internal)?;
    let named = name.clone();
    if let Some(other) = ctx
        .read(move |c| sqlstore::objects::oid_named(c, ds::TABLE, &named))
        .await?
    {
        return Err(internal(format!(
            "NAME is already taken by DATASTORE {other}."
        )));
    }
    // `Datastore::str_to_type`: anything else is an image datastore.
    let kind = match t.single("TYPE").unwrap_or("").to_uppercase().as_str() {
        "SYSTEM_DS" => 1,
        "FILE_DS" => 2,
        "BACKUP_DS" => super::vm_backup::BACKUP_DS,
        _ => 0,
    };
    let ds_mad = t.single("DS_MAD").unwrap_or("").to_string();
    let ds_mad = match (kind, ds_mad.is_empty()) {
        (1, true) => "-".to_string(),
        (1, false) => {
            return Err(internal(
                "SYSTEM datastores cannot have DS_MAD defined.".into(),
            ))
        }
        (_, true) => return Err(internal("No DS_MAD in template.".into())),
        (_, false) => {
            ds_mad_checked(ctx, &t, &ds_mad).map_err(internal)?;
            ds_mad
        }
    };
    let tm_mad = match (kind, t.single("TM_MAD").unwrap_or("")) {
        (k, _) if k == super::vm_backup::BACKUP_DS => "-".to_string(),
        (_, "") => return Err(internal("No TM_MAD in template.".into())),
        (_, tm)
            if !super::ds_conf::tm_names(&ctx.config.raw)
                .iter()
                .any(|n| n.eq_ignore_ascii_case(tm)) =>
        {
            return Err(internal(format!(
                "TM_MAD named \"{tm}\" is not defined in oned.conf"
            )))
        }
        (_, tm) => tm.to_string(),
    };
    // `Datastore::insert`: the name is the object's, not its template's; its drivers' settings.
    let mut t = t;
    t.remove("NAME");
    super::ds_conf::at_allocate(&ctx.config.raw, &mut t, kind, &tm_mad).map_err(internal)?;
    super::encrypted::seal_in(ctx, ds::TABLE, &mut t);
    let insert = ds::insert(NewDatastore {
        name: name.clone(),
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s) | DATASTORE_GROUP_USE,
        kind,
        ds_mad,
        tm_mad,
        template: t.to_text(),
    });
    super::allocate_next_with(
        ctx,
        ds::TABLE,
        insert,
        vec![cluster_rows::add_new(Member::Datastore, cluster)],
        "datastore",
        "DATASTORE",
        &name,
    )
    .await
}

/// `one.datastorepool.info()`: the datastores the caller may USE, filtered in SQL and printed
/// row by row.
pub async fn ds_pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    DATASTORES.pool_all(ctx, s).await
}

/// `one.datastore.delete(id)` (`DatastoreDelete`): ADMIN on the datastore, which must hold no
/// image (`DatastorePool::drop`); any datastore, the first three too.
pub async fn ds_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    DATASTORES
        .authorized(ctx, s, id, super::perms::ADMIN)
        .await?;
    let mut stmts = ds::delete_if_empty(id);
    stmts.extend(sqlstore::objects::vdc::forget_resource(
        sqlstore::objects::vdc::Kind::Datastore,
        ctx.config.zone_id,
        id,
    ));
    stmts.push(sqlstore::objects::acl::drop_rules_on(
        wire::acl::DATASTORE,
        id,
    ));
    let txn = SqlTxn { stmts };
    ctx.commit(txn, |r| {
        r.missing(fail(
            code::ACTION,
            format!("Cannot delete datastore. Datastore {id} is not empty."),
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `Image::to_xml`.
pub(super) fn image_xml(i: &ImageRow, out: &mut String) {
    // A backup image is used by its VM for good (`Image::insert` takes VM_ID out of the
    // template into its running set) and lists the disks it holds; its template keeps
    // neither, nor NAME and TYPE.
    let mut vms = std::borrow::Cow::Borrowed(&i.vms);
    let mut template = std::borrow::Cow::Borrowed(i.template.as_str());
    let mut disks: Vec<i64> = Vec::new();
    if i.kind == super::vm_backup::BACKUP_IMAGE {
        let mut t = template::Template::parse(&i.template).unwrap_or_default();
        let number = |v: &str| v.trim().parse::<i64>().ok();
        if let Some(vm) = t.single("VM_ID").and_then(number) {
            if !vms.contains(&vm) {
                vms.to_mut().push(vm);
            }
        }
        disks = (t.single(super::vm_backup::DISK_IDS).unwrap_or(""))
            .split(',')
            .filter_map(number)
            .collect();
        for k in ["NAME", "TYPE", "VM_ID", super::vm_backup::DISK_IDS] {
            t.remove(k);
        }
        template = std::borrow::Cow::Owned(t.to_text());
    }
    Xml::new(out).elem("IMAGE", |x| {
        xml::owned_head(x, &i.head, Some(&i.lock));
        x.num("TYPE", i.kind)
            .num("DISK_TYPE", i.disk_type)
            .num("PERSISTENT", i.persistent as i64)
            .num("REGTIME", i.regtime)
            .num("MODTIME", i.modtime)
            .text("SOURCE", &i.source)
            .text("PATH", &i.path)
            .text("FORMAT", &i.format)
            .text("FS", &i.fs)
            .num("SIZE", i.size)
            .num("STATE", i.state)
            .num("PREV_STATE", i.prev_state)
            .num("RUNNING_VMS", vms.len())
            .num("CLONING_OPS", i.clones.len())
            .num("CLONING_ID", i.cloning_id)
            .num("TARGET_SNAPSHOT", i.target_snapshot)
            .num("DATASTORE_ID", i.datastore_id)
            .text("DATASTORE", &i.datastore)
            .ids("VMS", &vms)
            .ids("CLONES", &i.clones)
            .empty("APP_CLONES")
            .raw(&xml::template(&template, "TEMPLATE"))
            .raw(&xml::template(
                &super::images::snapshots_text(&i.snapshots),
                "SNAPSHOTS",
            ))
            .raw(&xml::template(&i.increments, "BACKUP_INCREMENTS"))
            .ids("BACKUP_DISK_IDS", &disks);
    });
}

/// `one.image.allocate(template, datastore)` in `ImageAllocate::request_execute`'s order: the
/// datastore, the size, the capacity, the rights, the quota, the persistent-only rule, then the
/// pool's checks (name, type against the datastore's), each answered as 7.0.2 does.
pub async fn image_allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let ds = p.int(1)? as i64;
    // An administrator may skip the capacity check (`ImageAllocate`'s third parameter).
    let check_capacity = !(s.is_admin() && p.0.len() > 2 && p.opt_bool(2)?.unwrap_or(false));
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let d = DATASTORES.get(ctx, ds).await?;
    if d.kind == 1 || d.kind == super::vm_backup::BACKUP_DS {
        return Err(allocating_image(
            "New images can only be allocated in a files or image datastore.",
        ));
    }
    let from_app = from_app(ctx, &mut t).await?;
    let kind_name = match t.single("TYPE").unwrap_or("") {
        "" => super::images::default_type(ctx),
        k => k.to_uppercase(),
    };
    let size = match from_app {
        Some(sz) => sz,
        None => stat_size(&t, &kind_name)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot parse image SIZE: {e}")))?,
    };
    if check_capacity && super::images::no_room(ctx, &d, size) {
        return Err(fail(code::ACTION, "Not enough space in datastore"));
    }
    if !s.is_admin() {
        if let Some(name) = super::restricted::in_new(&super::restricted::image(ctx), &t) {
            return Err(super::unauthorized(
                s,
                &format!("Template includes a restricted attribute {name}"),
            ));
        }
    }
    // CREATE IMAGE and USE on the datastore in one request, every refusal named.
    let c = super::perms::caller(ctx, s).await?;
    let mut why: Vec<String> = Vec::new();
    if !c.may_create(wire::acl::IMAGE) {
        why.push("Not authorized to perform CREATE IMAGE".into());
    }
    why.extend(DATASTORES.refusal(&c, &d, USE));
    super::granted_unless(s, &why)?;
    // `quota_authorization` comes before the persistent-only rule and the pool's checks (the
    // insert is guarded again where it is applied).
    let ask = super::quota::Ask::new_image(ds, size as f64);
    super::quota::Charge {
        asks: std::slice::from_ref(&ask),
        uid: s.uid,
        gid: s.gid,
        wording: super::quota::Wording::Caller(s.uid),
    }
    .guard(ctx)
    .await?;
    let persistent = super::images::test_set_persistent(ctx, s, &mut t, true).await?;
    if super::images::persistent_only(ctx, &d.ds_mad) && !persistent {
        return Err(allocating_image(
            "This Datastore only accepts persistent images.",
        ));
    }
    let name = t.single("NAME").unwrap_or("").to_string();
    super::validate::object_name(&name).map_err(allocating_image)?;
    if let Some(why) = kind_misplaced(&kind_name, d.kind) {
        return Err(allocating_image(why));
    }
    let kind = TYPES
        .iter()
        .position(|k| *k == kind_name)
        // `Image::set_type` names the type it holds, still OS's (empty): `Unknown type `.
        .ok_or_else(|| allocating_image("Unknown type "))? as i64;
    let ds_driver = template::Template::parse(&d.template)
        .ok()
        .and_then(|dt| dt.single("DRIVER").map(str::to_string));
    let fields = super::images::take_fields(ctx, &mut t, kind, ds_driver.as_deref(), false)
        .map_err(|e| fail(code::ALLOCATE, format!("Error allocating a new image. {e}")))?;
    // `ImageManager::register_image`: an image named by its SOURCE alone needs no driver and
    // is READY at once; any other waits for the driver's copy, LOCKED.
    let state = if fields.path.is_empty() && !fields.source.is_empty() {
        wire::ImageState::Ready.as_i64()
    } else {
        LOCKED
    };
    let insert = image::insert(NewImage {
        name: name.clone(),
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        kind,
        persistent: fields.persistent,
        regtime: super::vm::now(),
        path: fields.path,
        size,
        state,
        datastore_id: ds,
        template: t.to_text(),
        source: fields.source,
        format: fields.format,
        fs: fields.fs,
        cloning_id: -1,
        disk_type: super::ds_conf::disk_type_number(&d.template, d.kind) as i64,
    });
    let refusal = super::writes::Refusal::Allocate;
    super::quota::allocate(
        ctx,
        s,
        &ask,
        image::TABLE,
        insert,
        "image",
        "IMAGE",
        &name,
        refusal,
    )
    .await
}

/// The `DS_MAD_CONF` drivers of the shipped oned.conf, with their `REQUIRED_ATTRS`, and the
/// built-in ones it does not name (`OpenNebulaTemplate`: shared, ssh, vmfs).
const SHIPPED_DS_MADS: [(&str, &str); 12] = [
    ("ceph", "DISK_TYPE,BRIDGE_LIST"),
    ("dev", "DISK_TYPE"),
    ("iscsi_libvirt", "DISK_TYPE,ISCSI_HOST"),
    ("dummy", ""),
    ("fs", ""),
    ("lvm", "DISK_TYPE,BRIDGE_LIST"),
    ("restic", "RESTIC_PASSWORD"),
    ("rsync", "RSYNC_HOST,RSYNC_USER"),
    (
        "netapp",
        "NETAPP_HOST,NETAPP_USER,NETAPP_PASS,NETAPP_AGGREGATES,NETAPP_SVM,NETAPP_IGROUP,\
         NETAPP_TARGET",
    ),
    ("shared", ""),
    ("ssh", ""),
    ("vmfs", "BRIDGE_LIST"),
];

/// The NAMEs of oned.conf's `conf` vectors (`TM_MAD_CONF`...), or the shipped ones when it has
/// none.
pub(super) fn driver_conf_names(ctx: &Ctx, conf: &str, shipped: &[&str]) -> Vec<String> {
    let named: Vec<String> = (super::ds_conf::vectors(&ctx.config.raw, conf).into_iter())
        .filter_map(|v| template::vector_get(v, "NAME").map(str::to_string))
        .collect();
    if named.is_empty() {
        return shipped.iter().map(|n| n.to_string()).collect();
    }
    named
}

/// `Datastore::set_ds_mad`: a driver oned.conf defines, and every attribute its
/// `REQUIRED_ATTRS` names, not empty.
pub(super) fn ds_mad_checked(
    ctx: &Ctx,
    t: &template::Template,
    ds_mad: &str,
) -> Result<(), String> {
    let confs = super::ds_conf::vectors(&ctx.config.raw, "DS_MAD_CONF");
    let required = if confs.is_empty() {
        SHIPPED_DS_MADS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ds_mad))
            .map(|(_, r)| r.to_string())
    } else {
        confs
            .iter()
            .find(|c| {
                template::vector_get(c, "NAME").is_some_and(|n| n.eq_ignore_ascii_case(ds_mad))
            })
            .map(|c| {
                template::vector_get(c, "REQUIRED_ATTRS")
                    .unwrap_or("")
                    .to_string()
            })
    };
    let required =
        required.ok_or_else(|| format!("DS_MAD named \"{ds_mad}\" is not defined in oned.conf"))?;
    for attr in required.split(',').map(|a| a.trim().to_uppercase()) {
        if !attr.is_empty() && t.single(&attr).is_none_or(str::is_empty) {
            return Err(format!(
                "Datastore template is missing the \"{attr}\" attribute or it's empty."
            ));
        }
    }
    Ok(())
}

/// `ImageAllocate`'s ALLOCATE answer.
fn allocating_image(why: impl std::fmt::Display) -> super::Failure {
    super::writes::Refusal::Allocate.fail("image", why)
}

/// The image's size in MiB as `ImageManager::stat_image` finds it before the driver is asked,
/// or why not. A file the driver would stat (a PATH) is 1 GiB to the dummy driver unless SIZE
/// says otherwise.
fn stat_size(t: &template::Template, kind: &str) -> Result<i64, String> {
    let given = || t.single("SIZE").and_then(|v| v.trim().parse::<i64>().ok());
    let sized = || {
        given()
            .filter(|sz| *sz >= 0)
            .ok_or_else(|| "Wrong number or missing SIZE attribute.".to_string())
    };
    let has = |k: &str| t.single(k).is_some_and(|v| !v.is_empty());
    match kind {
        "BACKUP" => given().ok_or_else(String::new),
        "CDROM" | "KERNEL" | "RAMDISK" | "CONTEXT" if has("SOURCE") => sized(),
        "CDROM" | "KERNEL" | "RAMDISK" | "CONTEXT" if !has("PATH") => {
            Err(format!("Either PATH or SOURCE are required for {kind}"))
        }
        _ if has("SOURCE") || !has("PATH") => sized(),
        _ => Ok(given().filter(|sz| *sz >= 0).unwrap_or(1024)),
    }
}

/// `ImagePool::allocate`'s check of an image's type against its datastore's.
fn kind_misplaced(kind: &str, ds_kind: i64) -> Option<&'static str> {
    match kind {
        "KERNEL" | "RAMDISK" | "CONTEXT" if ds_kind != 2 => Some(
            "IMAGES of type KERNEL, RAMDISK and CONTEXT cannot be registered in an IMAGE_DS \
             datastore",
        ),
        "BACKUP" if ds_kind != super::vm_backup::BACKUP_DS => {
            Some("IMAGES of type BACKUP can only be registered in an BACKUP_DS datastore")
        }
        "KERNEL" | "RAMDISK" | "CONTEXT" | "BACKUP" => None,
        _ if ds_kind != 0 => Some(
            "Only IMAGES of type KERNEL, RAMDISK and CONTEXT can be registered in a FILE_DS \
             datastore",
        ),
        _ => None,
    }
}

/// An image made from a marketplace app (`FROM_APP`) takes its file, format and size from the
/// app (`MarketPlaceApp::to_template`); the size, if so.
async fn from_app(ctx: &Ctx, t: &mut template::Template) -> Result<Option<i64>, super::Failure> {
    let Some(app_id) = t.single("FROM_APP") else {
        return Ok(None);
    };
    let app_id = app_id.trim().parse::<i64>().unwrap_or(-1);
    let app = super::market::APPS
        .get(ctx, app_id)
        .await
        .map_err(|_| fail(code::INTERNAL, "Cannot determine image SIZE."))?;
    super::market::MARKETS
        .get(ctx, app.market_id)
        .await
        .map_err(|_| fail(code::INTERNAL, "Could not get the appliance's market."))?;
    let set = |t: &mut template::Template, k: &str, v: &str| {
        t.set(k, template::Value::Single(v.to_string()))
    };
    set(t, "FROM_APP_NAME", &app.head.name);
    set(t, "PATH", &app.source);
    set(t, "FORMAT", &app.format);
    set(t, "FROM_APP_MD5", &app.md5);
    Ok(Some(app.size))
}

/// For the VM side: the statements that end VM `vid`'s use of image `image_id`
/// (`ImageManager::release_image`): READY again once no VM uses it, ERROR for a persistent
/// image whose disk `failed`. Nothing if the image is gone.
pub async fn release_image(
    ctx: &Ctx,
    image_id: i64,
    vid: i64,
    failed: bool,
) -> Result<Vec<sqlstore::SqlStmt>, super::Failure> {
    match IMAGES.get(ctx, image_id).await {
        Ok(i) => Ok(super::images::release(&i, vid, failed, super::vm::now())),
        Err(_) => Ok(Vec::new()),
    }
}
