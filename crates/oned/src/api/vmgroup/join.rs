//! A new VM joining a role of a VM group (`VirtualMachine::get_vmgroup`,
//! `VMGroupPool::vmgroup_attribute` and `VMGroupPool::authorize`): the first `VMGROUP` vector
//! of its template names the group and the role; the VM needs USE on the group, and joins
//! the role in its own insert.

use sqlstore::objects::placement;
use sqlstore::SqlStmt;
use template::{Template, Value};

use super::super::perms::USE;
use super::super::{code, fail, Ctx, Failure};
use super::{for_vm, roles::Roles, VMGROUPS};
use crate::auth::Session;

/// Rewrites `t`'s `VMGROUP` (only the first vector stays, with `VMGROUP_ID` set) and returns
/// the statement that adds the VM to be inserted next to its role, or `None` if it names no
/// group. Its guard fails, and the caller computes again, if the group or the VM counter
/// changed since they were read here.
pub async fn for_new_vm(
    ctx: &Ctx,
    s: &Session,
    t: &mut Template,
) -> Result<Option<SqlStmt>, Failure> {
    let Some(mut va) = t.vector("VMGROUP").map(<[_]>::to_vec) else {
        t.remove("VMGROUP");
        return Ok(None);
    };
    // `VirtualMachine::insert`'s refusal: INTERNAL, in its own words.
    let refused = |m: String| fail(code::INTERNAL, m);
    let g = for_vm(ctx, &va, s.uid).await.map_err(refused)?;
    let gid = g.head.owned.oid;
    VMGROUPS.authorized(ctx, s, gid, USE).await?;
    let role = template::vector_get(&va, "ROLE").unwrap_or("").to_string();
    let mut roles = Roles::parse(&g.roles).map_err(refused)?;
    let vid = ctx.read(placement::last_vm_oid).await? + 1;
    if !roles.set_vm(&role, vid, true) {
        return Err(refused("Role does not exist in VM Group".into()));
    }
    match va.iter_mut().find(|(k, _)| k == "VMGROUP_ID") {
        Some(p) => p.1 = gid.to_string(),
        None => va.push(("VMGROUP_ID".into(), gid.to_string())),
    }
    t.set("VMGROUP", Value::Vector(va));
    Ok(Some(placement::join_new_vm(
        gid,
        roles.to_text(),
        (g.roles, g.template),
        vid,
    )))
}
