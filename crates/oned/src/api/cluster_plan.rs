//! `one.cluster.optimize`, `one.cluster.planexecute` and `one.cluster.plandelete`
//! (`RequestManagerPlan`: ADMIN on the cluster): a cluster's optimization plan, computed and
//! applied by [`crate::drs`], shown as the PLAN of `one.cluster.info`.

use sqlstore::objects::plan as rows;
use sqlstore::SqlTxn;
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::drs::{self, plan_state::*};
use crate::method;
use wire::acl::{ADMIN, CLUSTER};

pub const METHODS: &[Method] = &[
    method!(
        "one.cluster.optimize",
        Write,
        Auth::On(CLUSTER, ADMIN),
        optimize
    ),
    method!(
        "one.cluster.planexecute",
        Write,
        Auth::On(CLUSTER, ADMIN),
        plan_execute
    ),
    method!(
        "one.cluster.plandelete",
        Write,
        Auth::On(CLUSTER, ADMIN),
        plan_delete
    ),
];

/// Puts the PLAN of a cluster that has one before the end of its body, as `Cluster::to_xml`
/// after `load_plan` (only `one.cluster.info` loads it).
pub(super) fn with_plan(body: &mut String, cid: i64, plan: Option<&(i64, String)>) {
    let Some((state, text)) = plan else { return };
    if let Some(at) = body.rfind("</CLUSTER>") {
        body.insert_str(at, &drs::plan_xml(cid, *state, text));
    }
}

async fn cluster_id(ctx: &Ctx, p: &Params<'_>) -> Result<i64, Failure> {
    let cid = i64::from(p.int(0)?);
    super::clusters::load(ctx, cid).await?;
    Ok(cid)
}

async fn stored(ctx: &Ctx, cid: i64) -> Result<Option<(i64, String)>, Failure> {
    Ok(ctx
        .read(move |c| rows::load(c, cid))
        .await?
        .map(|(_, st, body)| (st, body)))
}

fn changed() -> Failure {
    fail(code::ACTION, "The plan changed meanwhile, try again")
}

/// `one.cluster.optimize(id)`: a new READY plan that balances the cluster's hosts, unless one
/// is being applied. As OpenNebula, a plan without actions changes nothing.
pub async fn optimize(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let cid = cluster_id(ctx, &p).await?;
    let was = stored(ctx, cid).await?;
    if was.as_ref().is_some_and(|(st, _)| *st == APPLYING) {
        return Err(fail(
            code::ACTION,
            "Can't optimize cluster. A previous plan is currently being applied.",
        ));
    }
    let (hosts, vms, groups) = ctx
        .read(move |c| {
            let (hosts, vms) = rows::cluster_load(c, cid)?;
            let groups = drs::group_rules(c, &vms)?;
            Ok((hosts, vms, groups))
        })
        .await?;
    let moves = drs::optimize(&hosts, &vms, &groups);
    if !moves.is_empty() {
        let body = drs::new_plan(&moves).to_text();
        let stmts = vec![rows::set(cid, READY, body, was)];
        ctx.commit(SqlTxn { stmts }, |_| changed()).await?;
    }
    Ok(Value::Int(cid as i32))
}

/// `one.cluster.planexecute(id)` (`PlanManager::start_plan`): a READY (or TIMEOUT) plan starts
/// applying; the leader's scheduler task runs its actions.
pub async fn plan_execute(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let cid = cluster_id(ctx, &p).await?;
    let Some((st, body)) = stored(ctx, cid).await? else {
        return Err(fail(code::ACTION, "Plan is not ready"));
    };
    let why = match st {
        APPLYING => Some("Plan is already applying"),
        DONE => Some("Plan is already done"),
        ERROR => Some("Plan is in error state"),
        _ => None,
    };
    if let Some(why) = why {
        return Err(fail(code::ACTION, why));
    }
    let stmts = vec![rows::set(cid, APPLYING, body.clone(), Some((st, body)))];
    ctx.commit(SqlTxn { stmts }, |_| changed()).await?;
    Ok(Value::Int(cid as i32))
}

/// `one.cluster.plandelete(id)`: drops the cluster's plan, whatever its state.
pub async fn plan_delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let cid = cluster_id(ctx, &p).await?;
    let Some((st, body)) = stored(ctx, cid).await? else {
        return Err(fail(
            code::ACTION,
            format!("Plan for cluster {cid} does not exist"),
        ));
    };
    let stmts = vec![rows::delete(cid, st, body)];
    ctx.commit(SqlTxn { stmts }, |_| changed()).await?;
    Ok(Value::Int(cid as i32))
}
