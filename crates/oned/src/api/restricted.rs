//! The restricted attributes of oned.conf (`VM_RESTRICTED_ATTR`, `IMAGE_RESTRICTED_ATTR`,
//! `VNET_RESTRICTED_ATTR`, `USER_RESTRICTED_ATTR`, `GROUP_RESTRICTED_ATTR`): what only an
//! administrator may set or change, checked as `Template::check_restricted` checks them.

use template::{Template, Value};

use super::Ctx;

/// Restricted attributes as OpenNebula keeps them: a name, and the keys of that vector (none
/// for a single attribute).
pub type Ras = Vec<(String, Vec<String>)>;

/// oned.conf's `key` entries, else the shipped ones, grouped.
pub(super) fn configured(ctx: &Ctx, key: &str, shipped: &[&str]) -> Ras {
    let conf: Vec<String> = ctx
        .config
        .raw
        .get_all(key)
        .filter_map(|a| a.value.as_single().map(str::to_string))
        .collect();
    let names: Vec<String> = if conf.is_empty() {
        shipped.iter().map(|r| r.to_string()).collect()
    } else {
        conf
    };
    grouped(names)
}

/// A day-2 call's template from a user outside oneadmin naming a `VM_RESTRICTED_ATTR`
/// (`check_restricted(aname)`): AUTHORIZATION `<what> includes a restricted attribute <key>.`
pub fn refuse_in_vm(
    ctx: &Ctx,
    s: &crate::auth::Session,
    t: &Template,
    what: &str,
) -> Result<(), super::Failure> {
    if s.is_admin() {
        return Ok(());
    }
    match in_new(&vm(ctx), t) {
        Some(name) => Err(super::unauthorized(
            s,
            &format!("{what} includes a restricted attribute {name}"),
        )),
        None => Ok(()),
    }
}

/// `VM_RESTRICTED_ATTR`, grouped.
pub fn vm(ctx: &Ctx) -> Ras {
    grouped(vm_names(ctx))
}

/// OpenNebula's shipped `VM_RESTRICTED_ATTR` (`share/etc/oned.conf`), used when oned.conf
/// names none.
pub(super) const VM_SHIPPED: &[&str] = &[
    "CONTEXT/FILES",
    "NIC/MAC",
    "NIC/VLAN_ID",
    "NIC/BRIDGE",
    "NIC/FILTER",
    "NIC/FILTER_IP_SPOOFING",
    "NIC/FILTER_MAC_SPOOFING",
    "NIC/INBOUND_AVG_BW",
    "NIC/INBOUND_PEAK_BW",
    "NIC/INBOUND_PEAK_KB",
    "NIC/OUTBOUND_AVG_BW",
    "NIC/OUTBOUND_PEAK_BW",
    "NIC/OUTBOUND_PEAK_KB",
    "NIC/OPENNEBULA_MANAGED",
    "NIC/EXTERNAL",
    "NIC/VLAN_TAGGED_ID",
    "NIC_ALIAS/MAC",
    "NIC_ALIAS/VLAN_ID",
    "NIC_ALIAS/BRIDGE",
    "NIC_ALIAS/INBOUND_AVG_BW",
    "NIC_ALIAS/INBOUND_PEAK_BW",
    "NIC_ALIAS/INBOUND_PEAK_KB",
    "NIC_ALIAS/OUTBOUND_AVG_BW",
    "NIC_ALIAS/OUTBOUND_PEAK_BW",
    "NIC_ALIAS/OUTBOUND_PEAK_KB",
    "NIC_ALIAS/OPENNEBULA_MANAGED",
    "NIC_DEFAULT/MAC",
    "NIC_DEFAULT/VLAN_ID",
    "NIC_DEFAULT/BRIDGE",
    "NIC_DEFAULT/FILTER",
    "NIC_DEFAULT/EXTERNAL",
    "DISK/TOTAL_BYTES_SEC",
    "DISK/TOTAL_BYTES_SEC_MAX_LENGTH",
    "DISK/TOTAL_BYTES_SEC_MAX",
    "DISK/READ_BYTES_SEC",
    "DISK/READ_BYTES_SEC_MAX_LENGTH",
    "DISK/READ_BYTES_SEC_MAX",
    "DISK/WRITE_BYTES_SEC",
    "DISK/WRITE_BYTES_SEC_MAX_LENGTH",
    "DISK/WRITE_BYTES_SEC_MAX",
    "DISK/TOTAL_IOPS_SEC",
    "DISK/TOTAL_IOPS_SEC_MAX_LENGTH",
    "DISK/TOTAL_IOPS_SEC_MAX",
    "DISK/READ_IOPS_SEC",
    "DISK/READ_IOPS_SEC_MAX_LENGTH",
    "DISK/READ_IOPS_SEC_MAX",
    "DISK/WRITE_IOPS_SEC",
    "DISK/WRITE_IOPS_SEC_MAX_LENGTH",
    "DISK/WRITE_IOPS_SEC_MAX",
    "DISK/SIZE_IOPS_SEC",
    "DISK/OPENNEBULA_MANAGED",
    "DISK/ORIGINAL_SIZE",
    "DISK/SIZE_PREV",
    "DEPLOY_ID",
    "CPU_COST",
    "MEMORY_COST",
    "DISK_COST",
    "PCI",
    "EMULATOR",
    "RAW/DATA",
    "USER_PRIORITY",
    "USER_INPUTS/CPU",
    "USER_INPUTS/MEMORY",
    "USER_INPUTS/VCPU",
    "TOPOLOGY/PIN_POLICY",
    "TOPOLOGY/HUGEPAGE_SIZE",
];

/// `VM_RESTRICTED_ATTR`: oned.conf's, else the shipped list; upper case; with every
/// `QUOTA_VM_ATTRIBUTE` metric, which `Nebula::start` adds to it.
pub(super) fn vm_names(ctx: &Ctx) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .config
        .raw
        .get_all("VM_RESTRICTED_ATTR")
        .filter_map(|a| a.value.as_single().map(|v| v.trim().to_uppercase()))
        .collect();
    if names.is_empty() {
        names = VM_SHIPPED.iter().map(|r| r.to_string()).collect();
    }
    names.extend(quota_metrics(&ctx.config.raw));
    names
}

/// The generic quota metrics (`QUOTA_VM_ATTRIBUTE`), each also a restricted VM attribute.
pub(super) fn quota_metrics(conf: &Template) -> Vec<String> {
    super::quota::generic_metrics(conf)
        .into_iter()
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `IMAGE_RESTRICTED_ATTR`, grouped.
pub fn image(ctx: &Ctx) -> Ras {
    configured(ctx, "IMAGE_RESTRICTED_ATTR", &["SOURCE"])
}

/// The VM operation lists a user's or group's template may only take from an administrator.
const VM_OPERATIONS: &[&str] = &[
    "VM_USE_OPERATIONS",
    "VM_MANAGE_OPERATIONS",
    "VM_ADMIN_OPERATIONS",
];

/// `USER_RESTRICTED_ATTR`, grouped.
pub fn user(ctx: &Ctx) -> Ras {
    configured(ctx, "USER_RESTRICTED_ATTR", VM_OPERATIONS)
}

/// `GROUP_RESTRICTED_ATTR`, grouped.
pub fn group(ctx: &Ctx) -> Ras {
    configured(ctx, "GROUP_RESTRICTED_ATTR", VM_OPERATIONS)
}

/// OpenNebula's shipped `VNET_RESTRICTED_ATTR` (`share/etc/oned.conf`), used when oned.conf
/// names none.
const VNET_SHIPPED: &[&str] = &[
    "VN_MAD",
    "PHYDEV",
    "VLAN_ID",
    "CVLANS",
    "QINQ_TYPE",
    "BRIDGE",
    "CONF",
    "BRIDGE_CONF",
    "OVS_BRIDGE_CONF",
    "IP_LINK_CONF",
    "FILTER",
    "FILTER_IP_SPOOFING",
    "FILTER_MAC_SPOOFING",
    "AR/VN_MAD",
    "AR/PHYDEV",
    "AR/VLAN_ID",
    "AR/BRIDGE",
    "AR/FILTER",
    "AR/FILTER_IP_SPOOFING",
    "AR/FILTER_MAC_SPOOFING",
    "CLUSTER_IDS",
    "EXTERNAL",
];

/// `VNET_RESTRICTED_ATTR`, grouped.
pub fn vnet(ctx: &Ctx) -> Ras {
    configured(ctx, "VNET_RESTRICTED_ATTR", VNET_SHIPPED)
}

/// Restricted attribute names (`NAME` or `NAME/KEY`) grouped as OpenNebula keeps them.
pub fn grouped(names: Vec<String>) -> Ras {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in names {
        let (name, sub) = match r.split_once('/') {
            Some((n, s)) => (n.to_uppercase(), Some(s.to_uppercase())),
            None => (r.to_uppercase(), None),
        };
        let at = match out.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                out.push((name, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(sub) = sub {
            out[at].1.push(sub);
        }
    }
    out
}

/// `restricted_values`: `<key><value>` of each restricted key in each `name` vector, sorted;
/// and whether there is any such vector.
pub fn values(t: &Template, name: &str, subs: &[String]) -> (bool, Vec<String>) {
    let mut values = Vec::new();
    let mut exists = false;
    for a in t.get_all(name) {
        let Some(pairs) = a.value.as_vector() else {
            continue;
        };
        exists = true;
        for sub in subs {
            if let Some(v) = template::vector_get(pairs, sub) {
                values.push(format!("{sub}{v}"));
            }
        }
    }
    values.sort();
    (exists, values)
}

/// `Template::check_restricted(ra)` of a new object's template: the first restricted key any of
/// its vectors holds (named alone, `MAC`), or the first restricted single attribute, names and
/// keys in sorted order as OpenNebula's map and sets keep them. A name whose first attribute is
/// a vector does not count as a single attribute (`Template::get(name, string&)`).
pub fn in_new(ras: &[(String, Vec<String>)], t: &Template) -> Option<String> {
    let mut ras: Vec<(String, Vec<String>)> = ras.to_vec();
    ras.sort();
    for (name, mut subs) in ras {
        if subs.is_empty() {
            if t.get(&name).is_some_and(|a| a.value.as_single().is_some()) {
                return Some(name);
            }
            continue;
        }
        subs.sort();
        for pairs in t.get_all(&name).filter_map(|a| a.value.as_vector()) {
            if let Some(sub) = subs
                .iter()
                .find(|s| template::vector_get(pairs, s).is_some())
            {
                return Some(sub.clone());
            }
        }
    }
    None
}

/// `Template::check_restricted(ra, base, append = true)`: the first restricted attribute of
/// `ras` that the user's template `user` sets to something else than `base` has (a vector's
/// restricted keys compared as a whole, a single value by itself).
pub fn change_of(
    ras: &[(String, Vec<String>)],
    user: &Template,
    base: &Template,
) -> Option<String> {
    // OpenNebula's restricted map walks its names in order.
    let mut ras = ras.to_vec();
    ras.sort();
    for (name, subs) in &ras {
        if subs.is_empty() {
            if let Some(v) = user.single(name) {
                if base.single(name).unwrap_or("") != v {
                    return Some(name.clone());
                }
            }
            continue;
        }
        let (new, given) = values(user, name, subs);
        let (_, stored) = values(base, name, subs);
        if new && given != stored {
            return Some(name.clone());
        }
    }
    None
}

/// `Template::check_restricted(ra, base, append)` of an update's template `new` against the
/// stored `base`, names in sorted order: a vector whose restricted keys' values differ (while
/// `new` has one, or a replace drops the stored one), a single attribute given with another
/// value. A restricted single attribute `new` leaves out is copied from `base` into it.
pub fn update_changes(
    ras: &[(String, Vec<String>)],
    new: &mut Template,
    base: &Template,
    append: bool,
) -> Option<String> {
    let mut ras = ras.to_vec();
    ras.sort();
    for (name, subs) in ras {
        if subs.is_empty() {
            let single = |t: &Template| {
                t.get(&name)
                    .and_then(|a| a.value.as_single().map(str::to_string))
            };
            match (single(new), single(base)) {
                (Some(v), b) if Some(&v) != b.as_ref() && !(v.is_empty() && b.is_none()) => {
                    return Some(name)
                }
                (None, Some(b)) => new.push(&name, Value::Single(b)),
                _ => {}
            }
            continue;
        }
        let (new_has, new_values) = values(new, &name, &subs);
        let (base_has, base_values) = values(base, &name, &subs);
        if new_values != base_values && (new_has || (!append && base_has)) {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn restricted_vector_keys_compare_sorted_values() {
        let subs = vec!["VN_MAD".to_string()];
        let base = t("AR = [ TYPE = IP4, VN_MAD = a ]");
        let same = t("AR = [ VN_MAD = a, SIZE = 2 ]");
        let other = t("AR = [ VN_MAD = b ]");
        assert_eq!(values(&base, "AR", &subs), values(&same, "AR", &subs));
        assert_ne!(values(&base, "AR", &subs).1, values(&other, "AR", &subs).1);
        assert!(!values(&t("A = 1"), "AR", &subs).0);
    }

    #[test]
    fn an_update_keeps_or_refuses_restricted_attributes_as_check_restricted() {
        let ras = grouped(vec![
            "CPU_COST".into(),
            "NIC/MAC".into(),
            "DEPLOY_ID".into(),
        ]);
        let base = t("CPU_COST = 2\nNIC = [ NETWORK = a, MAC = m1 ]\nX = 1");
        // A replace that leaves them out: the single one comes back, the vector is a change.
        let mut new = t("X = 2\nNIC = [ NETWORK = a, MAC = m1 ]");
        assert_eq!(update_changes(&ras, &mut new, &base, false), None);
        assert_eq!(new.single("CPU_COST"), Some("2"));
        let mut new = t("X = 2");
        assert_eq!(
            update_changes(&ras, &mut new, &base, false).as_deref(),
            Some("NIC")
        );
        // A merge that does not name the vector leaves it be.
        let mut new = t("X = 2");
        assert_eq!(update_changes(&ras, &mut new, &base, true), None);
        // Values given must be the stored ones.
        let mut new = t("CPU_COST = 3");
        assert_eq!(
            update_changes(&ras, &mut new, &base, true).as_deref(),
            Some("CPU_COST")
        );
        let mut new = t("DEPLOY_ID = x");
        assert_eq!(
            update_changes(&ras, &mut new, &base, true).as_deref(),
            Some("DEPLOY_ID")
        );
        let mut new = t("NIC = [ NETWORK = b, MAC = m1 ]");
        assert_eq!(update_changes(&ras, &mut new, &base, true), None);
        let mut new = t("NIC = [ MAC = m2 ]");
        assert_eq!(
            update_changes(&ras, &mut new, &base, true).as_deref(),
            Some("NIC")
        );
    }
}
