//! `one.vm.resize(id, template, enforce)`, as OpenNebula's `VirtualMachineResize` and
//! `DispatchManager::resize`: CPU, VCPU and MEMORY change under the owner's VM quotas (the
//! deltas, RUNNING_* too for a VM that counts as running), on its host's capacity when it is
//! placed (checked unless an administrator turns `enforce` off); a RUNNING VM is resized live
//! (HOTPLUG_RESIZE until the leader's dummy driver is done).

use sqlstore::objects::vm::{self as rows, Move, VmRow};

use template::Template;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::quota::{Ask, Charge, Wording};
use super::vm::{lcm, now, state, VMS};
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!("one.vm.resize", Write, Auth::Object, resize)];

/// A number the template gives, 0 when absent (OpenNebula's `tmpl.get` leaves it so).
fn number<T: std::str::FromStr + Default>(t: &Template, k: &str) -> Result<T, ()> {
    match t.single(k).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        Some(v) => v.parse().map_err(|_| ()),
    }
}

/// `VirtualMachineManager::is_live_resize`: the VM driver's LIVE_RESIZE in oned.conf's
/// VM_MAD, or as OpenNebula ships them (kvm and qemu) when oned.conf defines none.
fn live_resize(ctx: &Ctx, vm_mad: &str) -> bool {
    super::ds_conf::vm_mad_says(&ctx.config.raw, vm_mad, "LIVE_RESIZE")
}

pub async fn resize(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let admin = s.is_admin();
    let enforce = match (admin, p.0.len() > 2) {
        (true, true) => p.opt_bool(2)?.unwrap_or(true),
        _ => !admin,
    };
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "resize", MANAGE).await?,
        )
        .await?;
    super::restricted::refuse_in_vm(ctx, s, &tmpl, "Template")?;
    let cpu: f64 = number(&tmpl, "CPU")
        .ok()
        .filter(|c: &f64| *c >= 0.0 && c.is_finite())
        .ok_or_else(|| {
            fail(
                code::INTERNAL,
                "CPU must be a positive float or integer value.",
            )
        })?;
    let memory: i64 = number(&tmpl, "MEMORY")
        .ok()
        .filter(|m: &i64| *m >= 0)
        .ok_or_else(|| fail(code::INTERNAL, "MEMORY must be a positive integer value."))?;
    let vcpu: i64 = number(&tmpl, "VCPU")
        .ok()
        .filter(|v: &i64| *v >= 0)
        .ok_or_else(|| fail(code::INTERNAL, "VCPU must be a positive integer value."))?;
    let (cpu, memory) = (
        if cpu == 0.0 { v.cpu } else { cpu },
        if memory == 0 { v.memory } else { memory },
    );
    let old = Template::parse(&v.template).unwrap_or_default();
    let old_vcpu: i64 = number(&old, "VCPU").unwrap_or(0);
    let vcpu = if vcpu == 0 { old_vcpu } else { vcpu };

    let running_quota = matches!(v.state, state::PENDING | state::HOLD)
        || (v.state == state::ACTIVE && v.lcm_state == lcm::RUNNING);
    let (dcpu, dmem) = (cpu - v.cpu, (memory - v.memory) as f64);
    let mut amounts = vec![("CPU", dcpu), ("MEMORY", dmem)];
    if running_quota {
        amounts.extend([("RUNNING_CPU", dcpu), ("RUNNING_MEMORY", dmem)]);
    }
    let ask = Ask::vm(amounts).within(super::quota::cluster_of(&v));
    let charge = Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: Wording::Caller(s.uid),
    };
    // `quota_resize_authorization` comes before `DispatchManager::resize`'s checks.
    let guard = charge.guard(ctx).await?;

    let (placed, live) = match (v.state, v.lcm_state) {
        (
            state::PENDING
            | state::HOLD
            | state::UNDEPLOYED
            | state::CLONING
            | state::CLONING_FAILURE
            | state::VM_INIT,
            _,
        ) => (false, false),
        (state::POWEROFF, _) => (true, false),
        (state::ACTIVE, lcm::RUNNING) => {
            // `DispatchManager::resize`: a pinned VM, then a driver without LIVE_RESIZE.
            let t = template::Template::parse(&v.template).unwrap_or_default();
            let pinned = t
                .vector("TOPOLOGY")
                .and_then(|tp| template::vector_get(tp, "PIN_POLICY"))
                .is_some_and(super::vm_topology::pinned);
            if pinned {
                return Err(fail(code::ACTION, "Cannot resize a pinned VM"));
            }
            let vm_mad = v.history.last().map_or("", |h| h.vm_mad.as_str());
            if !live_resize(ctx, vm_mad) {
                return Err(fail(
                    code::ACTION,
                    format!("Hotplug resize not supported by driver {vm_mad}"),
                ));
            }
            if v.cpu == cpu && v.memory == memory && old_vcpu == vcpu {
                // "Nothing to resize": OpenNebula answers success and changes nothing.
                return Ok(xmlrpc::Value::Int(id as i32));
            }
            (true, true)
        }
        _ => {
            return Err(fail(
                code::ACTION,
                format!("Cannot resize a VM in state {}", state_str(&v)),
            ))
        }
    };
    if placed && enforce {
        room(ctx, &v, cpu, memory).await?;
    }
    let mut stmts = vec![rows::resize_stmt(
        id,
        (v.state, v.lcm_state),
        (v.cpu, v.memory),
        (cpu, memory),
    )];
    if vcpu != old_vcpu {
        let mut t = old.clone();
        t.set("VCPU", template::Value::Single(vcpu.to_string()));
        stmts.push(sqlstore::objects::replace_template(
            rows::TABLE,
            "template",
            id,
            t.to_text(),
            v.template.clone(),
        ));
    }
    if placed {
        let action = super::vm_actions::number::RESIZE;
        stmts.extend(super::vm_actions::closed_by(s, id, action));
        stmts.push(rows::recount_vm_host(id));
        if enforce {
            stmts.push(rows::host_fits(id));
        }
    }
    if live {
        stmts.extend(rows::move_stmts(&Move {
            oid: id,
            from: (v.state, v.lcm_state),
            to: (state::ACTIVE, lcm::HOTPLUG_RESIZE),
            now: now(),
            leaves_host: false,
        }));
        stmts.push(rows::clear_resched(id));
    }
    super::quota::commit_guarded(ctx, stmts, Some(charge), guard, |r| {
        r.missing(fail(
            code::ACTION,
            "Cannot resize the VM: it or its host changed meanwhile, try again",
        ))
    })
    .await?;
    Ok(xmlrpc::Value::Int(id as i32))
}

/// `HostShare::test_compute` for the VM's host once the VM has its new size: OpenNebula's
/// `Not enough CPU: <asked>/<free>` (CPU in hundredths) or `Not enough memory: ...` (KB).
async fn room(ctx: &Ctx, v: &VmRow, cpu: f64, memory: i64) -> Result<(), Failure> {
    let Some(hid) = v.history.last().map(|h| h.hid) else {
        return Ok(());
    };
    let free = ctx
        .read(move |c| sqlstore::objects::host::free_capacity(c, hid))
        .await?;
    let Some((free_cpu, free_mem)) = free else {
        return Err(fail(code::ACTION, "Could not update host"));
    };
    // What the VM holds now is given back before the new size is tested.
    let (want_cpu, want_mem) = ((cpu * 100.0).round() as i64, memory * 1024);
    let (free_cpu, free_mem) = (
        free_cpu + (v.cpu * 100.0).round() as i64,
        free_mem + v.memory * 1024,
    );
    if want_cpu > free_cpu {
        return Err(fail(
            code::ACTION,
            format!("Not enough CPU: {want_cpu}/{free_cpu}"),
        ));
    }
    if want_mem > free_mem {
        return Err(fail(
            code::ACTION,
            format!("Not enough memory: {want_mem}/{free_mem}"),
        ));
    }
    Ok(())
}
