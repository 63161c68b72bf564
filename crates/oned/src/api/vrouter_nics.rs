//! The NICs of a virtual router (`VirtualRouter::get_network_leases`, `attach_nic`,
//! `prepare_nic_vm`): what a router's NIC holds, and the NIC its VMs are given.
//!
//! A floating NIC (`FLOATING_IP = YES`) leases an address for the router itself. As in
//! OpenNebula, the router's NIC keeps only what `VirtualNetwork::vrouter_nic_attribute` and the
//! range put there (NIC_ID, NETWORK, NETWORK_ID, the address, AR_ID and the range's own VN_MAD,
//! BRIDGE, PHYDEV, VLAN_ID), its addresses renamed `VROUTER_*` and the NIC attributes of
//! `VM_RESTRICTED_ATTR` taken out: the VMs that copy it take their own address, and a user who
//! may not set a restricted attribute can still instantiate the router.

use sqlstore::objects::{self, lease::Holder, lease::OwnerRef};
use sqlstore::SqlStmt;
use template::{Template, Value as TValue};

use super::perms::USE;
use super::quota::Ask;
use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

pub(super) type Pairs = Vec<(String, String)>;

/// The NIC vectors of `t`, in order.
pub(super) fn nics(t: &Template) -> Vec<Pairs> {
    t.get_all("NIC")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect()
}

pub(super) fn set_attr(nic: &mut Pairs, k: &str, v: String) {
    nic.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
    nic.push((k.to_string(), v));
}

pub(super) fn get<'a>(nic: &'a [(String, String)], k: &str) -> &'a str {
    template::vector_get(nic, k).unwrap_or("").trim()
}

fn floating(nic: &[(String, String)]) -> bool {
    get(nic, "FLOATING_IP").eq_ignore_ascii_case("YES")
}

/// The networks `t`'s NICs are in (`VirtualNetwork::vrouters` holds the router in each).
pub(super) fn networks(t: &Template) -> Vec<i64> {
    nics(t)
        .iter()
        .filter_map(|n| get(n, "NETWORK_ID").parse::<i64>().ok())
        .collect()
}

/// `VirtualMachineTemplate::restricted_nic`: the `NIC/...` keys of `VM_RESTRICTED_ATTR`.
pub(super) fn restricted_nic(ctx: &Ctx) -> Vec<String> {
    nic_keys(&super::restricted::vm_names(ctx))
}

fn nic_keys(all: &[String]) -> Vec<String> {
    all.iter()
        .filter_map(|r| r.strip_prefix("NIC/").map(str::to_string))
        .collect()
}

/// `prepare_nic_vm`: a floating NIC keeps its addresses as the router's (`VROUTER_IP`...) and
/// loses the restricted attributes, so that each VM takes its own address from the network.
pub(super) fn prepare_nic_vm(nic: &mut Pairs, restricted: &[String]) {
    if !floating(nic) {
        return;
    }
    for k in ["MAC", "IP", "IP6_LINK", "IP6_ULA", "IP6_GLOBAL", "VLAN_ID"] {
        if let Some(v) = template::vector_get(nic, k).map(str::to_string) {
            nic.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            set_attr(nic, &format!("VROUTER_{k}"), v);
        }
    }
    nic.retain(|(n, _)| !restricted.iter().any(|r| n.eq_ignore_ascii_case(r)));
}

/// What leasing a router's NICs makes: the statements taking the floating addresses, and how
/// many each network gives (the router owner's NETWORK quota, `QuotaNetworkVirtualRouter`).
pub(super) struct RouterLeases {
    pub stmts: Vec<SqlStmt>,
    pub asks: Vec<Ask>,
}

/// `VirtualNetworkPool::nic_attribute` for a router (`vrouter_nic_attribute`): each NIC gets
/// its NIC_ID (from `first_id`); one naming a network gets NETWORK and NETWORK_ID, and a
/// floating one an address of it held by `owner`. The caller must USE each network.
pub(super) async fn lease_router_nics(
    ctx: &Ctx,
    s: &Session,
    nics: &mut [Pairs],
    first_id: usize,
    owner: OwnerRef<'static>,
    prefix: &str,
) -> Result<RouterLeases, Failure> {
    let mut out = RouterLeases {
        stmts: Vec::new(),
        asks: Vec::new(),
    };
    let restricted = restricted_nic(ctx);
    let err = |e: String| fail(code::INTERNAL, format!("{prefix}{e}"));
    // Addresses the earlier floating NICs took: two on one network must not pick the same.
    let mut picked = super::vnet_leases::Picked::new();
    for (n, nic) in nics.iter_mut().enumerate() {
        let nic_id = first_id + n;
        if get(nic, "NETWORK_MODE").eq_ignore_ascii_case("AUTO") {
            return Err(err("Virtual Router is incompatible with auto mode".into()));
        }
        if floating(nic) {
            let asked = nic.clone();
            let one = std::slice::from_mut(nic);
            let leased = super::vnet_leases::lease_list_picking(
                ctx,
                s,
                one,
                nic_id,
                Holder::Vrouter,
                owner,
                prefix,
                &mut picked,
            )
            .await?;
            out.stmts.extend(leased.stmts);
            out.asks.extend(
                leased
                    .per_network
                    .into_iter()
                    .map(|(vnet, count)| Ask::leases(vnet, count)),
            );
            *nic = router_lease(ctx, asked, nic).await;
        } else {
            set_attr(nic, "NIC_ID", nic_id.to_string());
            if let Some(vid) = network_of(ctx, s, nic).await.map_err(err)? {
                let v = match super::vnet::NETS.authorized(ctx, s, vid, USE).await {
                    Ok(v) => v,
                    Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => {
                        return Err(err(format!(
                            "Virtual network with ID: {vid} does not exist"
                        )))
                    }
                    Err(f) => return Err(f),
                };
                set_attr(nic, "NETWORK", v.head.name.clone());
                set_attr(nic, "NETWORK_ID", vid.to_string());
            }
        }
        prepare_nic_vm(nic, &restricted);
    }
    Ok(out)
}

/// The addresses a range puts on a NIC (`AddressRange::allocate_by_index`).
const ADDRESS: [&str; 6] = ["MAC", "IP", "IP6", "IP6_LINK", "IP6_ULA", "IP6_GLOBAL"];

/// The router's floating NIC as OpenNebula builds it: what was asked, with the lease of
/// `leased` (a VM's NIC, which says more) and `AddressRange::set_vnet`'s attributes of the
/// range, none of the network's or its clusters'.
async fn router_lease(ctx: &Ctx, asked: Pairs, leased: &[(String, String)]) -> Pairs {
    let mut nic = asked;
    nic.retain(|(n, _)| !ADDRESS.iter().any(|a| n.eq_ignore_ascii_case(a)));
    for k in ["NIC_ID", "NETWORK", "NETWORK_ID", "AR_ID"]
        .into_iter()
        .chain(ADDRESS)
    {
        if let Some(v) = template::vector_get(leased, k) {
            set_attr(&mut nic, k, v.to_string());
        }
    }
    let (Ok(vid), Ok(arid)) = (
        get(&nic, "NETWORK_ID").parse::<i64>(),
        get(&nic, "AR_ID").parse::<i64>(),
    ) else {
        return nic;
    };
    let Ok(v) = super::vnet::NETS.get(ctx, vid).await else {
        return nic;
    };
    let Ok(t) = Template::parse(&v.template) else {
        return nic;
    };
    if let Some(r) = super::address_range::ranges(&t)
        .into_iter()
        .find(|r| r.id == arid)
    {
        for k in ["VN_MAD", "BRIDGE", "PHYDEV", "VLAN_ID"] {
            let val = r.get(k).trim();
            if !val.is_empty() {
                set_attr(&mut nic, k, val.to_string());
            }
        }
    }
    nic
}

/// The network a non-floating NIC names: NETWORK_ID, or NETWORK of NETWORK_UID /
/// NETWORK_UNAME (the caller by default); `None` if it names none.
async fn network_of(
    ctx: &Ctx,
    s: &Session,
    nic: &[(String, String)],
) -> Result<Option<i64>, String> {
    let id = get(nic, "NETWORK_ID");
    if !id.is_empty() {
        return id
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("Virtual network with ID: {id} does not exist"));
    }
    let name = get(nic, "NETWORK");
    if name.is_empty() {
        return Ok(None);
    }
    let owner =
        super::writes::named_owner(ctx, s, get(nic, "NETWORK_UNAME"), get(nic, "NETWORK_UID"))
            .await?;
    let found = super::writes::oid_by_name(ctx, objects::vnet::TABLE, name, owner).await?;
    found.map(Some).ok_or_else(|| {
        format!(
            "User {owner} does not own a network with name: {name} . Set NETWORK_UNAME or NETWORK_UID of owner in NIC."
        )
    })
}

/// The template with `nics` as its NIC attributes, in order.
pub(super) fn with_nics(mut t: Template, nics: Vec<Pairs>) -> Template {
    t.remove("NIC");
    for nic in nics {
        t.push("NIC", TValue::Vector(nic));
    }
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn shipped() -> Vec<String> {
        let all: Vec<String> = super::super::restricted::VM_SHIPPED
            .iter()
            .map(|r| r.to_string())
            .collect();
        nic_keys(&all)
    }

    #[test]
    fn a_floating_nic_keeps_its_addresses_as_the_routers() {
        let mut nic: Pairs = vec![
            ("FLOATING_IP".into(), "yes".into()),
            ("IP".into(), "10.0.0.1".into()),
            ("MAC".into(), "02:00:0a:00:00:01".into()),
            ("NETWORK_ID".into(), "0".into()),
        ];
        prepare_nic_vm(&mut nic, &shipped());
        assert_eq!(get(&nic, "VROUTER_IP"), "10.0.0.1");
        assert_eq!(get(&nic, "VROUTER_MAC"), "02:00:0a:00:00:01");
        assert_eq!(get(&nic, "IP"), "");
        let mut plain: Pairs = vec![("IP".into(), "10.0.0.1".into())];
        prepare_nic_vm(&mut plain, &shipped());
        assert_eq!(get(&plain, "IP"), "10.0.0.1");
    }

    #[test]
    fn a_floating_nic_loses_the_restricted_attributes_and_a_plain_one_keeps_them() {
        let mut nic: Pairs = vec![
            ("FLOATING_IP".into(), "YES".into()),
            ("BRIDGE".into(), "br0".into()),
            ("VLAN_ID".into(), "7".into()),
            ("INBOUND_AVG_BW".into(), "10".into()),
            ("GATEWAY".into(), "10.0.0.254".into()),
        ];
        let mut plain = nic.clone();
        plain.remove(0);
        prepare_nic_vm(&mut nic, &shipped());
        let names: Vec<&str> = nic.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["FLOATING_IP", "GATEWAY", "VROUTER_VLAN_ID"]);
        let before = plain.clone();
        prepare_nic_vm(&mut plain, &shipped());
        assert_eq!(plain, before);
    }
}
