//! `VirtualMachine::set_auth_request`: what a new VM's template asks of its creator, joined
//! into the request that creates it (`one.vm.allocate`, `one.template.instantiate`) or shows
//! the template extended (`one.template.info`): USE on the image of each disk, on the network
//! of each NIC (alias, PCI NIC) and on its security groups and the network's, on the VM group.
//! Objects that do not exist ask nothing here; the creation refuses them after.

use sqlstore::objects::image::ImageRow;
use template::Template;

use super::perms::{Caller, USE};
use super::{Ctx, Failure};
use crate::auth::Session;

/// Every refusal of `c` on what template `t` names, `right` being USE with or without the
/// lock check (`check_lock`). A template with more disks or NICs than a VM may have asks
/// nothing here (one request would read that many objects): the creation refuses it, or
/// authorizes each object as it takes it.
pub async fn refusals(
    ctx: &Ctx,
    s: &Session,
    c: &Caller<'_>,
    t: &Template,
    right: u64,
) -> Result<Vec<String>, Failure> {
    let mut why = Vec::new();
    let pci = t.get_all("PCI").count();
    if crate::limits::vm_vectors(t).is_err() || pci > crate::limits::fixed::MAX_NICS_PER_VM {
        return Ok(why);
    }
    // Each disk's image, read together; a disk asks for its image as often as it names it.
    let mut images = Vec::new();
    for disk in t.get_all("DISK").filter_map(|a| a.value.as_vector()) {
        images.extend(disk_image_id(ctx, s, disk).await);
    }
    let rows = super::storage::IMAGES.get_many(ctx, images.clone()).await?;
    for id in images {
        if let Some(image) = rows.iter().find(|i| i.head.owned.oid == id) {
            why.extend(super::storage::IMAGES.refusal(c, image, right));
        }
    }
    let mut nics = t.clone();
    why.extend(nic_refusals(ctx, s, c, &mut nics, right).await?);
    if let Some(va) = t.vector("VMGROUP") {
        if let Ok(g) = super::vmgroup::for_vm(ctx, va, s.uid).await {
            why.extend(super::vmgroup::VMGROUPS.refusal(c, &g, USE));
        }
    }
    Ok(why)
}

/// `VirtualMachineNic::authorize` of a template's NICs, aliases and PCI NICs (not the automatic
/// ones): `right` on the network each names (a network named by NAME gets its NETWORK_ID in
/// `body`, as `authorize_nic` writes it), then on the security groups of the NIC, of the
/// network and of its address ranges. The networks are read together, then the groups.
pub async fn nic_refusals(
    ctx: &Ctx,
    s: &Session,
    c: &Caller<'_>,
    body: &mut Template,
    right: u64,
) -> Result<Vec<String>, Failure> {
    // Each NIC's attribute index and network id.
    let mut nics: Vec<(usize, Option<i64>)> = Vec::new();
    for (i, a) in body.attrs.iter().enumerate() {
        let Some(nic) = a.value.as_vector().filter(|_| super::vm_nics::is_nic(a)) else {
            continue;
        };
        let auto = template::vector_get(nic, "NETWORK_MODE")
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("auto"));
        if !auto {
            let net = super::vnet_leases::named_network(ctx, s, nic).await;
            nics.push((i, net.filter(|id| *id >= 0)));
        }
    }
    let nets = super::vnet::NETS
        .get_many(ctx, nics.iter().filter_map(|n| n.1).collect())
        .await?;
    let net_templates: Vec<(i64, Template)> = nets
        .iter()
        .map(|n| {
            let t = Template::parse(&n.template).unwrap_or_default();
            (n.head.owned.oid, t)
        })
        .collect();
    let mut groups_of = Vec::with_capacity(nics.len());
    for (i, net) in &nics {
        let vt = net.and_then(|id| net_templates.iter().find(|(n, _)| *n == id));
        let nic = body.attrs[*i].value.as_vector().unwrap_or_default();
        groups_of.push(nic_groups(nic, vt.map(|(_, t)| t)));
    }
    let groups = super::secgroup::SECGROUPS
        .get_many(ctx, groups_of.iter().flatten().copied().collect())
        .await?;
    let mut why = Vec::new();
    for ((i, net), ids) in nics.into_iter().zip(groups_of) {
        if let Some(net) = net.and_then(|id| nets.iter().find(|n| n.head.owned.oid == id)) {
            let template::Value::Vector(nic) = &mut body.attrs[i].value else {
                continue;
            };
            if template::vector_get(nic, "NETWORK_ID").is_none_or(str::is_empty) {
                template::vector_set(nic, "NETWORK_ID", net.head.owned.oid.to_string());
            }
            why.extend(super::vnet::NETS.refusal(c, net, right));
        }
        why.extend(
            ids.iter()
                .filter_map(|id| groups.iter().find(|g| g.head.owned.oid == *id))
                .filter_map(|g| super::secgroup::SECGROUPS.refusal(c, g, right)),
        );
    }
    Ok(why)
}

/// The security groups a NIC gets, ascending (`VirtualMachineNic::authorize`): its own
/// SECURITY_GROUPS and, when its network (template `vt`) exists, the network's and every
/// address range's (`VirtualNetwork::get_security_groups`).
fn nic_groups(nic: &[(String, String)], vt: Option<&Template>) -> Vec<i64> {
    let mut ids = ids_in(template::vector_get(nic, "SECURITY_GROUPS"));
    if let Some(vt) = vt {
        ids.extend(ids_in(vt.single("SECURITY_GROUPS")));
        for ar in vt.get_all("AR").filter_map(|a| a.value.as_vector()) {
            ids.extend(ids_in(template::vector_get(ar, "SECURITY_GROUPS")));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The refusals of `right` on the security groups a NIC gets (`VirtualMachineNic::authorize`):
/// its own SECURITY_GROUPS and, when its network `vt` exists, the network's and every address
/// range's (`VirtualNetwork::get_security_groups`). Groups that do not exist ask nothing.
pub async fn secgroup_refusals(
    ctx: &Ctx,
    c: &Caller<'_>,
    nic: &[(String, String)],
    vt: Option<&Template>,
    right: u64,
) -> Result<Vec<String>, Failure> {
    let ids = nic_groups(nic, vt);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let groups = super::secgroup::SECGROUPS.get_many(ctx, ids).await?;
    Ok(groups
        .iter()
        .filter_map(|g| super::secgroup::SECGROUPS.refusal(c, g, right))
        .collect())
}

/// The ids of a comma-separated list (`one_util::split_unique`).
fn ids_in(list: Option<&str>) -> Vec<i64> {
    list.unwrap_or("")
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The id of the image a DISK names, as `VirtualMachineDisk::get_image_id`: IMAGE_ID, or IMAGE
/// owned by IMAGE_UID, the user IMAGE_UNAME or the caller. `None` when it names none that
/// exists.
pub async fn disk_image_id(ctx: &Ctx, s: &Session, disk: &[(String, String)]) -> Option<i64> {
    let get = |k: &str| template::vector_get(disk, k).unwrap_or("").trim();
    if !get("IMAGE_ID").is_empty() {
        return get("IMAGE_ID").parse().ok();
    }
    if get("IMAGE").is_empty() {
        return None;
    }
    super::vm_disks::image_by_name(ctx, s, get("IMAGE"), get("IMAGE_UNAME"), get("IMAGE_UID"))
        .await
        .ok()
}

/// The image a DISK names ([`disk_image_id`]), if it exists.
pub async fn disk_image(
    ctx: &Ctx,
    s: &Session,
    disk: &[(String, String)],
) -> Result<Option<ImageRow>, Failure> {
    match disk_image_id(ctx, s, disk).await {
        Some(id) => Ok(super::storage::IMAGES.get(ctx, id).await.ok()),
        None => Ok(None),
    }
}
