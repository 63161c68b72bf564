//! `one.vrouter.*` and `one.vrouterpool.info`: virtual routers (`RequestManagerVirtualRouter`,
//! `VirtualRouter`). A router holds NICs; a NIC with `FLOATING_IP = YES` leases an address
//! of its network for the router itself (kept as `VROUTER_IP`, `VROUTER_MAC`...), charged to
//! the router owner's NETWORK quota. `instantiate` creates the VMs that run the router, each
//! with the router's NICs and `VROUTER_ID`; `attachnic` and `detachnic` change the router's
//! NICs and then each of its VMs'.
//!
//! As in OpenNebula, the steps on the router's VMs (create, release, attach, detach, end) are
//! separate writes after the router's own: each re-checks the state it expects, so a leader
//! change between two of them never runs one twice. Each VM `instantiate` makes is one write
//! with its leases and quota; when one fails, the call answers its error and ends those made
//! before it, which never join the router (`VirtualRouterInstantiate`). A NIC failing on one
//! VM at `attachnic`/`detachnic` leaves the router and the VMs done so far as they are.
//! The router's NICs are built in [`super::vrouter_nics`].

use sqlstore::objects::lease::{self, Holder, OwnerRef};
use sqlstore::objects::{self, vrouter::VrouterRow};
use sqlstore::SqlStmt;
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{self, MANAGE, USE};
use super::quota::{Charge, Wording};
use super::vrouter_nics::{self as vnics, get, lease_router_nics, nics, with_nics, Pairs};
use super::xml::{self, Xml};
use super::{code, fail, owned, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::acl::VROUTER;

pub static VROUTERS: Family<VrouterRow> = Family {
    table: objects::vrouter::TABLE,
    kind: VROUTER,
    acl: "VROUTER",
    what: "virtual router",
    pool: "VROUTER_POOL",
    template: "template",
    rows: &objects::vrouter::ROWS,
    xml: vrouter_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.vrouter.allocate", Write, Auth::Object, allocate),
    method!(
        "one.vrouter.info",
        Read,
        Auth::Object,
        owned::info,
        &VROUTERS
    ),
    method!("one.vrouter.delete", Write, Auth::Object, delete),
    method!("one.vrouter.update", Write, Auth::Object, update),
    method!("one.vrouter.chmod", Write, Auth::Object, chmod),
    method!("one.vrouter.chown", Write, Auth::Object, chown),
    method!(
        "one.vrouter.rename",
        Write,
        Auth::Object,
        owned::rename,
        &VROUTERS
    ),
    method!(
        "one.vrouter.lock",
        Write,
        Auth::Object,
        owned::lock,
        &VROUTERS
    ),
    method!(
        "one.vrouter.unlock",
        Write,
        Auth::Object,
        owned::unlock,
        &VROUTERS
    ),
    method!("one.vrouter.instantiate", Write, Auth::Object, instantiate),
    method!("one.vrouter.attachnic", Write, Auth::Object, attach_nic),
    method!("one.vrouter.detachnic", Write, Auth::Object, detach_nic),
    method!(
        "one.vrouterpool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &VROUTERS
    ),
];

/// The most VMs one `instantiate` creates: a client must not make the leader loop unbounded.
pub const MAX_VMS_PER_CALL: i64 = 256;

/// `VirtualRouter::to_xml`: PERMISSIONS, LOCK, VMS, TEMPLATE.
pub(super) fn vrouter_xml(r: &VrouterRow, out: &mut String) {
    Xml::new(out).elem("VROUTER", |x| {
        xml::owner_and_name(x, &r.head);
        xml::permissions(x, r.head.owned.perms);
        xml::lock(x, &r.lock);
        x.elem("VMS", |x| {
            for vm in &r.vms {
                x.num("ID", vm);
            }
        });
        x.raw(&xml::template(&r.template, "TEMPLATE"));
    });
}

fn stored(r: &VrouterRow) -> Result<Template, Failure> {
    Template::parse(&r.template).map_err(|e| {
        xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// `one.vrouter.allocate(template)`: CREATE VROUTER and USE of each NIC's network; a valid
/// NAME; the floating addresses leased, under the caller's NETWORK quota.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut body = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    VROUTERS.may_create(ctx, s).await?;
    let name = body.single("NAME").unwrap_or("").to_string();
    body.remove("NAME");
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    // As a VM's: a router with a million NICs would take as many leases in one write.
    crate::limits::vm_vectors(&body).map_err(|e| fail(code::INTERNAL, e))?;
    // The addresses are picked as the networks are now; a concurrent lease of one refuses the
    // write, and they are picked again.
    for _ in 0..LEASE_RETRIES {
        let mut list = nics(&body);
        let leases = lease_router_nics(
            ctx,
            s,
            &mut list,
            0,
            OwnerRef::NextOf(objects::vrouter::TABLE),
            "",
        )
        .await?;
        let t = if list.is_empty() {
            body.clone()
        } else {
            with_nics(body.clone(), list)
        };
        let mut with = leases.stmts;
        with.extend(objects::vrouter::set_networks(None, &vnics::networks(&t)));
        let insert = objects::vrouter::insert(
            &name,
            s.uid,
            s.gid,
            super::umask::new_object(ctx, s),
            t.to_text(),
        );
        match super::quota::allocate_all(
            ctx,
            s,
            &leases.asks,
            objects::vrouter::TABLE,
            insert,
            with,
            "virtual router",
            "VROUTER",
        )
        .await
        {
            Err(super::quota::Allocation::Raced) => continue,
            Err(super::quota::Allocation::Failed(f)) => return Err(f),
            Ok(v) => return Ok(v),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Error allocating a new virtual router. Its networks' leases kept changing, try again",
    ))
}

/// How often a router's leases are picked again after a concurrent change of its networks.
const LEASE_RETRIES: usize = 10;

/// Ends VM `vm` as `VirtualRouter::shutdown_vms` does: a hard terminate, or where its state
/// allows none, a delete.
async fn end_vm(ctx: &Ctx, vm: i64) {
    let admin = Session::oneadmin();
    let args = [
        Value::String("terminate-hard".into()),
        Value::Int(vm as i32),
    ];
    if super::vm::action(ctx, &admin, Params(&args)).await.is_ok() {
        return;
    }
    // `one.vm.recover(id, 3)`: delete.
    let args = [Value::Int(vm as i32), Value::Int(3)];
    if let Err(e) = super::vm_recover::recover(ctx, &admin, Params(&args)).await {
        tracing::warn!(vm, error = ?e, "a virtual router's VM could not be ended");
    }
}

/// `one.vrouter.delete(id)`: MANAGE; the router goes with its floating addresses, then its VMs
/// are ended (`VirtualRouterDelete::drop`).
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let r = VROUTERS.authorized(ctx, s, id, MANAGE).await?;
    let mut stmts = vec![lease::free_all_of(Holder::Vrouter, id)];
    stmts.extend(objects::vrouter::delete(id));
    ctx.commit(sqlstore::SqlTxn { stmts }, |e| {
        e.missing(VROUTERS.missing(id))
    })
    .await?;
    for vm in r.vms {
        end_vm(ctx, vm).await;
    }
    Ok(Value::Int(id as i32))
}

/// `one.vrouter.chmod`: the router, then each of its VMs with the same bits
/// (`VirtualRouterChmod`); a VM refused makes the answer its refusal, the others changed.
pub async fn chmod(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let r = VROUTERS.get(ctx, id).await?;
    owned::chmod(ctx, s, Params(p.0), &VROUTERS).await?;
    for_each_vm(&r.vms, p.0, |args| async move {
        owned::chmod(ctx, s, Params(&args), &super::vm::VMS).await
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.vrouter.chown`: the router, then each of its VMs to the same owner and group (their
/// quotas move with them).
pub async fn chown(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let r = VROUTERS.get(ctx, id).await?;
    owned::chown(ctx, s, Params(p.0), &VROUTERS).await?;
    for_each_vm(&r.vms, p.0, |args| async move {
        owned::chown(ctx, s, Params(&args), &super::vm::VMS).await
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Runs `call` with the router's arguments `args` naming each VM of `vms` instead; the last
/// refusal, if any, once all ran.
async fn for_each_vm<F, Fut>(vms: &[i64], args: &[Value], call: F) -> Result<(), Failure>
where
    F: Fn(Vec<Value>) -> Fut,
    Fut: std::future::Future<Output = MethodResult>,
{
    let mut last = Ok(());
    for vm in vms {
        let mut a = args.to_vec();
        if let Some(first) = a.first_mut() {
            *first = Value::Int(*vm as i32);
        }
        if let Err(f) = call(a).await {
            last = Err(f);
        }
    }
    last
}

/// `one.vrouter.update(id, template, type)`: MANAGE; the router's NICs stay as they are
/// (`VirtualRouter::replace_template` / `append_template`), whatever the text says of them.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    VROUTERS.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::update_type(&p)?;
    let mut given = super::validate::template(&text)
        .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
    given.remove("NIC");
    let given = given.to_text();
    let given = &given;
    super::writes::write_computed(ctx, id, move || async move {
        let r = VROUTERS.get(ctx, id).await?;
        let old = stored(&r)?;
        let new = super::merged(&r.template, given, merge)?;
        let new = Template::parse(&new).map_err(|e| fail(code::INTERNAL, e.to_string()))?;
        let new = if merge {
            new
        } else {
            with_nics(new, nics(&old))
        };
        Ok(vec![objects::replace_template(
            objects::vrouter::TABLE,
            "template",
            id,
            new.to_text(),
            r.template,
        )])
    })
    .await
}

/// `one.vrouter.instantiate(id, n, template_id, name, hold, extra)`: MANAGE on the router and
/// a virtual router template (VROUTER = YES; -1 takes the router's TEMPLATE_ID); `n` VMs of
/// it, named after `name` (`%i` the VM's number; `vr-<router>-%i` by default), each with the
/// router's NICs and VROUTER_ID, created on hold and released unless `hold`.
pub async fn instantiate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let n = p.int(1)? as i64;
    let mut tid = p.int(2)? as i64;
    let name = p.string(3)?.to_string();
    let hold = p.opt_bool(4)?.unwrap_or(false);
    let extra = match p.0.get(5) {
        Some(_) => p.string(5)?.to_string(),
        None => String::new(),
    };
    let r = VROUTERS.get(ctx, id).await?;
    let rt = stored(&r)?;
    if tid == -1 {
        tid = rt
            .single("TEMPLATE_ID")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(-1);
    }
    if tid == -1 {
        return Err(fail(
            code::ACTION,
            "A template ID was not provided, and the virtual router does not have a default one",
        ));
    }
    VROUTERS.authorized(ctx, s, id, MANAGE).await?;
    let t = super::vmtemplate::TEMPLATES.get(ctx, tid).await?;
    let tt = Template::parse(&t.template).map_err(|e| fail(code::INTERNAL, e.to_string()))?;
    if !is_vrouter_template(&tt) {
        return Err(fail(
            code::ACTION,
            "Only virtual router templates are allowed",
        ));
    }
    if n > MAX_VMS_PER_CALL {
        return Err(fail(
            code::ACTION,
            format!("Cannot create more than {MAX_VMS_PER_CALL} VMs in one call"),
        ));
    }
    let pattern = if name.is_empty() {
        format!("vr-{}-%i", r.head.name)
    } else {
        name
    };
    let for_vms = vm_template(&r, &rt, &vnics::restricted_nic(ctx));
    let mut vms: Vec<i64> = Vec::new();
    for i in 0..n.max(0) {
        let vm_name = pattern.replace("%i", &i.to_string());
        match instantiate_one(ctx, s, tid, &vm_name, &extra, &for_vms).await {
            Ok(vm) => vms.push(vm),
            Err(f) => {
                for vm in vms {
                    end_vm(ctx, vm).await;
                }
                return Err(f);
            }
        }
    }
    let mut stmts: Vec<SqlStmt> = vms
        .iter()
        .map(|vm| objects::vrouter::add_vm(id, *vm))
        .collect();
    stmts.extend(set_template_id(ctx, id, tid).await?);
    if !stmts.is_empty() {
        ctx.commit(sqlstore::SqlTxn { stmts }, |e| e.internal())
            .await?;
    }
    if !hold {
        let admin = Session::oneadmin();
        for vm in &vms {
            let args = [Value::String("release".into()), Value::Int(*vm as i32)];
            if let Err(e) = super::vm::action(ctx, &admin, Params(&args)).await {
                tracing::warn!(vm, error = ?e, "a virtual router's VM could not be released");
            }
        }
    }
    Ok(Value::Int(id as i32))
}

/// The statement setting the router's TEMPLATE_ID, if it is still there as read now (a router
/// deleted meanwhile gets none, as OpenNebula updates only a router it finds).
async fn set_template_id(ctx: &Ctx, id: i64, tid: i64) -> Result<Option<SqlStmt>, Failure> {
    let Ok(r) = VROUTERS.get(ctx, id).await else {
        return Ok(None);
    };
    let mut t = stored(&r)?;
    t.set("TEMPLATE_ID", TValue::Single(tid.to_string()));
    let mut stmt = objects::replace_template(
        objects::vrouter::TABLE,
        "template",
        id,
        t.to_text(),
        r.template,
    );
    // Changed meanwhile by another call: its template wins, the VMs are still the router's.
    stmt.must_match = false;
    Ok(Some(stmt))
}

/// `VirtualRouter::get_vm_template`: the router's NICs, VROUTER_ID and the keepalived
/// attributes, merged into each VM's template.
fn vm_template(r: &VrouterRow, rt: &Template, restricted: &[String]) -> Template {
    let oid = r.head.owned.oid;
    let mut t = Template::default();
    for mut nic in nics(rt) {
        vnics::prepare_nic_vm(&mut nic, restricted);
        t.push("NIC", TValue::Vector(nic));
    }
    t.set("VROUTER_ID", TValue::Single(oid.to_string()));
    let keepalived = rt
        .single("KEEPALIVED_ID")
        .and_then(|k| k.trim().parse::<i64>().ok())
        .unwrap_or(oid % 255 + 1);
    t.set(
        "VROUTER_KEEPALIVED_ID",
        TValue::Single(keepalived.to_string()),
    );
    if let Some(pw) = rt.single("KEEPALIVED_PASSWORD").filter(|p| !p.is_empty()) {
        t.set(
            "VROUTER_KEEPALIVED_PASSWORD",
            TValue::Single(pw.to_string()),
        );
    }
    t
}

/// `VMTemplate::is_vrouter`: VROUTER = YES.
pub(super) fn is_vrouter_template(t: &Template) -> bool {
    t.single("VROUTER")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("YES"))
}

/// One VM of template `tid` (`VMTemplateInstantiate::request_execute`): USE on the template,
/// CREATE VM, the caller's `extra` then the router's attributes merged in; on hold.
async fn instantiate_one(
    ctx: &Ctx,
    s: &Session,
    tid: i64,
    name: &str,
    extra: &str,
    router: &Template,
) -> Result<i64, Failure> {
    // `VMTemplateInstantiate::merge` comes before the rights: a user's extra template may not
    // change a restricted attribute of the template.
    let t = super::vmtemplate::TEMPLATES.get(ctx, tid).await?;
    let mut body = Template::parse(&t.template).map_err(|e| fail(code::INTERNAL, e.to_string()))?;
    if !extra.trim().is_empty() {
        let more = super::validate::template(extra).map_err(|e| fail(code::INTERNAL, e))?;
        if !s.is_admin() {
            let ras = super::restricted::vm(ctx);
            if let Some(ra) = super::restricted::change_of(&ras, &more, &body) {
                return Err(fail(
                    code::AUTHORIZATION,
                    format!(
                        "User [{}] : User Template includes a restricted attribute {ra}.",
                        s.uid
                    ),
                ));
            }
        }
        super::merge_attrs(&mut body, more);
    }
    super::vmtemplate::TEMPLATES
        .authorized(ctx, s, tid, USE)
        .await?;
    super::vm::VMS.may_create(ctx, s).await?;
    super::merge_attrs(&mut body, router.clone());
    body.set("TEMPLATE_ID", TValue::Single(tid.to_string()));
    if !name.is_empty() {
        super::validate::object_name(name).map_err(|e| {
            fail(
                code::ALLOCATE,
                format!("Error allocating a new virtual router. {e}"),
            )
        })?;
    }
    let made = super::vm::create(
        ctx,
        s,
        body,
        Some(name.to_string()),
        true,
        allocation_of_router,
    )
    .await?;
    match made {
        Value::Int(vm) => Ok(vm as i64),
        _ => Err(fail(code::INTERNAL, "A VM was created without an id")),
    }
}

/// A VM that could not be made, as `VirtualRouterInstantiate` answers it: oned's VM pool
/// refusal is ALLOCATE, worded after the request's object (`Request::failure_message`).
fn allocation_of_router(f: Failure) -> Failure {
    match f {
        Failure::Api { code: c, message } if c == code::INTERNAL => fail(
            code::ALLOCATE,
            format!("Error allocating a new virtual router. {message}"),
        ),
        other => other,
    }
}

/// `one.vrouter.attachnic(id, template)`: MANAGE on the router, USE on the NIC's network; the
/// NIC (NIC_ID one above the highest) joins the router under its owner's NETWORK quota, then
/// each of its VMs.
pub async fn attach_nic(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let given = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    VROUTERS.authorized(ctx, s, id, MANAGE).await?;
    if given.get("NIC_ALIAS").is_some() {
        return Err(fail(
            code::ACTION,
            "Alias can't be attached to virtual router.",
        ));
    }
    let asked = nics(&given);
    if asked.len() != 1 || given.get_all("NIC").count() != 1 {
        return Err(fail(
            code::ACTION,
            "The template must contain one NIC attribute",
        ));
    }
    let asked = &asked;
    let attached = std::sync::Mutex::new(None::<(Pairs, Vec<i64>)>);
    let attached_ref = &attached;
    super::writes::write_computed(ctx, id, move || async move {
        let r = VROUTERS.get(ctx, id).await?;
        let mut t = stored(&r)?;
        let next = nics(&t)
            .iter()
            .filter_map(|n| get(n, "NIC_ID").parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        let mut list = asked.clone();
        let leases = lease_router_nics(ctx, s, &mut list, next, OwnerRef::Id(id), "")
            .await
            .map_err(|f| match f {
                // USE on the network is asked with MANAGE on the router
                // (`VirtualRouter::set_auth_request`): its refusal stays AUTHORIZATION.
                Failure::Api { code: c, message } if c != code::AUTHORIZATION => {
                    fail(code::ACTION, message)
                }
                other => other,
            })?;
        let Some(nic) = list.into_iter().next() else {
            return Err(fail(
                code::ACTION,
                "The template must contain one NIC attribute",
            ));
        };
        t.push("NIC", TValue::Vector(nic.clone()));
        let mut stmts = vec![objects::replace_template(
            objects::vrouter::TABLE,
            "template",
            id,
            t.to_text(),
            r.template.clone(),
        )];
        stmts.extend(leases.stmts);
        stmts.extend(objects::vrouter::set_networks(
            Some(id),
            &vnics::networks(&t),
        ));
        for ask in &leases.asks {
            let charge = Charge {
                asks: std::slice::from_ref(ask),
                uid: r.head.owned.uid,
                gid: r.head.owned.gid,
                wording: Wording::Caller(s.uid),
            };
            stmts.extend(charge.guard(ctx).await?);
        }
        if let Ok(mut a) = attached_ref.lock() {
            *a = Some((nic, r.vms.clone()));
        }
        Ok(stmts)
    })
    .await?;
    let done = attached.lock().ok().and_then(|mut a| a.take());
    let Some((mut nic, vms)) = done else {
        return Ok(Value::Int(id as i32));
    };
    // Each VM takes its own address of the network (and its own NIC_ID).
    nic.retain(|(k, _)| {
        !["NIC_ID", "AR_ID", "MAC", "IP", "IP6", "TARGET"]
            .iter()
            .any(|x| k.eq_ignore_ascii_case(x))
    });
    let mut one = Template::default();
    one.push("NIC", TValue::Vector(nic));
    let text = one.to_text();
    // As the caller (`VirtualMachineAttachNic::request_execute` with the router call's
    // attributes): it must manage each VM too.
    for vm in vms {
        let args = [Value::Int(vm as i32), Value::String(text.clone())];
        if let Err(f) = super::vm_nics::attach(ctx, s, Params(&args)).await {
            return Err(as_action(f));
        }
    }
    Ok(Value::Int(id as i32))
}

/// A VM step's failure as the router call answers it: ACTION with the step's own message,
/// without the `User [id] : ` an AUTHORIZATION answer starts with (oned adds that only when
/// it answers AUTHORIZATION).
fn as_action(f: Failure) -> Failure {
    match f {
        Failure::Api { code: c, message } => {
            let message = match message.split_once(" : ") {
                Some((user, rest)) if c == code::AUTHORIZATION && user.starts_with("User [") => {
                    rest.to_string()
                }
                _ => message,
            };
            fail(code::ACTION, message)
        }
        other => other,
    }
}

/// `one.vrouter.detachnic(id, nic_id)`: MANAGE; the NIC leaves the router (its floating
/// address free again), then each of its VMs.
pub async fn detach_nic(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let nic_id = p.int(1)? as i64;
    VROUTERS.authorized(ctx, s, id, MANAGE).await?;
    let vms = std::sync::Mutex::new(Vec::new());
    let vms_ref = &vms;
    super::writes::write_computed(ctx, id, move || async move {
        let r = VROUTERS.get(ctx, id).await?;
        let t = stored(&r)?;
        let all = nics(&t);
        let Some(at) = all
            .iter()
            .position(|n| get(n, "NIC_ID").parse::<i64>().ok() == Some(nic_id))
        else {
            return Err(fail(
                code::ACTION,
                format!("NIC with NIC_ID {nic_id} does not exist."),
            ));
        };
        let mut rest = all;
        let gone = rest.remove(at);
        let t = with_nics(t, rest);
        let mut stmts = vec![objects::replace_template(
            objects::vrouter::TABLE,
            "template",
            id,
            t.to_text(),
            r.template.clone(),
        )];
        stmts.extend(free_floating(ctx, id, &gone).await?);
        stmts.extend(objects::vrouter::set_networks(
            Some(id),
            &vnics::networks(&t),
        ));
        if let Ok(mut v) = vms_ref.lock() {
            *v = r.vms.clone();
        }
        Ok(stmts)
    })
    .await?;
    let vms = vms.lock().map(|v| v.clone()).unwrap_or_default();
    for vm in vms {
        let args = [Value::Int(vm as i32), Value::Int(nic_id as i32)];
        if let Err(f) = super::vm_nics::detach(ctx, s, Params(&args)).await {
            return Err(as_action(f));
        }
    }
    Ok(Value::Int(id as i32))
}

/// The statement freeing the floating address router `id`'s NIC `nic` holds, if its network
/// still has the range it came from (`release_network_leases`, by VROUTER_MAC).
async fn free_floating(
    ctx: &Ctx,
    id: i64,
    nic: &[(String, String)],
) -> Result<Option<SqlStmt>, Failure> {
    let (Ok(vnet), Ok(arid)) = (
        get(nic, "NETWORK_ID").parse::<i64>(),
        get(nic, "AR_ID").parse::<i64>(),
    ) else {
        return Ok(None);
    };
    let Ok(v) = super::vnet::NETS.get(ctx, vnet).await else {
        return Ok(None);
    };
    let Ok(t) = Template::parse(&v.template) else {
        return Ok(None);
    };
    let idx = super::address_range::ranges(&t)
        .into_iter()
        .find(|r| r.id == arid)
        .and_then(|r| r.index_of_mac(get(nic, "VROUTER_MAC")));
    Ok(idx.map(|idx| {
        let mut stmt = lease::free(vnet, arid, idx as i64, Holder::Vrouter, id);
        stmt.must_match = false;
        stmt
    }))
}

/// `VirtualNetworkInfo::to_xml`: a caller without MANAGE on the network sees in its VROUTERS
/// only the routers it may use (`use_filter` of VROUTER).
pub(super) async fn only_visible_routers(
    ctx: &Ctx,
    s: &Session,
    v: &mut sqlstore::objects::vnet::VnetRow,
    manages: bool,
) {
    if v.vrouters.is_empty() || manages {
        return;
    }
    let mut kept = Vec::new();
    for r in &v.vrouters {
        if VROUTERS
            .authorized(ctx, s, *r, USE | perms::NO_LOCK)
            .await
            .is_ok()
        {
            kept.push(*r);
        }
    }
    v.vrouters = kept;
}

/// `VirtualMachine::is_vrouter`: VROUTER_ID names a router.
fn runs_a_router(vm: &sqlstore::objects::vm::VmRow) -> bool {
    Template::parse(&vm.template)
        .ok()
        .and_then(|t| {
            t.single("VROUTER_ID")
                .map(|v| v.trim().parse::<i64>().is_ok_and(|id| id != -1))
        })
        .unwrap_or(false)
}

fn router_vm_refused() -> Failure {
    fail(
        code::ACTION,
        "Action is not supported for virtual router VMs",
    )
}

/// OpenNebula's refusal of a NIC call on one of a router's VMs (`VirtualMachineAttachNic`...):
/// ACTION, after NO_EXISTS for a VM that is not there.
async fn not_a_router_vm(ctx: &Ctx, p: &Params<'_>) -> Result<(), Failure> {
    let vm = super::vm::VMS.get(ctx, p.int(0)? as i64).await?;
    if runs_a_router(&vm) {
        return Err(router_vm_refused());
    }
    Ok(())
}

/// `VirtualMachineAttach`'s first checks, before the caller's rights: NO_EXISTS, then for a
/// router's VM "not running in any host" while it has no host, else the router refusal.
pub(super) async fn refuse_disk_attach(ctx: &Ctx, vm: i64) -> Result<(), Failure> {
    let v = super::vm::VMS.get(ctx, vm).await?;
    // `VirtualMachineAttach` asks this of every VM, before anything else.
    if v.history.is_empty() {
        return Err(fail(code::ACTION, "VM is not running in any host"));
    }
    if !runs_a_router(&v) {
        return Ok(());
    }
    Err(router_vm_refused())
}

/// `VirtualMachineDetach`'s refusal of a router's VM, checked after the caller's rights.
pub(super) async fn refuse_disk_detach(ctx: &Ctx, vm: i64) -> Result<(), Failure> {
    if runs_a_router(&super::vm::VMS.get(ctx, vm).await?) {
        return Err(router_vm_refused());
    }
    Ok(())
}

/// `one.vm.attachnic`, refused on a router's VM.
pub async fn vm_attach_nic(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    not_a_router_vm(ctx, &p).await?;
    super::vm_nics::attach(ctx, s, p).await
}

/// `one.vm.detachnic`, refused on a router's VM.
pub async fn vm_detach_nic(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    not_a_router_vm(ctx, &p).await?;
    super::vm_nics::detach(ctx, s, p).await
}

/// `one.vm.updatenic`, refused on a router's VM.
pub async fn vm_update_nic(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    not_a_router_vm(ctx, &p).await?;
    super::vm_nics::update(ctx, s, p).await
}
