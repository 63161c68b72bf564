//! `one.secgroup.*` and `one.secgrouppool.info`: security groups, as OpenNebula's
//! `SecurityGroup`. A group's TEMPLATE holds its `RULE`s, checked at allocate, clone and update
//! (`rules`); its body lists the VMs using it in four sets (UPDATED, OUTDATED, UPDATING,
//! ERROR), which `commit` moves for the driver to bring up to date. Group 0 `default` is
//! OpenNebula's, given to every new network, and is never deleted.

mod rules;

use sqlstore::objects::secgroup::{self, SecGroupRow, DEFAULT_ID};
use sqlstore::{SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{caller, MANAGE, USE};
use super::xml::{self, Xml};
use super::{code, fail, owned, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};
use wire::acl::SECGROUP;

pub static SECGROUPS: Family<SecGroupRow> = Family {
    table: secgroup::TABLE,
    kind: SECGROUP,
    acl: "SECGROUP",
    what: "security group",
    pool: "SECURITY_GROUP_POOL",
    template: "template",
    rows: &secgroup::ROWS,
    xml: secgroup_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.secgroup.allocate", Write, Auth::Object, allocate),
    method!(
        "one.secgroup.info",
        Read,
        Auth::Object,
        owned::info,
        &SECGROUPS
    ),
    method!("one.secgroup.delete", Write, Auth::Object, delete),
    method!("one.secgroup.update", Write, Auth::Object, update),
    method!("one.secgroup.clone", Write, Auth::Object, clone),
    method!("one.secgroup.commit", Write, Auth::Object, commit),
    method!(
        "one.secgrouppool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &SECGROUPS
    ),
];

/// The owned-object calls: chmod, chown, rename (security groups have no lock; their update
/// checks the rules, above).
pub const OWNED: &[Method] =
    &owned_methods!(@each "one.secgroup", &SECGROUPS, [chmod, chown, rename]);

/// `SecurityGroup::to_xml`: the four VM sets after the permissions, then the template.
pub(super) fn secgroup_xml(g: &SecGroupRow, out: &mut String) {
    Xml::new(out).elem("SECURITY_GROUP", |x| {
        xml::owner_and_name(x, &g.head);
        xml::permissions(x, g.head.owned.perms);
        for (name, vms) in ["UPDATED_VMS", "OUTDATED_VMS", "UPDATING_VMS", "ERROR_VMS"]
            .into_iter()
            .zip(&g.vms)
        {
            x.elem(name, |x| {
                for vid in vms {
                    x.num("ID", vid);
                }
            });
        }
        x.raw(&xml::template(&g.template, "TEMPLATE"));
    });
}

/// `SecurityGroupPool::allocate` and `SecurityGroup::insert`: a valid name its owner does not
/// use yet, valid rules (duplicates dropped), NAME kept apart from the template. `wording`
/// turns a refusal into the calling method's failure.
async fn insert(
    ctx: &Ctx,
    s: &Session,
    name: String,
    mut body: template::Template,
    wording: fn(String) -> Failure,
) -> MethodResult {
    super::validate::object_name(&name).map_err(wording)?;
    let taken = |oid: i64| wording(format!("NAME is already taken by SecurityGroup {oid}."));
    if let Some(oid) = existing(ctx, &name, s.uid).await? {
        return Err(taken(oid));
    }
    body.remove("NAME");
    rules::check(&mut body).map_err(wording)?;
    let stmts = vec![
        secgroup::insert(
            &name,
            s.uid,
            s.gid,
            super::umask::new_object(ctx, s),
            body.to_text(),
        ),
        sqlstore::objects::next_oid(secgroup::TABLE),
    ];
    let mut clash = false;
    let written = ctx
        .commit(SqlTxn { stmts }, |r| {
            clash = r.kind == TxnErrorKind::Constraint;
            wording(r.message)
        })
        .await;
    match written {
        Ok(values) => super::new_id(&values, "security group"),
        // Taken by a concurrent allocate since the check above: named as it would have been.
        Err(_) if clash => match existing(ctx, &name, s.uid).await? {
            Some(oid) => Err(taken(oid)),
            None => Err(wording("NAME is already taken.".into())),
        },
        Err(f) => Err(f),
    }
}

/// The id of `uid`'s security group called `name`, if any.
async fn existing(ctx: &Ctx, name: &str, uid: i64) -> Result<Option<i64>, Failure> {
    let name = name.to_string();
    ctx.read(move |c| secgroup::named(c, &name, uid)).await
}

fn internal(message: String) -> Failure {
    fail(code::INTERNAL, message)
}

fn allocate_error(message: String) -> Failure {
    fail(
        code::ALLOCATE,
        format!("Error allocating a new security group. {message}"),
    )
}

/// `one.secgroup.allocate(template)`: every refusal INTERNAL with the pool's bare message, as
/// `SecurityGroupAllocate` answers.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let body = super::validate::template(&text).map_err(internal)?;
    SECGROUPS.may_create(ctx, s).await?;
    let name = body.single("NAME").unwrap_or_default().to_string();
    insert(ctx, s, name, body, internal).await
}

/// `one.secgroup.clone(id, name)`: the source's template under `name`, owned by the caller,
/// who must USE the source and may create security groups (both refusals named at once, as
/// `RequestManagerClone` asks them in one request).
pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let source = SECGROUPS.get(ctx, id).await?;
    let c = caller(ctx, s).await?;
    let mut why: Vec<String> = SECGROUPS.refusal(&c, &source, USE).into_iter().collect();
    if !c.may_create(SECGROUP) {
        why.push("Not authorized to perform CREATE SECGROUP".into());
    }
    super::granted_unless(s, &why)?;
    insert(ctx, s, name, stored(&source)?, allocate_error).await
}

/// `one.secgroup.delete(id)`: MANAGE; never group 0, never a group VMs use
/// (`SecurityGroupDelete::drop`); the ACL rules naming it go with it.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let row = SECGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let refused = |why: &str| fail(code::ACTION, format!("Cannot delete security group. {why}"));
    let in_use = "The security group has VMs using it";
    if id == DEFAULT_ID {
        return Err(refused(
            "The default security group (ID 0) cannot be deleted.",
        ));
    }
    if row.vm_count() > 0 {
        return Err(refused(in_use));
    }
    let mut guard = false;
    let written = ctx
        .commit(
            SqlTxn {
                stmts: secgroup::delete(id),
            },
            |r| {
                guard = r.kind == TxnErrorKind::NotFound;
                r.internal()
            },
        )
        .await;
    match written {
        Ok(_) => Ok(Value::Int(id as i32)),
        // Gone meanwhile (NO_EXISTS), or a VM took it meanwhile.
        Err(_) if guard => {
            SECGROUPS.get(ctx, id).await?;
            Err(refused(in_use))
        }
        Err(f) => Err(f),
    }
}

/// `one.secgroup.update(id, template, type)`: MANAGE; the new rules checked (INTERNAL
/// `Cannot update template. <why>`), duplicates dropped, and every VM using the group outdated
/// (`SecurityGroup::post_update_template` commits the change to them).
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    SECGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let text = p.string(1)?.to_string();
    let merge = super::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let old = ctx
            .read(move |c| sqlstore::objects::template_text(c, secgroup::TABLE, "template", id))
            .await?
            .ok_or_else(|| SECGROUPS.missing(id))?;
        let new = super::merged(&old, text, merge)?;
        let mut t = template::Template::parse(&new)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        rules::check(&mut t)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        Ok(vec![
            sqlstore::objects::replace_template(secgroup::TABLE, "template", id, t.to_text(), old),
            secgroup::commit(id, false),
        ])
    })
    .await
}

/// `one.secgroup.commit(id, recover)`: MANAGE; the VMs in error or being updated (and without
/// `recover`, the updated ones too) become outdated, for the driver to update
/// (`SecurityGroupCommit`).
pub async fn commit(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    // `SecurityGroupCommit` ("A:sib") reads `recover` whatever: a call without it is malformed.
    let recover = p.bool(1)?;
    SECGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let stmts = vec![secgroup::exists_guard(id), secgroup::commit(id, recover)];
    ctx.commit(SqlTxn { stmts }, |r| r.missing(SECGROUPS.missing(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// The stored template, parsed: a corrupt one is an error, never an empty copy.
fn stored(g: &SecGroupRow) -> Result<template::Template, Failure> {
    template::Template::parse(&g.template).map_err(|e| {
        xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// `VirtualNetwork::insert`: a new network's SECURITY_GROUPS, with the default group added; the
/// ids given first, as numbers, each once, in order.
pub fn with_default_group(t: &mut template::Template) {
    let given = t.single("SECURITY_GROUPS").unwrap_or_default().to_string();
    let mut ids: std::collections::BTreeSet<i64> =
        given.split(',').filter_map(leading_int).collect();
    ids.insert(DEFAULT_ID);
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    t.remove("SECURITY_GROUPS");
    t.push("SECURITY_GROUPS", template::Value::Single(list.join(",")));
}

/// C++'s `istringstream >> int` on one item of a list: blanks first, a sign, then the digits
/// it starts with; nothing when it starts with none.
fn leading_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let n: i64 = rest[..end].parse().ok()?;
    i32::try_from(sign * n).ok().map(i64::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn a_new_network_gets_the_default_group_as_virtualnetwork_insert_adds_it() {
        let cases = [
            ("NAME = n", "0"),
            ("SECURITY_GROUPS = \"\"", "0"),
            ("SECURITY_GROUPS = \"102, 100,100\"", "0,100,102"),
            ("SECURITY_GROUPS = \"0,7\"", "0,7"),
            ("SECURITY_GROUPS = \"x,5abc, ,-1\"", "-1,0,5"),
        ];
        for (text, want) in cases {
            let mut t = template::Template::parse(text).unwrap();
            with_default_group(&mut t);
            assert_eq!(t.single("SECURITY_GROUPS"), Some(want), "{text}");
            assert_eq!(t.get_all("SECURITY_GROUPS").count(), 1);
        }
    }
}
