//! NICs whose network the scheduler chooses (`NETWORK_MODE = auto`), as OpenNebula keeps them: a
//! new VM's auto NIC gets a NIC_ID and a NAME but no network and no address
//! (`VirtualMachineNics::get_network_leases` skips it), the scheduler keeps per NIC the networks
//! its owner may USE that meet its requirements (`crate::sched_nets`), and the deployment names
//! one network per NIC (`one.vm.deploy`'s NIC template, `NIC = [NIC_ID, NETWORK_ID]`), which
//! `VirtualMachine::get_auto_network_leases` leases there.

use sqlstore::objects::lease::{Holder, OwnerRef};
use sqlstore::objects::vm::VmRow;
use sqlstore::SqlStmt;
use template::{Template, Value};

use super::quota::{Ask, Charge, Wording};
use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

type Pairs = Vec<(String, String)>;

/// `VirtualMachineNic::is_auto`.
pub fn is_auto(nic: &[(String, String)]) -> bool {
    template::vector_get(nic, "NETWORK_MODE").is_some_and(|m| m.trim().eq_ignore_ascii_case("AUTO"))
}

/// An auto NIC of a VM and what it asks of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoNic {
    pub nic_id: i64,
    /// AUTOMATIC_NIC_REQUIREMENTS and the NIC's SCHED_REQUIREMENTS (`build_requirements`).
    pub requirements: String,
    /// The NIC's SCHED_RANK; empty for the default policy.
    pub rank: String,
}

/// `VirtualMachineNics::get_auto_nics` of a VM's template, NIC_ID order, but for the NICs that
/// already have a network (a VM deployed before, recreated: its NICs keep their addresses, and
/// naming them again would only be refused, `NIC_ID n not AUTO`).
pub fn auto_nics(t: &Template) -> Vec<AutoNic> {
    let automatic = t.single("AUTOMATIC_NIC_REQUIREMENTS").unwrap_or("");
    let mut out: Vec<AutoNic> = t
        .get_all("NIC")
        .filter_map(|a| a.value.as_vector())
        .filter(|nic| is_auto(nic))
        .filter(|nic| template::vector_get(nic, "NETWORK_ID").is_none_or(|n| n.trim().is_empty()))
        .filter_map(|nic| {
            let get = |k: &str| {
                template::vector_get(nic, k)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            Some(AutoNic {
                nic_id: get("NIC_ID").parse().ok()?,
                requirements: crate::sched_expr::build_requirements(
                    automatic,
                    &get("SCHED_REQUIREMENTS"),
                ),
                rank: get("SCHED_RANK"),
            })
        })
        .collect();
    out.sort_by_key(|n| n.nic_id);
    out
}

/// `one.vm.deploy`'s NIC template: `(NIC_ID, NETWORK_ID)` of each NIC, as
/// `get_auto_network_leases` reads them (a NIC without a NIC_ID names NIC -1, found nowhere).
pub fn chosen(tmpl: &Template) -> Vec<(i64, String)> {
    tmpl.get_all("NIC")
        .filter_map(|a| a.value.as_vector())
        .map(|nic| {
            let get = |k: &str| {
                template::vector_get(nic, k)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            (get("NIC_ID").parse().unwrap_or(-1), get("NETWORK_ID"))
        })
        .collect()
}

/// `VirtualMachineDeploy`'s checks of its NIC template before the VM's state: for a caller that
/// is not an administrator no restricted NIC attribute (`NIC includes a restricted attribute
/// NIC`), the owner's NETWORK quotas for the networks it names, and USE of the networks of its
/// NICs not in auto mode; each refused as AUTHORIZATION.
pub async fn authorize(ctx: &Ctx, s: &Session, v: &VmRow, tmpl: &Template) -> Result<(), Failure> {
    if !s.is_admin() {
        let ras = super::restricted::vm(ctx);
        let nic_only: Vec<_> = ras.into_iter().filter(|(name, _)| name == "NIC").collect();
        if let Some(name) = super::restricted::change_of(&nic_only, tmpl, &Template::default()) {
            return Err(fail(
                code::AUTHORIZATION,
                format!("NIC includes a restricted attribute {name}"),
            ));
        }
    }
    let mut per_network: Vec<(i64, f64)> = Vec::new();
    let mut used: Vec<i64> = Vec::new();
    for nic in tmpl.get_all("NIC").filter_map(|a| a.value.as_vector()) {
        let Some(vnet) =
            template::vector_get(nic, "NETWORK_ID").and_then(|n| n.trim().parse::<i64>().ok())
        else {
            continue;
        };
        super::vnet_leases::count(&mut per_network, vnet, 1.0);
        if !is_auto(nic) {
            used.push(vnet);
        }
    }
    network_quotas(ctx, v, per_network, Wording::Caller(s.uid)).await?;
    for vnet in used {
        super::vnet::NETS
            .authorized(ctx, s, vnet, super::perms::USE)
            .await?;
    }
    Ok(())
}

/// `VirtualMachine::get_auto_network_leases`: each chosen NIC must be an auto NIC of `v` without
/// a network yet (ACTION `NIC_ID n not found`, `NIC_ID n not AUTO`); it takes that network, and
/// every auto NIC with a network but no address then leases one there as a new VM's NIC does, by
/// `s`'s rights, under the owner's NETWORK quota (`wording` words its refusal). Other refusals
/// are ACTION, in `nic_attribute`'s words. The statements write the VM's template (guarded by the
/// text read), take the addresses and hold the owner's quotas.
pub async fn lease(
    ctx: &Ctx,
    s: &Session,
    v: &VmRow,
    chosen: &[(i64, String)],
    wording: Wording,
) -> Result<Vec<SqlStmt>, Failure> {
    let mut t = Template::parse(&v.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })?;
    let mut nics: Vec<Pairs> = t
        .get_all("NIC")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    let id_of = |nic: &Pairs| {
        template::vector_get(nic, "NIC_ID").and_then(|n| n.trim().parse::<i64>().ok())
    };
    for (nic_id, network) in chosen {
        let Some(nic) = nics.iter_mut().find(|n| id_of(n) == Some(*nic_id)) else {
            return Err(fail(code::ACTION, format!("NIC_ID {nic_id} not found")));
        };
        let has_network = template::vector_get(nic, "NETWORK_ID").is_some_and(|n| !n.is_empty());
        if !is_auto(nic) || has_network {
            return Err(fail(code::ACTION, format!("NIC_ID {nic_id} not AUTO")));
        }
        nic.retain(|(k, _)| !k.eq_ignore_ascii_case("NETWORK_ID"));
        nic.push(("NETWORK_ID".into(), network.clone()));
    }
    let default = super::vnet_leases::nic_default(&t).unwrap_or_default();
    let vid = v.head.owned.oid;
    let mut stmts = Vec::new();
    let mut per_network: Vec<(i64, f64)> = Vec::new();
    let mut picked = super::vnet_leases::Picked::new();
    for nic in nics.iter_mut() {
        let Some(nic_id) = id_of(nic).filter(|_| is_auto(nic)) else {
            continue;
        };
        // An auto NIC that holds an address already (a VM recreated) keeps it; oned would
        // lease it again and leave the first address taken.
        if template::vector_get(nic, "AR_ID").is_some_and(|a| !a.trim().is_empty()) {
            continue;
        }
        super::vnet_leases::merge_default(nic, &default);
        let leased = super::vnet_leases::lease_list_picking(
            ctx,
            s,
            std::slice::from_mut(nic),
            nic_id as usize,
            Holder::Vm,
            OwnerRef::Id(vid),
            "",
            &mut picked,
        )
        .await
        .map_err(|f| match f {
            Failure::Api { message, .. } => fail(code::ACTION, message),
            other => other,
        })?;
        stmts.extend(leased.stmts);
        for (vnet, n) in leased.per_network {
            super::vnet_leases::count(&mut per_network, vnet, n);
        }
    }
    let before = super::vm_sg_rules::groups_in(&t);
    t.remove("NIC");
    for nic in nics {
        t.push("NIC", Value::Vector(nic));
    }
    // `get_auto_network_leases`: the rules of the groups the networks chosen bring.
    let added = &super::vm_sg_rules::groups_in(&t) - &before;
    let rules = super::vm_sg_rules::of_groups(ctx, &added).await?;
    super::vm_sg_rules::push(&mut t, rules);
    // `get_auto_network_leases` ends with the network CONTEXT of every NIC.
    super::vm_context::refresh_network(ctx, v, &mut t).await?;
    stmts.insert(
        0,
        sqlstore::objects::replace_template(
            sqlstore::objects::vm::TABLE,
            "template",
            vid,
            t.to_text(),
            v.template.clone(),
        ),
    );
    stmts.extend(network_quotas(ctx, v, per_network, wording).await?);
    Ok(stmts)
}

/// The guards of the owner of `v`'s NETWORK quotas for `per_network` more addresses (network,
/// count), refused in `wording`.
async fn network_quotas(
    ctx: &Ctx,
    v: &VmRow,
    per_network: Vec<(i64, f64)>,
    wording: Wording,
) -> Result<Vec<SqlStmt>, Failure> {
    let (uid, gid) = (v.head.owned.uid, v.head.owned.gid);
    let mut guards = Vec::new();
    for (vnet, n) in per_network {
        let ask = Ask::leases(vnet, n);
        let charge = Charge {
            asks: std::slice::from_ref(&ask),
            uid,
            gid,
            wording,
        };
        guards.extend(charge.guard(ctx).await?);
    }
    Ok(guards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_nics_carry_their_requirements_and_rank_in_nic_id_order() {
        let t = Template::parse(
            r#"AUTOMATIC_NIC_REQUIREMENTS = "(CLUSTERS/ID = 0)"
NIC = [ NIC_ID = "1", NETWORK_MODE = "auto", SCHED_REQUIREMENTS = "VLAN = yes", SCHED_RANK = "- USED_LEASES" ]
NIC = [ NIC_ID = "0", NETWORK_MODE = "AUTO" ]
NIC = [ NIC_ID = "2", NETWORK_ID = "3" ]
NIC = [ NIC_ID = "3", NETWORK_MODE = "auto", NETWORK_ID = "3" ]"#,
        )
        .unwrap();
        let nics = auto_nics(&t);
        assert_eq!(nics.len(), 2);
        assert_eq!(nics[0].nic_id, 0);
        assert_eq!(nics[0].requirements, "(CLUSTERS/ID = 0)");
        assert_eq!(nics[1].requirements, "(CLUSTERS/ID = 0) & ( VLAN = yes )");
        assert_eq!(nics[1].rank, "- USED_LEASES");
    }

    #[test]
    fn the_deploy_template_names_nic_and_network_or_nic_minus_one() {
        let t = Template::parse(
            r#"NIC = [ NIC_ID = "0", NETWORK_ID = "5" ]
NIC = [ NETWORK_ID = "6" ]"#,
        )
        .unwrap();
        assert_eq!(chosen(&t), vec![(0, "5".into()), (-1, "6".into())]);
    }
}
