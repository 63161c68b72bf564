//! What `one.template.delete`, `one.template.chmod` and `one.template.instantiate` do to a
//! template's images when asked (`recursive`, `persistent`): OpenNebula's
//! `TemplateDelete::drop`, `TemplateChmod::chmod` and `VMTemplateClone::clone`. Each image goes
//! through its own call (`one.image.delete`, `chmod`, `clone`) with that call's checks, as
//! OpenNebula runs one request per image: a refused image does not undo the template's change.

use std::collections::BTreeSet;

use sqlstore::objects;
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::vmtemplate::TEMPLATES;
use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

/// The disk attributes that name an image another way than its id: a persistent copy's disks
/// name their cloned image by id only (`VMTemplateClone::REMOVE_DISK_ATTRS`).
const NAMING_ATTRS: &[&str] = &["IMAGE", "IMAGE_UNAME", "IMAGE_UID", "OPENNEBULA_MANAGED"];

/// The stored template of template `id`, parsed.
async fn stored(ctx: &Ctx, id: i64) -> Result<Template, Failure> {
    let t = TEMPLATES.get(ctx, id).await?;
    Template::parse(&t.template).map_err(|e| {
        super::xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The images the disks of `t` name, each once, in id order (`VirtualMachineDisks::
/// get_image_ids`' set).
pub async fn image_ids(ctx: &Ctx, s: &Session, t: &Template) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for disk in t.get_all("DISK").filter_map(|a| a.value.as_vector()) {
        if let Some(id) = super::vm_auth::disk_image_id(ctx, s, disk).await {
            ids.insert(id);
        }
    }
    ids
}

/// The images of template `id`, read before it goes away (`recursive` delete).
pub async fn images_of(ctx: &Ctx, s: &Session, id: i64) -> Result<BTreeSet<i64>, Failure> {
    Ok(image_ids(ctx, s, &stored(ctx, id).await?).await)
}

/// `TemplateDelete::drop`'s second half: the deleted template `tid`'s images, each by
/// `one.image.delete`. The template is gone whatever they answer, so a refusal is only logged,
/// as OpenNebula logs it; the call still succeeds.
pub async fn delete_images(ctx: &Ctx, s: &Session, tid: i64, ids: BTreeSet<i64>) {
    let mut failed = Vec::new();
    for iid in ids {
        let manage = super::perms::MANAGE;
        if let Err(e) = super::images::delete_object(ctx, s, iid, manage).await {
            tracing::warn!(image = iid, error = ?e, "recursive template delete");
            failed.push(iid.to_string());
        }
    }
    if !failed.is_empty() {
        tracing::warn!(
            "Template {tid} deleted, unable to recursively delete image: {}",
            failed.join(",")
        );
    }
}

/// `TemplateChmod::chmod`'s second half: the same bits (`p`'s 2nd to 10th values) on every
/// image of template `tid`, each by `one.image.chmod`; ACTION naming the refused ones.
pub async fn chmod_images(ctx: &Ctx, s: &Session, tid: i64, p: &Params<'_>) -> Result<(), Failure> {
    let ids = images_of(ctx, s, tid).await?;
    let bits: Vec<Value> = p.0.iter().skip(1).take(9).cloned().collect();
    let mut failed = Vec::new();
    for iid in ids {
        let mut args = vec![Value::Int(iid as i32)];
        args.extend(bits.iter().cloned());
        let r = super::owned::chmod(ctx, s, Params(&args), &super::storage::IMAGES).await;
        if let Err(e) = r {
            if matches!(e, Failure::NotLeader) {
                return Err(e);
            }
            tracing::warn!(image = iid, error = ?e, "recursive template chmod");
            failed.push(iid.to_string());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(fail(
            code::ACTION,
            format!("Cannot chmod image: {}", failed.join(",")),
        ))
    }
}

/// The message of a failure, as a nested request's `resp_msg`: what `failure_message` words
/// around it left out (`User [u] : ` and the final dot of a refusal, `Error allocating a new
/// <object>. ` of an allocation; nothing for a missing object, whose message is its id).
fn message(f: &Failure) -> String {
    match f {
        Failure::Api { code: c, message } if *c == code::AUTHORIZATION => {
            let bare = message
                .split_once(" : ")
                .map_or(message.as_str(), |(_, m)| m);
            bare.strip_suffix('.').unwrap_or(bare).to_string()
        }
        Failure::Api { code: c, message } if *c == code::ALLOCATE => message
            .strip_prefix("Error allocating a new ")
            .and_then(|m| m.split_once(". "))
            .map_or(message.clone(), |(_, m)| m.to_string()),
        Failure::Api { code: c, .. } if *c == code::NO_EXISTS => String::new(),
        Failure::Api { message, .. } => message.clone(),
        Failure::Fault(fault) => format!("{fault:?}"),
        Failure::NotLeader => "not the leader".to_string(),
        Failure::Replication { message, .. } => message.clone(),
    }
}

/// `VMTemplateClone::clone(recursive, persistent)`: `copy` (template `source`'s clone, just
/// made and called `name`) gets its own copy of every image its disks name, called
/// `<name>-disk-<n>` (`n` counts every disk) and `persistent` if asked; its disks then name
/// the copies by id. If an image cannot be copied, the template and the copies made so far
/// are deleted and the call answers ACTION.
pub async fn clone_images(
    ctx: &Ctx,
    s: &Session,
    copy: i64,
    name: &str,
    persistent: bool,
) -> Result<(), Failure> {
    let mut t = stored(ctx, copy).await?;
    let mut made: Vec<i64> = Vec::new();
    let mut n = 0;
    let mut outcome = Ok(());
    for attr in t.attrs.iter_mut().filter(|a| a.name == "DISK") {
        let TValue::Vector(disk) = &mut attr.value else {
            continue;
        };
        let Some(iid) = super::vm_auth::disk_image_id(ctx, s, disk).await else {
            n += 1;
            continue;
        };
        let clone_name = format!("{name}-disk-{n}");
        n += 1;
        match super::images::clone_image(ctx, s, iid, clone_name, -1, persistent).await {
            Ok(Value::Int(new)) => {
                let new = i64::from(new);
                made.push(new);
                disk.retain(|(k, _)| {
                    !NAMING_ATTRS.iter().any(|a| k.eq_ignore_ascii_case(a))
                        && !k.eq_ignore_ascii_case("IMAGE_ID")
                });
                disk.push(("IMAGE_ID".to_string(), new.to_string()));
                disk.sort_by(|a, b| a.0.cmp(&b.0));
            }
            Ok(_) => {
                outcome = Err(fail(code::INTERNAL, "Failed to clone images"));
                break;
            }
            Err(Failure::NotLeader) => return Err(Failure::NotLeader),
            Err(e) => {
                outcome = Err(fail(
                    code::ACTION,
                    format!("Failed to clone images: {}", message(&e)),
                ));
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = set_template(ctx, copy, t.to_text()).await;
        if outcome.is_err() {
            // The template went away meanwhile: only the copies are left to remove.
            undo(ctx, s, None, &made).await;
            return outcome;
        }
        return Ok(());
    }
    undo(ctx, s, Some(copy), &made).await;
    outcome
}

/// The new text of template `id`, if it still holds what was read.
async fn set_template(ctx: &Ctx, id: i64, new: String) -> Result<(), Failure> {
    let table = objects::template::TABLE;
    let old = ctx
        .read(move |c| objects::template_text(c, table, "template", id))
        .await?
        .ok_or_else(|| {
            fail(
                code::ACTION,
                "VM template was removed during clone operation.",
            )
        })?;
    let stmt = objects::replace_template(table, "template", id, new, old);
    ctx.commit(sqlstore::SqlTxn { stmts: vec![stmt] }, |r| {
        r.missing(fail(
            code::ACTION,
            "VM template was removed during clone operation.",
        ))
    })
    .await?;
    Ok(())
}

/// A failed copy's clean-up (`error_images`, `error_template`): the template, then the images
/// already copied, each by its own call; what fails is logged.
async fn undo(ctx: &Ctx, s: &Session, template: Option<i64>, images: &[i64]) {
    if let Some(tid) = template {
        let args = [Value::Int(tid as i32)];
        if let Err(e) = super::vmtemplate::delete(ctx, s, Params(&args)).await {
            tracing::warn!(template = tid, error = ?e, "undoing a template copy");
        }
    }
    for &iid in images {
        let manage = super::perms::MANAGE;
        if let Err(e) = super::images::delete_object(ctx, s, iid, manage).await {
            tracing::warn!(image = iid, error = ?e, "undoing a template copy");
        }
    }
}
