//! `one.vmgroup.*` and `one.vmgrouppool.info`: VM groups, roles of VMs with placement rules
//! between them (`RequestManagerVMGroup`, `VMGroup`, `VMGroupPool`). The roles and their
//! checks are in [`roles`]; every change to a group's roles or template is computed on the
//! leader from the stored ones and written only if they are still the same.
//!
//! VMs join a role through `VMGROUP = [ VMGROUP_ID | VMGROUP_NAME, ROLE ]` in their template:
//! the VM side calls [`for_vm`] and [`membership`] inside its own transaction.

pub mod join;
pub mod roles;

use sqlstore::objects::{self, vmgroup::VmGroupRow};
use sqlstore::SqlStmt;
use template::Template;
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::xml::{self, Xml};
use super::{code, fail, owned, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use roles::Roles;
use wire::acl::VMGROUP;

pub static VMGROUPS: Family<VmGroupRow> = Family {
    table: objects::vmgroup::TABLE,
    kind: VMGROUP,
    acl: "VMGROUP",
    what: "vm group",
    pool: "VM_GROUP_POOL",
    template: "template",
    rows: &objects::vmgroup::ROWS,
    xml: vmgroup_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.vmgroup.allocate", Write, Auth::Object, allocate),
    method!(
        "one.vmgroup.info",
        Read,
        Auth::Object,
        owned::info,
        &VMGROUPS
    ),
    method!("one.vmgroup.delete", Write, Auth::Object, delete),
    method!("one.vmgroup.update", Write, Auth::Object, update),
    method!(
        "one.vmgroup.chmod",
        Write,
        Auth::Object,
        owned::chmod,
        &VMGROUPS
    ),
    method!(
        "one.vmgroup.chown",
        Write,
        Auth::Object,
        owned::chown,
        &VMGROUPS
    ),
    method!(
        "one.vmgroup.rename",
        Write,
        Auth::Object,
        owned::rename,
        &VMGROUPS
    ),
    method!(
        "one.vmgroup.lock",
        Write,
        Auth::Object,
        owned::lock,
        &VMGROUPS
    ),
    method!(
        "one.vmgroup.unlock",
        Write,
        Auth::Object,
        owned::unlock,
        &VMGROUPS
    ),
    method!("one.vmgroup.roleadd", Write, Auth::Object, role_add),
    method!("one.vmgroup.roledelete", Write, Auth::Object, role_delete),
    method!("one.vmgroup.roleupdate", Write, Auth::Object, role_update),
    method!(
        "one.vmgrouppool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &VMGROUPS
    ),
];

/// `VMGroup::to_xml`: PERMISSIONS before LOCK, then ROLES and TEMPLATE.
pub(super) fn vmgroup_xml(g: &VmGroupRow, out: &mut String) {
    Xml::new(out).elem("VM_GROUP", |x| {
        xml::owner_and_name(x, &g.head);
        xml::permissions(x, g.head.owned.perms);
        xml::lock(x, &g.lock);
        x.raw(&xml::template(&g.roles, "ROLES"))
            .raw(&xml::template(&g.template, "TEMPLATE"));
    });
}

/// A stored part of a group, parsed: a corrupt one is an error, never an empty group.
fn corrupt(e: impl std::fmt::Display) -> Failure {
    xml::corrupt_template(&e);
    fail(code::INTERNAL, e.to_string())
}

fn stored(g: &VmGroupRow) -> Result<(Roles, Template), Failure> {
    let roles = Roles::parse(&g.roles).map_err(corrupt)?;
    let t = Template::parse(&g.template)
        .map_err(|e| corrupt(format!("The stored template does not parse: {e}")))?;
    Ok((roles, t))
}

/// `VMGroup::insert`: the NAME and ROLE attributes leave the template; each ROLE vector
/// becomes a role (other ROLE values are dropped), then the rules are checked.
fn new_group(mut body: Template) -> Result<(Roles, Template), String> {
    body.remove("NAME");
    let given: Vec<Vec<(String, String)>> = body
        .get_all("ROLE")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    if body.get_all("ROLE").count() > roles::MAX_ROLES {
        return Err("Maximum number of roles in a VM Group reached".into());
    }
    body.remove("ROLE");
    let mut roles = Roles::default();
    for pairs in given {
        roles.add(pairs)?;
    }
    roles.check(&body)?;
    Ok((roles, body))
}

/// `one.vmgroup.allocate(template)` (`VMGroupAllocate`): CREATE VMGROUP, a valid NAME its
/// owner does not use yet, roles and rules that agree; INTERNAL with the pool's message.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let body = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    VMGROUPS.may_create(ctx, s).await?;
    let name = body.single("NAME").unwrap_or("").to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    if let Some(m) = taken(ctx, &name, s.uid).await? {
        return Err(fail(code::INTERNAL, m));
    }
    let (roles, body) = new_group(body).map_err(|e| fail(code::INTERNAL, e))?;
    let insert = objects::vmgroup::insert(
        &name,
        s.uid,
        s.gid,
        super::umask::new_object(ctx, s),
        roles.to_text(),
        body.to_text(),
    );
    let stmts = vec![insert, objects::next_oid(objects::vmgroup::TABLE)];
    let mut clash = false;
    let written = ctx
        .commit(sqlstore::SqlTxn { stmts }, |r| {
            clash = r.kind == sqlstore::TxnErrorKind::Constraint;
            r.internal()
        })
        .await;
    match written {
        Ok(values) => super::new_id(&values, "vm group"),
        // Taken meanwhile by a concurrent call: say by which group, as the check above.
        Err(_) if clash => Err(fail(
            code::INTERNAL,
            taken(ctx, &name, s.uid)
                .await?
                .unwrap_or_else(|| "NAME is already taken.".into()),
        )),
        Err(f) => Err(f),
    }
}

/// `NAME is already taken by VMGroup <id>.` if `uid` has a group called `name`.
async fn taken(ctx: &Ctx, name: &str, uid: i64) -> Result<Option<String>, Failure> {
    let n = name.to_string();
    let held = ctx
        .read(move |c| objects::vmgroup::named(c, &n, uid))
        .await?;
    Ok(held.map(|oid| format!("NAME is already taken by VMGroup {oid}.")))
}

/// `one.vmgroup.delete(id)`: MANAGE on the group; OpenNebula deletes a group whatever its
/// roles hold.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let stmts = vec![objects::delete(objects::vmgroup::TABLE, id)];
    owned::delete(ctx, s, &VMGROUPS, id, stmts, |r| {
        r.missing(VMGROUPS.missing(id))
    })
    .await
}

/// Writes what `change` makes of group `id`'s stored roles and template, computed again
/// while a concurrent write changes them first. `change` answers a refusal as the failure.
async fn change_group(
    ctx: &Ctx,
    id: i64,
    change: impl Fn(&mut Roles, &mut Template) -> Result<(), Failure>,
) -> MethodResult {
    let change = &change;
    super::writes::write_computed(ctx, id, move || async move {
        let g = VMGROUPS.get(ctx, id).await?;
        let (mut roles, mut t) = stored(&g)?;
        change(&mut roles, &mut t)?;
        Ok(vec![objects::vmgroup::set_state(
            id,
            roles.to_text(),
            t.to_text(),
            (g.roles, g.template),
        )])
    })
    .await
}

/// `one.vmgroup.update(id, template, type)`: MANAGE; then `VMGroup::post_update_template`:
/// no VM in any role, ROLE attributes dropped, and rules that agree with the roles. Its
/// refusals are INTERNAL `Cannot update template. <why>`, as `RequestManagerUpdateTemplate`.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    VMGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::update_type(&p)?;
    let text = &text;
    change_group(ctx, id, move |roles, t| {
        let new = super::merged(&t.to_text(), text, merge)?;
        let why = |m: String| fail(code::INTERNAL, format!("Cannot update template. {m}"));
        let vms = roles.vm_count();
        if vms > 0 {
            return Err(why(format!("VM Group has {vms} VMs")));
        }
        let mut new = Template::parse(&new).map_err(|e| why(e.to_string()))?;
        new.remove("ROLE");
        roles.check(&new).map_err(why)?;
        *t = new;
        Ok(())
    })
    .await
}

/// The first `ROLE` of a role call's template (`Template::get("ROLE")`): ACTION if the text
/// does not parse or has none.
fn role_vector(text: &str) -> Result<Vec<(String, String)>, Failure> {
    let t = super::validate::template(text).map_err(|e| fail(code::ACTION, e))?;
    t.get("ROLE")
        .and_then(|a| a.value.as_vector())
        .map(<[_]>::to_vec)
        .ok_or_else(|| fail(code::ACTION, "No ROLE attribute in template"))
}

/// `one.vmgroup.roleadd(id, template)` (`VMGroupAddRole`): MANAGE, then the first ROLE of the
/// template becomes a new role, if the rules still agree. Refusals are ACTION.
pub async fn role_add(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    VMGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let role = role_vector(&text)?;
    change_group(ctx, id, |roles, t| {
        if roles.len() >= roles::MAX_ADDED_ROLES {
            return Err(fail(
                code::ACTION,
                "Maximum number of roles in a VM Group reached",
            ));
        }
        roles.add(role.clone()).map_err(|e| fail(code::ACTION, e))?;
        roles.check(t).map_err(|e| fail(code::ACTION, e))
    })
    .await
}

/// `one.vmgroup.roledelete(id, role_id)` (`VMGroupDelRole`): MANAGE; a role with VMs stays,
/// and so does one a rule still names. Refusals are ACTION.
pub async fn role_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let role = p.int(1)? as i64;
    VMGROUPS.authorized(ctx, s, id, MANAGE).await?;
    change_group(ctx, id, |roles, t| {
        roles.delete(role).map_err(|e| fail(code::ACTION, e))?;
        roles.check(t).map_err(|e| fail(code::ACTION, e))
    })
    .await
}

/// `one.vmgroup.roleupdate(id, role_id, template)` (`VMGroupUpdateRole`): MANAGE; the first
/// ROLE of the template is merged into a role without VMs, if the rules still agree.
/// Refusals are ACTION (OpenNebula crashes on a group that went away; this answers NO_EXISTS).
pub async fn role_update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let role = p.int(1)? as i64;
    let text = p.string(2)?.to_string();
    VMGROUPS.authorized(ctx, s, id, MANAGE).await?;
    let pairs = role_vector(&text)?;
    change_group(ctx, id, |roles, t| {
        roles
            .update(id, role, pairs.clone())
            .map_err(|e| fail(code::ACTION, e))?;
        roles.check(t).map_err(|e| fail(code::ACTION, e))
    })
    .await
}

/// For the VM side: the group a VM's `VMGROUP` vector names (`VMGroupPool::get_from_attribute`:
/// VMGROUP_NAME of VMGROUP_UID, by default the VM's owner `uid`, else VMGROUP_ID), with
/// `VMGroupPool::vmgroup_attribute`'s messages. The caller checks USE on it.
pub async fn for_vm(ctx: &Ctx, va: &[(String, String)], uid: i64) -> Result<VmGroupRow, String> {
    if template::vector_get(va, "ROLE").is_none_or(str::is_empty) {
        return Err("Missing role name in VM Group definition".into());
    }
    let not_found = || "Cannot find VM Group to associate the VM".to_string();
    let id = match template::vector_get(va, "VMGROUP_NAME").filter(|n| !n.is_empty()) {
        Some(name) => {
            let owner = template::vector_get(va, "VMGROUP_UID")
                .and_then(|u| u.trim().parse().ok())
                .unwrap_or(uid);
            let n = name.to_string();
            ctx.read(move |c| objects::vmgroup::named(c, &n, owner))
                .await
                .map_err(|_| not_found())?
                .ok_or_else(not_found)?
        }
        None => template::vector_get(va, "VMGROUP_ID")
            .and_then(|i| i.trim().parse().ok())
            .ok_or_else(not_found)?,
    };
    VMGROUPS.get(ctx, id).await.map_err(|_| not_found())
}

/// For the VM side: the statement adding (`join`) or removing VM `vm` to role `role` of
/// group `g` as read, to run in the VM's own transaction. It matches nothing if the group
/// changed since it was read: the VM side then reads the group again.
pub fn membership(g: &VmGroupRow, role: &str, vm: i64, join: bool) -> Result<SqlStmt, String> {
    let mut roles = Roles::parse(&g.roles)?;
    if !roles.set_vm(role, vm, join) {
        return Err("Role does not exist in VM Group".into());
    }
    Ok(objects::vmgroup::set_state(
        g.head.owned.oid,
        roles.to_text(),
        g.template.clone(),
        (g.roles.clone(), g.template.clone()),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn a_new_group_keeps_its_roles_apart_from_its_template() {
        let t = Template::parse(
            "NAME = g\nROLE = [ NAME = a ]\nROLE = b\nROLE = [ NAME = c ]\nAFFINED = \"a,c\"",
        )
        .unwrap();
        let (roles, body) = new_group(t).unwrap();
        assert_eq!(roles.len(), 2);
        assert_eq!(body.to_text(), "AFFINED=\"a,c\"\n");
        let many: String = (0..33)
            .map(|i| format!("ROLE = [ NAME = r{i} ]\n"))
            .collect();
        assert_eq!(
            new_group(Template::parse(&many).unwrap()).unwrap_err(),
            "Maximum number of roles in a VM Group reached"
        );
    }
}
