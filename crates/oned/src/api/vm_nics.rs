//! `one.vm.attachnic` and `one.vm.detachnic`, as OpenNebula's `DispatchManager::attach_nic` /
//! `detach_nic`: on a RUNNING VM the NIC is hot-plugged (HOTPLUG_NIC until the leader's dummy
//! driver finishes, `crate::scheduler`), on a POWEROFF one it is attached or detached at once.
//! An attached NIC leases its address in the same write; a detached one frees it.

use sqlstore::objects::lease::{self, Holder, OwnerRef};
use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::SqlStmt;
use template::Template;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::quota::{Ask, Wording};
use super::vm::{lcm, now, state, VMS};
use super::vm_actions::number;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

/// Whether `a` is one of a VM's NICs as OpenNebula counts them for leases, security groups and
/// authorization: a NIC, a NIC_ALIAS, or a PCI device of TYPE = NIC (as written: 7.0.2 compares
/// the value as it is).
pub fn is_nic(a: &template::Attribute) -> bool {
    match a.name.as_str() {
        "NIC" | "NIC_ALIAS" => true,
        "PCI" => a.vector_get("TYPE") == Some("NIC"),
        _ => false,
    }
}

/// A template's NICs in `VirtualMachineNics`' order: the NICs, the PCI devices of TYPE = NIC,
/// the aliases.
pub fn nics_of(t: &Template) -> impl Iterator<Item = &template::Attribute> {
    t.get_all("NIC")
        .chain(t.get_all("PCI").filter(|a| is_nic(a)))
        .chain(t.get_all("NIC_ALIAS"))
}

pub const METHODS: &[Method] = &[
    // A virtual router's VMs change their NICs through the router only.
    method!(
        "one.vm.attachnic",
        Write,
        Auth::Object,
        super::vrouter::vm_attach_nic
    ),
    method!(
        "one.vm.detachnic",
        Write,
        Auth::Object,
        super::vrouter::vm_detach_nic
    ),
    method!(
        "one.vm.updatenic",
        Write,
        Auth::Object,
        super::vrouter::vm_update_nic
    ),
];

/// `VirtualMachine::state_str`: the LCM state of an ACTIVE VM, the VM state otherwise.
pub fn state_str(v: &VmRow) -> &'static str {
    if v.state == state::ACTIVE {
        wire::LcmState::from_i64(v.lcm_state).map_or("UNKNOWN", wire::LcmState::name)
    } else {
        wire::VmState::from_i64(v.state).map_or("UNKNOWN", wire::VmState::name)
    }
}

/// RUNNING (hot-plug) or POWEROFF (at once): the states a NIC is attached or detached in.
fn nic_states(v: &VmRow) -> Option<bool> {
    match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) => Some(true),
        (state::POWEROFF, lcm::INIT) => Some(false),
        _ => None,
    }
}

fn stored(v: &VmRow) -> Result<Template, Failure> {
    Template::parse(&v.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The template's write, guarded by the text read, and the hot-plug state move of a running
/// VM (a concurrent change of either refuses the write, which is then computed again).
fn write_vm(v: &VmRow, t: &Template, running: bool) -> Vec<SqlStmt> {
    let mut stmts = vec![sqlstore::objects::replace_template(
        rows::TABLE,
        "template",
        v.head.owned.oid,
        t.to_text(),
        v.template.clone(),
    )];
    if running {
        stmts.extend(rows::move_stmts(&Move {
            oid: v.head.owned.oid,
            from: (v.state, v.lcm_state),
            to: (state::ACTIVE, wire::LcmState::HotplugNic.as_i64()),
            now: now(),
            leaves_host: false,
        }));
        // A NIC plugged into (or out of) a running VM ends any rescheduling.
        stmts.push(rows::clear_resched(v.head.owned.oid));
    }
    stmts
}

/// `one.vm.attachnic(id, template)`: the template's NIC (or NIC_ALIAS) joins the VM with the
/// next NIC_ID and an address of its network, under the owner's NETWORK quota.
pub async fn attach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "nic-attach", MANAGE).await?,
    )
    .await?;
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    super::restricted::refuse_in_vm(ctx, s, &tmpl, "NIC")?;
    let (kind, pairs) = ["NIC", "NIC_ALIAS"]
        .iter()
        .find_map(|k| {
            tmpl.get_all(k)
                .find_map(|a| a.value.as_vector())
                .map(|p| (*k, p.to_vec()))
        })
        .ok_or_else(|| {
            fail(
                code::ACTION,
                "Could not add a new NIC: the template has no NIC or NIC_ALIAS.",
            )
        })?;
    let (kind, pairs) = (&kind, &pairs);
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "nic-attach", MANAGE).await?,
            )
            .await?;
        let Some(running) = nic_states(&v) else {
            // `VirtualMachineAttachNic` weighs the NETWORK quota before `attach_nic` looks at
            // the VM's state.
            if let Some(vnet) = super::vnet_leases::named_network(ctx, s, pairs).await {
                let ask = Ask::leases(vnet, 1.0);
                let charge = super::quota::Charge {
                    asks: std::slice::from_ref(&ask),
                    uid: v.head.owned.uid,
                    gid: v.head.owned.gid,
                    wording: Wording::Caller(s.uid),
                };
                charge.guard(ctx).await?;
            }
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not add a new NIC to VM {id}, wrong state {}.",
                    state_str(&v)
                ),
            ));
        };
        let mut t = stored(&v)?;
        let next = ["NIC", "NIC_ALIAS"]
            .iter()
            .flat_map(|k| t.get_all(k))
            .filter_map(|a| a.vector_get("NIC_ID"))
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        let mut nic = pairs.clone();
        super::vnet_leases::unclash_name(&mut nic);
        let parent = match *kind == "NIC_ALIAS" {
            true => Some(alias_of(&t, &mut nic, next)?),
            false => None,
        };
        // `set_up_attach_nic`: the VM's NIC_DEFAULT fills what the NIC does not say.
        let default = super::vnet_leases::nic_default(&t).unwrap_or_default();
        super::vnet_leases::merge_default(&mut nic, &default);
        let mut nics = vec![nic];
        let leases = super::vnet_leases::lease_list(ctx, s, &mut nics, next, OwnerRef::Id(id), "")
            .await
            .map_err(|f| match f {
                // A network the caller may not use is refused as the authorization refuses it.
                Failure::Api { code: c, message } if c != code::AUTHORIZATION => {
                    fail(code::ACTION, message)
                }
                other => other,
            })?;
        let [nic] = <[_; 1]>::try_from(nics).map_err(|_| {
            fail(
                code::INTERNAL,
                "Could not add a new NIC: nothing was leased",
            )
        })?;
        let before = super::vm_sg_rules::groups_in(&t);
        t.push(kind, template::Value::Vector(nic));
        if let Some((at, ids)) = parent {
            if let Some(template::Value::Vector(p)) = t.attrs.get_mut(at).map(|a| &mut a.value) {
                p.retain(|(k, _)| k != "ALIAS_IDS");
                p.push(("ALIAS_IDS".into(), ids));
                p.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        // `set_up_attach_nic`: a NIC (not an alias) brings the rules of the groups the VM
        // did not have.
        if *kind != "NIC_ALIAS" {
            let added = &super::vm_sg_rules::groups_in(&t) - &before;
            let rules = super::vm_sg_rules::of_groups(ctx, &added).await?;
            super::vm_sg_rules::push(&mut t, rules);
        }
        crate::limits::vm_vectors(&t).map_err(|e| fail(code::ACTION, e))?;
        super::vm_context::refresh_network(ctx, &v, &mut t).await?;
        let mut stmts = write_vm(&v, &t, running);
        let action = if *kind == "NIC_ALIAS" {
            number::ALIAS_ATTACH
        } else {
            number::NIC_ATTACH
        };
        stmts.extend(super::vm_actions::closed_by(s, id, action));
        stmts.extend(leases.stmts);
        let (uid, gid) = (v.head.owned.uid, v.head.owned.gid);
        for (vnet, n) in leases.per_network {
            let ask = Ask::leases(vnet, n);
            let charge = super::quota::Charge {
                asks: std::slice::from_ref(&ask),
                uid,
                gid,
                wording: Wording::Caller(s.uid),
            };
            stmts.extend(charge.guard(ctx).await?);
        }
        Ok(stmts)
    })
    .await
}

/// `VirtualMachineNics::set_up_attach_nic` for an alias numbered `nic_id`: its parent is the
/// first NIC or alias NAMEd as its PARENT (`Alias not found.` otherwise); it is the parent's
/// first alias (ALIAS_ID 0) or one past the VM's highest ALIAS_ID, named
/// `NIC<parent>_ALIAS<nic_id>` unless it has a name. Answers where the parent is in `t` and
/// its ALIAS_IDS with the new one.
fn alias_of(
    t: &Template,
    alias: &mut Vec<(String, String)>,
    nic_id: usize,
) -> Result<(usize, String), Failure> {
    let nic_or_alias = |a: &template::Attribute| a.name == "NIC" || a.name == "NIC_ALIAS";
    let max_alias = t
        .attrs
        .iter()
        .filter(|a| a.name == "NIC_ALIAS")
        .filter_map(|a| a.vector_get("ALIAS_ID")?.trim().parse::<i64>().ok())
        .max()
        .unwrap_or(-1);
    let wanted = template::vector_get(alias, "PARENT")
        .unwrap_or("")
        .to_string();
    let (at, parent) = t
        .attrs
        .iter()
        .enumerate()
        .find(|(_, a)| nic_or_alias(a) && a.vector_get("NAME") == Some(wanted.as_str()))
        .ok_or_else(|| fail(code::ACTION, "Alias not found."))?;
    let pid = parent.vector_get("NIC_ID").unwrap_or("").trim().to_string();
    let ids = parent.vector_get("ALIAS_IDS").unwrap_or("");
    let (alias_id, ids) = if ids.is_empty() {
        (0, nic_id.to_string())
    } else {
        (max_alias + 1, format!("{ids},{nic_id}"))
    };
    if template::vector_get(alias, "NAME").is_none_or(str::is_empty) {
        template::vector_set(alias, "NAME", format!("NIC{pid}_ALIAS{nic_id}"));
    }
    template::vector_set(alias, "PARENT_ID", pid);
    template::vector_set(alias, "ALIAS_ID", alias_id.to_string());
    Ok((at, ids))
}

/// `one.vm.detachnic(id, nic_id)`: the NIC leaves the VM and its address is free again.
pub async fn detach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let nic_id = p.int(1)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "nic-detach", MANAGE).await?,
    )
    .await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "nic-detach", MANAGE).await?,
            )
            .await?;
        let Some(running) = nic_states(&v) else {
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not detach NIC from VM {id}, wrong state {}.",
                    state_str(&v)
                ),
            ));
        };
        let t = stored(&v)?;
        let is_it = |a: &template::Attribute| {
            (a.name == "NIC" || a.name == "NIC_ALIAS")
                && a.vector_get("NIC_ID")
                    .and_then(|n| n.trim().parse::<i64>().ok())
                    == Some(nic_id)
        };
        let Some(nic) = t.attrs.iter().find(|a| is_it(a)).cloned() else {
            return Err(fail(
                code::ACTION,
                format!("Could not detach NIC with NIC_ID {nic_id}, it does not exist."),
            ));
        };
        let mut kept = t.clone();
        kept.attrs.retain(|a| !is_it(a));
        super::vm_context::clear_nic(&mut kept, &nic);
        // `set_detach_nic`: an alias leaves its parent's ALIAS_IDS; a NIC takes its aliases
        // with it (`delete_attach_alias`), their addresses freed too.
        let ids = |a: &template::Attribute, k: &str| -> Vec<i64> {
            a.vector_get(k)
                .unwrap_or("")
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect()
        };
        let mut aliases = Vec::new();
        if nic.name == "NIC_ALIAS" {
            let parent = ids(&nic, "PARENT_ID");
            for a in kept.attrs.iter_mut().filter(|a| a.name == "NIC") {
                if ids(a, "NIC_ID") != parent {
                    continue;
                }
                let mut left = ids(a, "ALIAS_IDS");
                left.retain(|x| *x != nic_id);
                left.sort_unstable();
                left.dedup();
                let joined: Vec<String> = left.iter().map(i64::to_string).collect();
                if let template::Value::Vector(p) = &mut a.value {
                    p.retain(|(k, _)| k != "ALIAS_IDS");
                    p.push(("ALIAS_IDS".into(), joined.join(",")));
                    p.sort_by(|a, b| a.0.cmp(&b.0));
                }
            }
        } else {
            let theirs = ids(&nic, "ALIAS_IDS");
            let of_it = |a: &template::Attribute| {
                a.name == "NIC_ALIAS"
                    && ids(a, "NIC_ID").first().is_some_and(|i| theirs.contains(i))
            };
            aliases = kept.attrs.iter().filter(|a| of_it(a)).cloned().collect();
            kept.attrs.retain(|a| !of_it(a));
            for alias in &aliases {
                super::vm_context::clear_nic(&mut kept, alias);
            }
        }
        // `detach_nic_success`: the groups no NIC names any more go, rules and membership.
        let gone = &super::vm_sg_rules::groups_in(&t) - &super::vm_sg_rules::groups_in(&kept);
        for sgid in &gone {
            super::vm_sg_rules::remove_group(&mut kept, *sgid);
        }
        let mut stmts = write_vm(&v, &kept, running);
        stmts.extend(
            gone.iter()
                .map(|sgid| sqlstore::objects::secgroup::remove_vm(*sgid, id)),
        );
        let action = if nic.name == "NIC_ALIAS" {
            number::ALIAS_DETACH
        } else {
            number::NIC_DETACH
        };
        stmts.extend(super::vm_actions::closed_by(s, id, action));
        if let Some(free) = free_nic(ctx, id, &nic).await? {
            stmts.push(free);
        }
        for alias in &aliases {
            stmts.extend(free_nic(ctx, id, alias).await?);
        }
        Ok(stmts)
    })
    .await
}

/// The statement that frees the address NIC `nic` of VM `vid` holds, if its network still
/// has the range it came from.
async fn free_nic(
    ctx: &Ctx,
    vid: i64,
    nic: &template::Attribute,
) -> Result<Option<SqlStmt>, Failure> {
    let num = |k: &str| nic.vector_get(k).and_then(|n| n.trim().parse::<i64>().ok());
    let (Some(vnet), Some(arid)) = (num("NETWORK_ID"), num("AR_ID")) else {
        return Ok(None);
    };
    let Ok(v) = super::vnet::NETS.get(ctx, vnet).await else {
        return Ok(None);
    };
    let Ok(t) = Template::parse(&v.template) else {
        return Ok(None);
    };
    let mac = nic.vector_get("MAC").unwrap_or("").to_string();
    let idx = super::address_range::ranges(&t)
        .into_iter()
        .find(|r| r.id == arid)
        .and_then(|r| r.index_of_mac(&mac));
    Ok(idx.map(|idx| {
        let mut stmt = lease::free(vnet, arid, idx as i64, Holder::Vm, vid);
        // Already free (a forced range removal): nothing to undo.
        stmt.must_match = false;
        stmt
    }))
}

/// The NIC attributes `one.vm.updatenic` changes (`VirtualMachine::nic_update`).
const UPDATE_ATTRIBUTES: [&str; 6] = [
    "INBOUND_AVG_BW",
    "INBOUND_PEAK_BW",
    "INBOUND_PEAK_KB",
    "OUTBOUND_AVG_BW",
    "OUTBOUND_PEAK_BW",
    "OUTBOUND_PEAK_KB",
];

/// `one.vm.updatenic(id, nic_id, template, append)`: the NIC's bandwidth attributes take the
/// template's (merged into them with `append`); a RUNNING VM applies them live (HOTPLUG_NIC).
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let nic_id = p.int(1)? as i64;
    let text = p.string(2)?.to_string();
    let append = match p.0.get(3) {
        Some(_) => p.int(3)? != 0,
        None => false,
    };
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "nic-update", MANAGE).await?,
        )
        .await?;
    let find = |t: &Template| {
        t.attrs
            .iter()
            .find(|a| {
                (a.name == "NIC" || a.name == "NIC_ALIAS")
                    && a.vector_get("NIC_ID")
                        .and_then(|n| n.trim().parse::<i64>().ok())
                        == Some(nic_id)
            })
            .map(|a| a.name.clone())
    };
    match find(&stored(&v)?).as_deref() {
        None => {
            return Err(fail(
                code::ACTION,
                format!("VM {id}: NIC {nic_id} does not exists"),
            ))
        }
        Some("NIC_ALIAS") => return Err(fail(code::ACTION, "Action not supported for NIC_ALIAS")),
        Some(_) => {}
    }
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    super::restricted::refuse_in_vm(ctx, s, &tmpl, "NIC")?;
    let prefix = format!("Error updating NIC ({nic_id}) for VM {id}: ");
    let Some(new) = tmpl.get_all("NIC").find_map(|a| a.value.as_vector()) else {
        return Err(fail(
            code::ACTION,
            format!("{prefix}Wrong NIC definition, attribute is missing"),
        ));
    };
    let (new, prefix) = (&new.to_vec(), &prefix);
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "nic-update", MANAGE).await?,
            )
            .await?;
        let live = match (v.state, v.lcm_state) {
            (state::ACTIVE, lcm::RUNNING) => true,
            (state::ACTIVE, _) => {
                return Err(fail(
                    code::ACTION,
                    format!("{prefix}Wrong state {}", state_str(&v)),
                ))
            }
            _ => false,
        };
        let mut t = stored(&v)?;
        let Some(a) = t.attrs.iter_mut().find(|a| {
            a.name == "NIC"
                && a.vector_get("NIC_ID")
                    .and_then(|n| n.trim().parse::<i64>().ok())
                    == Some(nic_id)
        }) else {
            return Err(fail(code::ACTION, format!("{prefix}NIC does not exist")));
        };
        let template::Value::Vector(pairs) = &mut a.value else {
            return Err(fail(code::ACTION, format!("{prefix}NIC does not exist")));
        };
        let wanted: Vec<(String, String)> = if append {
            let mut merged: Vec<(String, String)> = pairs.clone();
            for (k, val) in new {
                merged.retain(|(n, _)| n != k);
                merged.push((k.clone(), val.clone()));
            }
            merged
        } else {
            new.clone()
        };
        let mut changed = 0;
        for k in UPDATE_ATTRIBUTES {
            let old = template::vector_get(pairs, k).map(str::to_string);
            let want = template::vector_get(&wanted, k).map(str::to_string);
            if old != want {
                changed += 1;
                pairs.retain(|(n, _)| n != k);
                if let Some(want) = want {
                    pairs.push((k.to_string(), want));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if changed == 0 {
            // Nothing to change: OpenNebula answers success and leaves the VM as it is.
            return Ok(vec![sqlstore::objects::touch(rows::TABLE, id)]);
        }
        let mut stmts = write_vm(&v, &t, live);
        // Only an update applied live closes the record (`DispatchManager::update_nic`).
        if live {
            stmts.extend(super::vm_actions::closed_by(s, id, number::NIC_UPDATE));
        }
        Ok(stmts)
    })
    .await
}
