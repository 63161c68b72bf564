//! `one.vm.action("resched" | "unresched", id)`: OpenNebula's `DispatchManager::resched`.
//! The flag asks the scheduler to move a running or powered-off VM; setting or clearing it
//! is an administrator's operation (`VM_ADMIN_OPERATIONS` has `resched` by default).

use sqlstore::objects::vm as rows;
use sqlstore::SqlTxn;
use xmlrpc::Value;

use super::perms::ADMIN;
use super::vm::{lcm, state, state_name, VMS};
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;

/// Where the flag may be set or cleared: POWEROFF, or ACTIVE in RUNNING or UNKNOWN.
fn allowed() -> [(i64, i64); 3] {
    [
        (state::POWEROFF, lcm::INIT),
        (state::ACTIVE, lcm::RUNNING),
        (state::ACTIVE, lcm::UNKNOWN),
    ]
}

pub async fn resched(ctx: &Ctx, s: &Session, id: i64, on: bool) -> MethodResult {
    let action = if on { "resched" } else { "unresched" };
    let vm = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, action, ADMIN).await?,
        )
        .await?;
    let refused = |st: i64, lc: i64| {
        fail(
            code::ACTION,
            format!(
                "Error performing action \"{action}\": This action is not available for state {}",
                state_name(st, lc)
            ),
        )
    };
    let ok = allowed()
        .iter()
        .any(|(st, lc)| *st == vm.state && (*st != state::ACTIVE || *lc == vm.lcm_state));
    if !ok {
        return Err(refused(vm.state, vm.lcm_state));
    }
    let txn = SqlTxn {
        stmts: vec![rows::set_resched(id, on, &[(vm.state, vm.lcm_state)])],
    };
    ctx.commit(txn, |r| r.missing(refused(vm.state, vm.lcm_state)))
        .await?;
    Ok(Value::Int(id as i32))
}
