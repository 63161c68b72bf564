//! `one.template.*` and `one.templatepool.info`: VM templates, instantiated into VMs.

use sqlstore::objects::{self, template::TemplateRow};
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::owned;
use super::perms::{self, TEMPLATE, USE};
use super::vmtemplate_images;
use super::writes::Refusal;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};

pub static TEMPLATES: Family<TemplateRow> = Family {
    table: objects::template::TABLE,
    kind: TEMPLATE,
    acl: "TEMPLATE",
    what: "virtual machine template",
    pool: "VMTEMPLATE_POOL",
    template: "template",
    rows: &objects::template::ROWS,
    xml: template_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!(
        wire::method::TEMPLATE_ALLOCATE,
        Write,
        Auth::Object,
        allocate
    ),
    method!(wire::method::TEMPLATE_INFO, Read, Auth::Object, info),
    method!(wire::method::TEMPLATE_DELETE, Write, Auth::Object, delete),
    method!("one.template.chmod", Write, Auth::Object, chmod),
    method!("one.template.update", Write, Auth::Object, update),
    method!(wire::method::TEMPLATE_CLONE, Write, Auth::Object, clone),
    method!(
        wire::method::TEMPLATE_INSTANTIATE,
        Write,
        Auth::Object,
        instantiate
    ),
    method!(
        wire::method::TEMPLATEPOOL_INFO,
        Read,
        Auth::Object,
        owned::pool_info,
        &TEMPLATES
    ),
];

/// The owned-object calls: chown, rename, update, lock, unlock (chmod, which may be recursive,
/// is in `METHODS`).
pub const OWNED: &[Method] = &owned_methods!(
    @each "one.template", &TEMPLATES, [chown, rename, lock, unlock]
);

pub(super) fn template_xml(t: &TemplateRow, out: &mut String) {
    Xml::new(out).elem("VMTEMPLATE", |x| {
        xml::owned_head(x, &t.head, Some(&t.lock));
        x.num("REGTIME", t.regtime)
            .raw(&xml::template(&t.template, "TEMPLATE"));
    });
}

/// `one.template.info(id, extended)` (`TemplateInfo`): with `extended`, USE on the images and
/// networks the template names too (every refusal in one message), and each DISK filled from
/// its image as a VM's would be (`VirtualMachineDisks::extended_info`), with its DISK_ID.
pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    // `TemplateInfo` reads the template before any authorization, so a negative id is
    // NO_EXISTS for everyone.
    let mut t = TEMPLATES.get(ctx, id).await?;
    if !p.opt_bool(1)?.unwrap_or(false) {
        let c = perms::caller(ctx, s).await?;
        if let Some(why) = TEMPLATES.refusal(&c, &t, USE | perms::NO_LOCK) {
            return Err(super::unauthorized(s, &why));
        }
        let mut out = String::new();
        template_xml(&t, &mut out);
        return Ok(xmlrpc::Value::String(super::encrypted::answer_at(
            ctx,
            s,
            &p,
            2,
            objects::template::TABLE,
            out,
        )?));
    }
    let mut body = stored(&t)?;
    let c = perms::caller(ctx, s).await?;
    let mut why: Vec<String> = TEMPLATES
        .refusal(&c, &t, USE | perms::NO_LOCK)
        .into_iter()
        .collect();
    let mut n = 0;
    for a in body.attrs.iter_mut().filter(|a| a.name == "DISK") {
        let template::Value::Vector(disk) = &mut a.value else {
            continue;
        };
        if let Some(image) = super::vm_auth::disk_image(ctx, s, disk).await? {
            why.extend(super::storage::IMAGES.refusal(&c, &image, USE | perms::NO_LOCK));
            let src = super::vm_disks::DiskSource::of(ctx, image.datastore_id).await?;
            super::vm_disks::fill_disk(disk, &image, &src);
        }
        disk.retain(|(k, _)| k != "DISK_ID");
        disk.push(("DISK_ID".into(), n.to_string()));
        disk.sort_by(|a, b| a.0.cmp(&b.0));
        n += 1;
    }
    why.extend(super::vm_auth::nic_refusals(ctx, s, &c, &mut body, USE | perms::NO_LOCK).await?);
    if let Some(va) = body.vector("VMGROUP").map(<[_]>::to_vec) {
        if let Ok(g) = super::vmgroup::for_vm(ctx, &va, s.uid).await {
            why.extend(super::vmgroup::VMGROUPS.refusal(&c, &g, USE));
        }
    }
    super::granted_unless(s, &why)?;
    // `TemplateInfo` prints the extended copy, taken before any `decrypt`.
    t.template = body.to_text();
    let mut out = String::new();
    template_xml(&t, &mut out);
    Ok(xmlrpc::Value::String(out))
}

/// `VMTemplatePool::allocate`: a valid name its owner does not use yet, then `VMTemplate::
/// insert`'s checks (clones too), then the row; refusals worded as the request words them.
async fn insert(
    ctx: &Ctx,
    s: &Session,
    name: &str,
    t: &template::Template,
    refusal: Refusal,
) -> MethodResult {
    const WHAT: &str = "virtual machine template";
    super::validate::object_name(name).map_err(|e| refusal.fail(WHAT, e))?;
    let new = super::writes::New {
        what: WHAT,
        kind: "TEMPLATE",
        name,
        refusal,
        owner: Some(s.uid),
    };
    if let Err(e) = checked(ctx, t) {
        // 7.0.2 asks for the name before `VMTemplate::insert`'s checks: read only now, so an
        // allocation that passes them reads nothing (its insert checks the name itself).
        let taken = super::writes::name_taken(ctx, objects::template::TABLE, new).await?;
        return Err(taken.unwrap_or_else(|| refusal.fail(WHAT, e)));
    }
    // `VMTemplatePool::allocate` encrypts the template before it is stored.
    let text = super::encrypted::seal_text(ctx, objects::template::TABLE, t.to_text());
    let insert = objects::template::insert(
        name,
        s.uid,
        s.gid,
        super::umask::new_object(ctx, s),
        super::vm::now(),
        text,
    );
    let table = objects::template::TABLE;
    super::writes::allocate_next_refused(ctx, table, insert, Vec::new(), new, |_| {}).await
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    TEMPLATES.may_create(ctx, s).await?;
    super::vm::vm_template_restricted(ctx, s, &t)?;
    let name = t.single("NAME").unwrap_or("").to_string();
    // The name is the object's, not its template's (`VMTemplate::insert`).
    t.remove("NAME");
    insert(ctx, s, &name, &t, Refusal::Internal).await
}

/// `one.template.update(id, template, type)`: the generic update, then
/// `VMTemplate::post_update_template`'s checks.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    owned::update_checked(ctx, s, p, &TEMPLATES, perms::MANAGE, Some(checked)).await
}

/// `VMTemplate::insert`'s and `post_update_template`'s checks: each SCHED_ACTION parses as a
/// VM's (`parse_sched_action`), and the RAW section ([`raw_checked`]).
fn checked(ctx: &Ctx, t: &template::Template) -> Result<(), String> {
    for va in t
        .get_all("SCHED_ACTION")
        .filter_map(|a| a.value.as_vector())
    {
        super::vm_sched::SchedAction::new(0, -1).parse(va, 0)?;
    }
    raw_checked(ctx, t)
}

/// `VirtualMachineManager::validate_raw`: a RAW to validate names a VM driver oned.conf
/// defines (the driver's own check of DATA is not run).
pub(super) fn raw_checked(ctx: &Ctx, t: &template::Template) -> Result<(), String> {
    let Some(raw) = t.vector("RAW") else {
        return Ok(());
    };
    // `vector_value(name, bool&, true)`: only YES is true once given.
    let validate =
        template::vector_get(raw, "VALIDATE").is_none_or(|v| v.trim().eq_ignore_ascii_case("yes"));
    if !validate {
        return Ok(());
    }
    let kind = template::vector_get(raw, "TYPE")
        .unwrap_or("")
        .to_ascii_lowercase();
    if vm_drivers(ctx).contains(&kind) {
        Ok(())
    } else {
        Err("Invalid RAW section: unsupported TYPE".into())
    }
}

/// The VM drivers oned.conf defines (`VM_MAD` NAMEs), or the ones OpenNebula ships.
fn vm_drivers(ctx: &Ctx) -> Vec<String> {
    let conf: Vec<String> = super::ds_conf::vectors(&ctx.config.raw, "VM_MAD")
        .into_iter()
        .filter_map(|v| template::vector_get(v, "NAME").map(str::to_ascii_lowercase))
        .collect();
    if conf.is_empty() {
        ["kvm", "qemu", "lxc"].map(String::from).to_vec()
    } else {
        conf
    }
}

/// `one.template.delete(id[, recursive])`: with `recursive`, the images its disks name too
/// (`TemplateDelete::drop`).
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let recursive = p.opt_bool(1)?.unwrap_or(false);
    // The disks are read before the template goes, as OpenNebula clones them first.
    let images = if recursive {
        Some(vmtemplate_images::images_of(ctx, s, id).await?)
    } else {
        None
    };
    let stmts = vec![objects::delete(objects::template::TABLE, id)];
    let done = super::owned::delete(ctx, s, &TEMPLATES, id, stmts, |r| {
        r.missing(TEMPLATES.missing(id))
    })
    .await?;
    if let Some(images) = images {
        vmtemplate_images::delete_images(ctx, s, id, images).await;
    }
    Ok(done)
}

/// `one.template.chmod(id, bits x 9[, recursive])`: with `recursive`, the same bits on the
/// images its disks name (`TemplateChmod::chmod`).
pub async fn chmod(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let recursive = p.opt_bool(10)?.unwrap_or(false);
    let done = super::owned::chmod(ctx, s, Params(p.0), &TEMPLATES).await?;
    if recursive {
        vmtemplate_images::chmod_images(ctx, s, id, &p).await?;
    }
    Ok(done)
}

/// The stored template of `t`, parsed: a corrupt one is an error, never an empty template
/// that would silently lose its attributes in the copy.
fn stored(t: &TemplateRow) -> Result<template::Template, super::Failure> {
    template::Template::parse(&t.template).map_err(|e| {
        xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// `one.template.clone(id, name[, recursive])`: with `recursive`, copies of its images too
/// (`VMTemplateClone::clone`).
pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let recursive = p.opt_bool(2)?.unwrap_or(false);
    let copy = copy(ctx, s, id, &name, "").await?;
    if recursive {
        vmtemplate_images::clone_images(ctx, s, copy, &name, false).await?;
    }
    Ok(xmlrpc::Value::Int(copy as i32))
}

/// A copy of template `id` called `name`, with `extra` merged in (`RequestManagerClone::
/// clone`): its id.
async fn copy(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    name: &str,
    extra: &str,
) -> Result<i64, super::Failure> {
    // `RequestManagerClone::clone`: the source, the extra attributes merged (`merge`), then
    // USE on the source and CREATE in one request.
    let t = TEMPLATES.get(ctx, id).await?;
    let mut body = stored(&t)?;
    merge_extra(ctx, s, &mut body, extra)?;
    TEMPLATES.may_use_and_create(ctx, s, &t, true).await?;
    body.remove("NAME");
    // `RequestManagerClone` answers every refusal of the pool as ALLOCATE.
    match insert(ctx, s, name, &body, Refusal::Allocate).await? {
        xmlrpc::Value::Int(new) => Ok(i64::from(new)),
        _ => Err(fail(code::INTERNAL, "Cannot read the new template's id")),
    }
}

/// `one.template.instantiate(id, name, hold, extra, persistent)`: a VM owned by the caller.
pub async fn instantiate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = match p.0.get(1) {
        Some(_) => p.string(1)?.to_string(),
        None => String::new(),
    };
    let hold = p.opt_bool(2)?.unwrap_or(false);
    // `VMTemplateInstantiate` reads `hold` and the extra template together: one without the
    // other is a malformed call.
    let mut extra = if p.0.len() > 2 {
        p.string(3)?.to_string()
    } else {
        String::new()
    };
    let persistent = p.opt_bool(4)?.unwrap_or(false);
    // OpenNebula refuses a virtual router template before it authorizes anything.
    let original = TEMPLATES.get(ctx, id).await?;
    if super::vrouter::is_vrouter_template(&stored(&original)?) {
        return Err(fail(
            code::ACTION,
            "Virtual router templates cannot be instantiated",
        ));
    }
    let mut id = id;
    if persistent {
        // The private persistent copy (`VMTemplateInstantiate`): the extra attributes go into
        // it, and the VM only records where it came from.
        let copy_name = if name.is_empty() {
            format!("{}-copy", original.head.name)
        } else {
            name.clone()
        };
        let copy = copy(ctx, s, id, &copy_name, &extra).await?;
        vmtemplate_images::clone_images(ctx, s, copy, &copy_name, true).await?;
        extra = format!("CLONING_TEMPLATE_ID={id}\n");
        id = copy;
    }
    // `VMTemplateInstantiate::request_execute`: the extra attributes merged, AS_UID/AS_GID,
    // then one request for USE on the template (CREATE TEMPLATE too when extra attributes
    // were given), as the user the VM is for.
    let t = TEMPLATES.get(ctx, id).await?;
    let mut body = stored(&t)?;
    merge_extra(ctx, s, &mut body, &extra)?;
    let as_owner = super::as_owner::as_uid_gid(ctx, s, &mut body).await?;
    let s = &as_owner;
    super::vm_topology::parse(&mut body).map_err(|e| {
        fail(
            code::ALLOCATE,
            format!("Error allocating a new virtual machine template. {e}"),
        )
    })?;
    // One request: USE on the template (CREATE TEMPLATE with extra attributes) and what the
    // VM's template names (`set_auth_request`).
    let c = perms::caller(ctx, s).await?;
    let mut why = TEMPLATES.use_and_create_refusals(&c, &t, !extra.is_empty());
    why.extend(super::vm_auth::refusals(ctx, s, &c, &body, USE).await?);
    super::granted_unless(s, &why)?;
    // As `VMTemplateInstantiate`: the template's name is the prefix of an unnamed VM's
    // (`<template>-<id>`), never its NAME.
    body.remove("NAME");
    body.set(
        "TEMPLATE_NAME",
        template::Value::Single(t.head.name.clone()),
    );
    body.set("TEMPLATE_ID", template::Value::Single(id.to_string()));
    // OpenNebula checks the name when it allocates the VM, and instantiate reports that as
    // ALLOCATE for the template (`RequestManagerVMTemplate.cc`), not as vm.allocate's INTERNAL.
    if !name.is_empty() {
        super::validate::object_name(&name).map_err(|e| {
            fail(
                code::ALLOCATE,
                format!("Error allocating a new virtual machine template. {e}"),
            )
        })?;
    }
    super::vm::create(ctx, s, body, Some(name), hold, allocation_of_template).await
}

/// `VMTemplateInstantiate::merge`: `extra` (none when empty) merged into `body` as an update of
/// type 1 would, once it changes no restricted attribute for a user outside oneadmin.
fn merge_extra(
    ctx: &Ctx,
    s: &Session,
    body: &mut template::Template,
    extra: &str,
) -> Result<(), Failure> {
    let more = super::validate::template(extra).map_err(|e| fail(code::INTERNAL, e))?;
    if more.attrs.is_empty() {
        return Ok(());
    }
    if !s.is_admin() {
        let ras = super::restricted::vm(ctx);
        if let Some(name) = super::restricted::change_of(&ras, &more, body) {
            return Err(super::unauthorized(
                s,
                &format!("User Template includes a restricted attribute {name}"),
            ));
        }
    }
    super::merge_attrs(body, more);
    Ok(())
}

/// `VirtualMachine::insert`'s refusals (INTERNAL in `one.vm.allocate`) are ALLOCATE for
/// `VMTemplateInstantiate`, worded after the template.
fn allocation_of_template(f: Failure) -> Failure {
    match f {
        Failure::Api { code: c, message } if c == code::INTERNAL => fail(
            code::ALLOCATE,
            format!("Error allocating a new virtual machine template. {message}"),
        ),
        other => other,
    }
}
