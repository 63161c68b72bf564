//! `one.vntemplate.*` and `one.vntemplatepool.info`: virtual network templates, which users
//! instantiate into networks (`RequestManagerVNTemplate`, `VNTemplate`, `VNTemplatePool`).
//! A template's name is unique per owner and kept apart from its template, as OpenNebula's
//! `VNTemplate::insert` does; VN_MAD is mandatory, with the PHYDEV, BRIDGE and VLAN checks of
//! `VirtualNetwork::parse_phydev_vlans`.

use sqlstore::objects::{self, vntemplate::VnTemplateRow};
use template::{Template, Value as TValue};
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::owned;
use super::perms::{caller, USE};
use super::restricted;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};
use wire::acl::VNTEMPLATE;

pub static VNTEMPLATES: Family<VnTemplateRow> = Family {
    table: objects::vntemplate::TABLE,
    kind: VNTEMPLATE,
    acl: "VNTEMPLATE",
    what: "virtual network template",
    pool: "VNTEMPLATE_POOL",
    template: "template",
    rows: &objects::vntemplate::ROWS,
    xml: vntemplate_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.vntemplate.allocate", Write, Auth::Object, allocate),
    method!("one.vntemplate.info", Read, Auth::Object, info),
    method!("one.vntemplate.delete", Write, Auth::Object, delete),
    method!("one.vntemplate.clone", Write, Auth::Object, clone),
    method!(
        "one.vntemplate.instantiate",
        Write,
        Auth::Object,
        instantiate
    ),
    method!(
        "one.vntemplatepool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &VNTEMPLATES
    ),
];

/// The owned-object calls: chmod, chown, rename, update, lock, unlock.
pub const OWNED: &[Method] = &owned_methods!(lockable "one.vntemplate", &VNTEMPLATES);

/// `VNTemplate::to_xml`.
pub(super) fn vntemplate_xml(t: &VnTemplateRow, out: &mut String) {
    Xml::new(out).elem("VNTEMPLATE", |x| {
        xml::owned_head(x, &t.head, Some(&t.lock));
        x.num("REGTIME", t.regtime)
            .raw(&xml::template(&t.template, "TEMPLATE"));
    });
}

/// `Template::get(name, bool&)`: YES in any case.
fn yes(t: &Template, name: &str) -> bool {
    t.single(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
}

/// `VirtualNetwork::parse_phydev_vlans`: what each driver needs.
pub(super) fn phydev_vlans(t: &Template, vn_mad: &str) -> Result<(), String> {
    let (phydev, bridge, vlan, outer) = match vn_mad {
        "dummy" => (false, true, false, false),
        "802.1Q" | "vxlan" => (true, false, true, false),
        "ovswitch_vxlan" => (false, false, false, true),
        _ => return Ok(()),
    };
    let empty = |name: &str| t.single(name).is_none_or(str::is_empty);
    if phydev && empty("PHYDEV") {
        return Err(format!("PHYDEV is mandatory for driver {vn_mad}"));
    }
    if bridge && empty("BRIDGE") {
        return Err(format!("BRIDGE is mandatory for driver {vn_mad}"));
    }
    if vlan && !yes(t, "AUTOMATIC_VLAN_ID") && empty("VLAN_ID") {
        return Err(format!(
            "VLAN_ID (or AUTOMATIC_VLAN_ID) is mandatory for driver {vn_mad}"
        ));
    }
    if outer && !yes(t, "AUTOMATIC_OUTER_VLAN_ID") && empty("OUTER_VLAN_ID") {
        return Err(format!(
            "OUTER_VLAN_ID (or AUTOMATIC) is mandatory for driver {vn_mad}"
        ));
    }
    Ok(())
}

/// `VNTemplatePool::allocate` then `VNTemplate::insert`: a valid name its owner does not use
/// yet, a VN_MAD and what its driver needs. `wording` turns the message into the method's
/// failure (allocate answers it as it is, clone after `Error allocating a new ...`).
async fn insert(
    ctx: &Ctx,
    s: &Session,
    name: &str,
    mut body: Template,
    wording: fn(String) -> Failure,
) -> MethodResult {
    super::validate::object_name(name).map_err(wording)?;
    if let Some(m) = taken(ctx, name, s.uid).await? {
        return Err(wording(m));
    }
    body.remove("NAME");
    let vn_mad = body.single("VN_MAD").unwrap_or("").to_string();
    if vn_mad.is_empty() {
        return Err(wording(
            "Error inserting Template in DB. VN_MAD is mandatory".into(),
        ));
    }
    phydev_vlans(&body, &vn_mad).map_err(wording)?;
    let insert = objects::vntemplate::insert(
        name,
        s.uid,
        s.gid,
        super::umask::new_object(ctx, s),
        super::vm::now(),
        super::encrypted::seal_text(ctx, objects::vntemplate::TABLE, body.to_text()),
    );
    let stmts = vec![insert, objects::next_oid(objects::vntemplate::TABLE)];
    let mut clash = false;
    let written = ctx
        .commit(sqlstore::SqlTxn { stmts }, |r| {
            clash = r.kind == sqlstore::TxnErrorKind::Constraint;
            r.internal()
        })
        .await;
    match written {
        Ok(values) => super::new_id(&values, "virtual network template"),
        // Taken meanwhile by a concurrent call: say by which template, as the check above.
        Err(_) if clash => Err(wording(
            taken(ctx, name, s.uid)
                .await?
                .unwrap_or_else(|| "NAME is already taken.".into()),
        )),
        Err(f) => Err(f),
    }
}

/// `NAME is already taken by VN TEMPLATE <id>.` if `uid` has a template called `name`.
async fn taken(ctx: &Ctx, name: &str, uid: i64) -> Result<Option<String>, Failure> {
    let n = name.to_string();
    let held = ctx
        .read(move |c| objects::vntemplate::named(c, &n, uid))
        .await?;
    Ok(held.map(|oid| format!("NAME is already taken by VN TEMPLATE {oid}.")))
}

/// `one.vntemplate.allocate(template)`: INTERNAL with the pool's message, as
/// `VirtualNetworkTemplateAllocate::pool_allocate` answers.
/// `one.vntemplate.info(id[, decrypt])` (`VirtualNetworkTemplateInfo`): the template is read
/// before any authorization, so a negative id is NO_EXISTS for everyone.
pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let t = VNTEMPLATES.get(ctx, id).await?;
    if let Some(why) = VNTEMPLATES.refusal(&caller(ctx, s).await?, &t, USE | super::perms::NO_LOCK)
    {
        return Err(super::unauthorized(s, &why));
    }
    let mut out = String::new();
    vntemplate_xml(&t, &mut out);
    Ok(xmlrpc::Value::String(super::encrypted::answer(
        ctx,
        s,
        &p,
        objects::vntemplate::TABLE,
        out,
    )?))
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let body = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    VNTEMPLATES.may_create(ctx, s).await?;
    let name = body.single("NAME").unwrap_or("").to_string();
    insert(ctx, s, &name, body, |m| fail(code::INTERNAL, m)).await
}

/// `one.vntemplate.delete(id[, recursive])`: a network template has nothing to delete with
/// it, so `recursive` is read and changes nothing, as in OpenNebula.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    p.opt_bool(1)?;
    let stmts = vec![objects::delete(objects::vntemplate::TABLE, id)];
    owned::delete(ctx, s, &VNTEMPLATES, id, stmts, |r| {
        r.missing(VNTEMPLATES.missing(id))
    })
    .await
}

/// The stored template of `t`, parsed: a corrupt one is an error, never an empty copy.
fn stored(t: &VnTemplateRow) -> Result<Template, Failure> {
    Template::parse(&t.template).map_err(|e| {
        xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

fn allocation_error(m: String) -> Failure {
    fail(
        code::ALLOCATE,
        format!("Error allocating a new virtual network template. {m}"),
    )
}

/// `one.vntemplate.clone(id, name)` (`VNTemplateClone`): USE on the source and CREATE
/// VNTEMPLATE; the copy is the caller's. OpenNebula's clone takes no recursive flag for these.
pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let source = VNTEMPLATES.get(ctx, id).await?;
    let c = caller(ctx, s).await?;
    let mut why: Vec<String> = VNTEMPLATES.refusal(&c, &source, USE).into_iter().collect();
    if !c.may_create(VNTEMPLATE) {
        why.push("Not authorized to perform CREATE VNTEMPLATE".into());
    }
    super::granted_unless(s, &why)?;
    let body = stored(&source)?;
    insert(ctx, s, &name, body, allocation_error).await
}

/// The clusters of `CLUSTER_IDS` (a comma-separated list) that exist; cluster 0 without one,
/// as `VNTemplateInstantiate` places the network.
async fn clusters(ctx: &Ctx, t: &Template) -> Result<Vec<i64>, Failure> {
    /// More would be a list no cluster pool holds.
    const MAX_CLUSTERS: usize = 1000;
    let list = t.single("CLUSTER_IDS").unwrap_or("").trim().to_string();
    if list.is_empty() {
        return Ok(vec![0]);
    }
    let mut ids: Vec<i64> = list
        .split(',')
        .filter_map(|i| i.trim().parse().ok())
        .take(MAX_CLUSTERS)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ctx.read(move |c| {
        let mut out = Vec::new();
        for id in ids {
            if objects::host::cluster_exists(c, id)? {
                out.push(id);
            }
        }
        Ok(out)
    })
    .await
}

/// `one.vntemplate.instantiate(id, name, extra)`: a network owned by the caller, from the
/// template merged with `extra` (restricted attributes only for administrators), in the
/// template's `CLUSTER_IDS` (cluster 0 without). Without a name, the network is called
/// `<template name>-<network id>`.
pub async fn instantiate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let extra = p.string(2)?.to_string();
    let source = VNTEMPLATES.get(ctx, id).await?;
    let mut body = stored(&source)?;
    let in_clusters = clusters(ctx, &body).await?;
    if !extra.trim().is_empty() {
        let user = super::validate::template(&extra).map_err(|e| fail(code::INTERNAL, e))?;
        if !s.is_admin() {
            if let Some(ra) = restricted::change_of(&restricted::vnet(ctx), &user, &body) {
                return Err(fail(
                    code::AUTHORIZATION,
                    format!(
                        "User [{}] : User Template includes a restricted attribute {ra}.",
                        s.uid
                    ),
                ));
            }
        }
        super::merge_attrs(&mut body, user);
    }
    // `Request::as_uid_gid`: the network is for that user and group, authorized as them.
    let as_owner = super::as_owner::as_uid_gid(ctx, s, &mut body).await?;
    let s = &as_owner;
    body.remove("NAME");
    body.remove("TEMPLATE_NAME");
    body.set("TEMPLATE_ID", TValue::Single(id.to_string()));
    if let Some(why) = VNTEMPLATES.refusal(&caller(ctx, s).await?, &source, USE) {
        return Err(fail(
            code::AUTHORIZATION,
            format!("User [{}] : {why}.", s.uid),
        ));
    }
    // The name is checked before the template (VN_MAD...), which `create` checks as
    // `VirtualNetwork::insert` does.
    let mut with: Vec<sqlstore::SqlStmt> = in_clusters
        .iter()
        .map(|&c| objects::cluster::add_new(objects::cluster::Member::Network, c))
        .collect();
    let new_name = if name.is_empty() {
        // Named in the transaction, once its id is known; meanwhile a name no client can give.
        with.push(objects::vntemplate::name_new_vnet(&source.head.name));
        "#instantiating".to_string()
    } else {
        super::validate::object_name(&name).map_err(allocation_error)?;
        let (n, uid) = (name.clone(), s.uid);
        let held = ctx
            .read(move |c| objects::vntemplate::vnet_named(c, &n, uid))
            .await?;
        if let Some(oid) = held {
            return Err(allocation_error(format!(
                "NAME is already taken by NET {oid}."
            )));
        }
        body.set("NAME", TValue::Single(name.clone()));
        name
    };
    // `VNTemplateInstantiate`: whatever `VirtualNetworkPool::allocate` refuses is ALLOCATE.
    super::vnet::create(ctx, s, body, &new_name, with)
        .await
        .map_err(|f| match f {
            Failure::Api { code: c, message } if c == code::INTERNAL => allocation_error(message),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn each_driver_needs_what_opennebula_asks_of_it() {
        assert_eq!(
            phydev_vlans(&t("VN_MAD = dummy"), "dummy").unwrap_err(),
            "BRIDGE is mandatory for driver dummy"
        );
        assert!(phydev_vlans(&t("BRIDGE = br0"), "dummy").is_ok());
        assert_eq!(
            phydev_vlans(&t("VLAN_ID = 3"), "802.1Q").unwrap_err(),
            "PHYDEV is mandatory for driver 802.1Q"
        );
        assert_eq!(
            phydev_vlans(&t("PHYDEV = eth0"), "vxlan").unwrap_err(),
            "VLAN_ID (or AUTOMATIC_VLAN_ID) is mandatory for driver vxlan"
        );
        assert!(phydev_vlans(&t("PHYDEV = eth0\nAUTOMATIC_VLAN_ID = yes"), "vxlan").is_ok());
        assert_eq!(
            phydev_vlans(&t(""), "ovswitch_vxlan").unwrap_err(),
            "OUTER_VLAN_ID (or AUTOMATIC) is mandatory for driver ovswitch_vxlan"
        );
        assert!(phydev_vlans(&t(""), "bridge").is_ok());
        assert!(phydev_vlans(&t(""), "custom").is_ok());
    }
}
