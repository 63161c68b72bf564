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
    for disk in t.get_all("DISK").filter_map(|a| a.value.as_vector()) {
        if let Some(image) = disk_image(ctx, s, disk).await? {
            why.extend(super::storage::IMAGES.refusal(c, &image, right));
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
/// `body`, as `authorize_nic` writes it), then on the security groups of the NIC and of the
/// network.
pub async fn nic_refusals(
    ctx: &Ctx,
    s: &Session,
    c: &Caller<'_>,
    body: &mut Template,
    right: u64,
) -> Result<Vec<String>, Failure> {
    let mut why = Vec::new();
    for a in body.attrs.iter_mut() {
        let is_nic = match a.name.as_str() {
            "NIC" | "NIC_ALIAS" => true,
            "PCI" => a.value.as_vector().is_some_and(|v| {
                template::vector_get(v, "TYPE").is_some_and(|t| t.eq_ignore_ascii_case("NIC"))
            }),
            _ => false,
        };
        let template::Value::Vector(nic) = &mut a.value else {
            continue;
        };
        let auto = template::vector_get(nic.as_slice(), "NETWORK_MODE")
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("auto"));
        if !is_nic || auto {
            continue;
        }
        let mut sgs: Vec<i64> = ids_in(template::vector_get(nic.as_slice(), "SECURITY_GROUPS"));
        let by_id =
            template::vector_get(nic.as_slice(), "NETWORK_ID").is_some_and(|v| !v.is_empty());
        let found = super::vnet_leases::named_network(ctx, s, nic).await;
        if let Some(net) = found.and_then(|id| (id >= 0).then_some(id)) {
            if let Ok(net) = super::vnet::NETS.get(ctx, net).await {
                if !by_id {
                    template::vector_set(nic, "NETWORK_ID", net.head.owned.oid.to_string());
                }
                why.extend(super::vnet::NETS.refusal(c, &net, right));
                let t = Template::parse(&net.template).unwrap_or_default();
                sgs.extend(ids_in(t.single("SECURITY_GROUPS")));
            }
        }
        sgs.sort_unstable();
        sgs.dedup();
        for sg in sgs {
            if let Ok(g) = super::secgroup::SECGROUPS.get(ctx, sg).await {
                why.extend(super::secgroup::SECGROUPS.refusal(c, &g, right));
            }
        }
    }
    Ok(why)
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
