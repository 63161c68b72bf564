//! What disks and NICs take from their datastore, image or network: oned.conf's
//! INHERIT_DATASTORE_ATTR, INHERIT_IMAGE_ATTR and INHERIT_VNET_ATTR (the lists 7.0.2's
//! oned.conf ships when it names none), copied as `Datastore::disk_attribute`,
//! `Image::disk_attribute` and `VirtualNetwork::nic_attribute` copy them.

use template::{Template, Value};

use super::Ctx;

type Pairs = Vec<(String, String)>;

const DATASTORE_SHIPPED: &[&str] = &[
    "CEPH_HOST",
    "CEPH_SECRET",
    "CEPH_KEY",
    "CEPH_USER",
    "CEPH_CONF",
    "CEPH_TRASH",
    "POOL_NAME",
    "ISCSI_USER",
    "ISCSI_USAGE",
    "ISCSI_HOST",
    "GLUSTER_HOST",
    "GLUSTER_VOLUME",
    "DISK_TYPE",
    "ALLOW_ORPHANS",
    "QCOW2_STANDALONE",
    "SPARSE",
    "LVM_THIN_ENABLE",
    "PERSISTENT_SNAPSHOTS",
];

const IMAGE_SHIPPED: &[&str] = &[
    "ISCSI_USER",
    "ISCSI_USAGE",
    "ISCSI_HOST",
    "ISCSI_IQN",
    "LUKS_SECRET",
    "DISK_TYPE",
    "SERIAL",
];

const VNET_SHIPPED: &[&str] = &[
    "VLAN_TAGGED_ID",
    "FILTER",
    "FILTER_IP_SPOOFING",
    "FILTER_MAC_SPOOFING",
    "MTU",
    "METRIC",
    "IP6_METRIC",
    "METHOD",
    "IP6_METHOD",
    "INBOUND_AVG_BW",
    "INBOUND_PEAK_BW",
    "INBOUND_PEAK_KB",
    "OUTBOUND_AVG_BW",
    "OUTBOUND_PEAK_BW",
    "OUTBOUND_PEAK_KB",
    "CONF",
    "BRIDGE_CONF",
    "OVS_BRIDGE_CONF",
    "IP_LINK_CONF",
    "EXTERNAL_IP",
    "AWS_ALLOCATION_ID",
    "VULTR_IP_ID",
    "GATEWAY",
    "DNS",
    "VXLAN_MODE",
    "VXLAN_TEP",
    "VXLAN_MC",
    "CVLANS",
    "QINQ_TYPE",
    "TRUST",
    "SPOOFCHK",
];

fn configured(ctx: &Ctx, key: &str, shipped: &[&str]) -> Vec<String> {
    let conf: Vec<String> = ctx
        .config
        .raw
        .get_all(key)
        .filter_map(|a| a.value.as_single().map(|v| v.trim().to_string()))
        .filter(|v| !v.is_empty())
        .collect();
    if conf.is_empty() {
        shipped.iter().map(|s| s.to_string()).collect()
    } else {
        conf
    }
}

/// INHERIT_DATASTORE_ATTR.
pub fn datastore(ctx: &Ctx) -> Vec<String> {
    configured(ctx, "INHERIT_DATASTORE_ATTR", DATASTORE_SHIPPED)
}

/// INHERIT_IMAGE_ATTR.
pub fn image(ctx: &Ctx) -> Vec<String> {
    configured(ctx, "INHERIT_IMAGE_ATTR", IMAGE_SHIPPED)
}

/// INHERIT_VNET_ATTR.
pub fn vnet(ctx: &Ctx) -> Vec<String> {
    configured(ctx, "INHERIT_VNET_ATTR", VNET_SHIPPED)
}

fn empty_in(target: &Pairs, key: &str) -> bool {
    template::vector_get(target, key).is_none_or(str::is_empty)
}

/// Each of `names` that `source` holds and `target` lacks (or has empty): a single value by
/// its name, a vector's every pair by theirs.
pub fn from_template(target: &mut Pairs, source: &Template, names: &[String]) {
    for name in names {
        match source.get(name).map(|a| &a.value) {
            Some(Value::Vector(pairs)) => {
                for (k, v) in pairs {
                    if !v.is_empty() && empty_in(target, k) {
                        template::vector_set(target, k, v);
                    }
                }
            }
            Some(Value::Single(v)) if !v.is_empty() && empty_in(target, name) => {
                template::vector_set(target, name, v);
            }
            _ => {}
        }
    }
}

/// Each of `names` that `get` finds (not empty) and `target` lacks, as
/// `AddressRange::set_vnet` takes them from a range.
pub fn from_lookup(target: &mut Pairs, names: &[String], get: impl Fn(&str) -> String) {
    for name in names {
        let v = get(name);
        if !v.is_empty() && empty_in(target, name) {
            template::vector_set(target, name, &v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_target_lacks_is_inherited() {
        let source =
            Template::parse("GATEWAY = 10.0.0.1\nMTU = \"\"\nCONF = [ A = 1, B = \"\" ]\nX = 1")
                .unwrap();
        let mut nic: Pairs = vec![
            ("DNS".into(), "1.1.1.1".into()),
            ("A".into(), String::new()),
        ];
        let names: Vec<String> = ["GATEWAY", "MTU", "CONF", "DNS"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        from_template(&mut nic, &source, &names);
        assert_eq!(template::vector_get(&nic, "GATEWAY"), Some("10.0.0.1"));
        assert_eq!(template::vector_get(&nic, "A"), Some("1"));
        assert_eq!(template::vector_get(&nic, "MTU"), None);
        assert_eq!(template::vector_get(&nic, "B"), None);
        assert_eq!(template::vector_get(&nic, "X"), None);
        let ar: Pairs = vec![
            ("DNS".into(), "8.8.8.8".into()),
            ("MTU".into(), "9000".into()),
        ];
        from_lookup(&mut nic, &names, |k| {
            template::vector_get(&ar, k).unwrap_or("").to_string()
        });
        assert_eq!(template::vector_get(&nic, "DNS"), Some("1.1.1.1"));
        assert_eq!(template::vector_get(&nic, "MTU"), Some("9000"));
    }
}
