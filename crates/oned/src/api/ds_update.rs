//! `one.datastore.update`: the template replaced or merged, then `Datastore::post_update_template`
//! as 7.0.2 runs it: the options a datastore with images keeps, TYPE, DISK_TYPE, the drivers
//! (a new TM_MAD writes its TM_MAD_CONF settings again) and DS_MAD_CONF's REQUIRED_ATTRS.

use sqlstore::objects::datastore::{self as ds, DatastoreRow};
use template::{Template, Value};
use xmlrpc::Params;

use super::storage::DATASTORES;
use super::vm_backup::BACKUP_DS;
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use wire::acl::MANAGE;

/// Options a datastore holding images may not change (`ro_options`).
const KEPT_WITH_IMAGES: &[&str] = &[
    "LVM_THIN_ENABLE",
    "NFS_AUTO_ENABLE",
    "NFS_AUTO_HOST",
    "NFS_AUTO_PATH",
    "NFS_AUTO_OPTS",
];

/// The default system datastore, always of type SYSTEM_DS (`DatastorePool::SYSTEM_DS_ID`).
const SYSTEM_DS_ID: i64 = 0;

pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    DATASTORES.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::writes::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let d = DATASTORES.get(ctx, id).await?;
        let new = super::writes::merged(&d.template, text, merge)?;
        let mut t = Template::parse(&new).map_err(|e| refused(e.to_string()))?;
        let (kind, ds_mad, tm_mad) = post_update(ctx, &d, &mut t).map_err(refused)?;
        super::encrypted::seal_in(ctx, ds::TABLE, &mut t);
        Ok(vec![ds::set_template_and_drivers(
            id,
            kind,
            &ds_mad,
            &tm_mad,
            t.to_text(),
            d.template,
        )])
    })
    .await
}

fn refused(why: String) -> super::Failure {
    fail(code::INTERNAL, format!("Cannot update template. {why}"))
}

/// `Datastore::str_to_type`: anything else is an image datastore.
fn type_of(name: &str) -> i64 {
    match name.trim().to_ascii_uppercase().as_str() {
        "SYSTEM_DS" => 1,
        "FILE_DS" => 2,
        "BACKUP_DS" => BACKUP_DS,
        _ => 0,
    }
}

fn type_name(kind: i64) -> &'static str {
    match kind {
        1 => "SYSTEM_DS",
        2 => "FILE_DS",
        k if k == BACKUP_DS => "BACKUP_DS",
        _ => "IMAGE_DS",
    }
}

/// What `post_update_template` makes of datastore `d` with the new template `t`: its type and
/// drivers, `t` completed, or the refusal.
fn post_update(
    ctx: &Ctx,
    d: &DatastoreRow,
    t: &mut Template,
) -> Result<(i64, String, String), String> {
    let single = |t: &Template, k: &str| t.single(k).unwrap_or("").to_string();
    if !d.images.is_empty() {
        let old = Template::parse(&d.template).unwrap_or_default();
        if let Some(opt) = KEPT_WITH_IMAGES
            .iter()
            .find(|o| single(&old, o) != single(t, o))
        {
            return Err(format!(
                "Cannot update option {opt} in a datastore with existing images"
            ));
        }
    }
    let given = single(t, "TYPE");
    let kind = if d.head.owned.oid == SYSTEM_DS_ID {
        1
    } else if d.kind == BACKUP_DS || given.is_empty() {
        d.kind
    } else {
        type_of(&given)
    };
    t.set("TYPE", Value::Single(type_name(kind).into()));
    let disk_type = single(t, "DISK_TYPE");
    t.remove("DISK_TYPE");
    if !disk_type.is_empty() {
        super::ds_conf::set_disk_type(t, kind, &disk_type)?;
    }
    let given_tm = single(t, "TM_MAD");
    let tm_mad = if !given_tm.is_empty() && kind != BACKUP_DS {
        if !super::ds_conf::tm_names(&ctx.config.raw)
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&given_tm))
        {
            return Err(format!(
                "TM_MAD named \"{given_tm}\" is not defined in oned.conf"
            ));
        }
        super::ds_conf::set_tm_mad(&ctx.config.raw, t, kind, &given_tm);
        given_tm
    } else {
        t.set("TM_MAD", Value::Single(d.tm_mad.clone()));
        d.tm_mad.clone()
    };
    let given_ds = single(t, "DS_MAD");
    let ds_mad = if kind == 1 {
        t.remove("DS_MAD");
        "-".to_string()
    } else if given_ds.is_empty() {
        t.set("DS_MAD", Value::Single(d.ds_mad.clone()));
        d.ds_mad.clone()
    } else {
        given_ds
    };
    if kind != 1 {
        super::storage::ds_mad_checked(ctx, t, &ds_mad)?;
    }
    Ok((kind, ds_mad, tm_mad))
}
