//! OpenNebula's ACL rule bits (`include/AclRule.h`, `include/PoolObjectSQL.h`, `ObjectType`,
//! `include/AuthRequest.h`, `Operation`) and the rule's text form (`@1 VM+IMAGE/* CREATE *`).
//!
//! A rule is three 64-bit masks: who (user), on what (resource), which rights, plus a zone.
//! The low 32 bits of user, resource and zone hold an id, the next four say what the id is.

/// Selector bit: `#id`, one user or object.
pub const INDIVIDUAL_ID: u64 = 0x1_0000_0000;
/// Selector bit: `@id`, a group.
pub const GROUP_ID: u64 = 0x2_0000_0000;
/// Selector bit: `*`, everyone or everything.
pub const ALL_ID: u64 = 0x4_0000_0000;
/// Selector bit: `%id`, a cluster (resources only).
pub const CLUSTER_ID: u64 = 0x8_0000_0000;
/// Every selector bit.
pub const SELECTORS: u64 = INDIVIDUAL_ID | GROUP_ID | ALL_ID | CLUSTER_ID;
/// The id part of a selector.
pub const ID_MASK: u64 = 0xFFFF_FFFF;

// Resource type bits (`PoolObjectSQL::ObjectType`).
pub const VM: u64 = 0x10_0000_0000;
pub const HOST: u64 = 0x20_0000_0000;
pub const NET: u64 = 0x40_0000_0000;
pub const IMAGE: u64 = 0x80_0000_0000;
pub const USER: u64 = 0x100_0000_0000;
pub const TEMPLATE: u64 = 0x200_0000_0000;
pub const GROUP: u64 = 0x400_0000_0000;
pub const ACL: u64 = 0x800_0000_0000;
pub const DATASTORE: u64 = 0x1000_0000_0000;
pub const CLUSTER: u64 = 0x2000_0000_0000;
pub const DOCUMENT: u64 = 0x4000_0000_0000;
pub const ZONE: u64 = 0x8000_0000_0000;
pub const SECGROUP: u64 = 0x1_0000_0000_0000;
pub const VDC: u64 = 0x2_0000_0000_0000;
pub const VROUTER: u64 = 0x4_0000_0000_0000;
pub const MARKETPLACE: u64 = 0x8_0000_0000_0000;
pub const MARKETPLACEAPP: u64 = 0x10_0000_0000_0000;
pub const VMGROUP: u64 = 0x20_0000_0000_0000;
pub const VNTEMPLATE: u64 = 0x40_0000_0000_0000;
pub const HOOK: u64 = 0x80_0000_0000_0000;
pub const BACKUPJOB: u64 = 0x100_0000_0000_0000;

/// The resource types a rule may name, in the order rules print them: OpenNebula's
/// `AclRule::pool_objects`, plus HOOK, which OneHA has always accepted and printed
/// (OpenNebula 7.0 neither prints nor parses it).
pub const RESOURCES: &[(u64, &str)] = &[
    (VM, "VM"),
    (HOST, "HOST"),
    (NET, "NET"),
    (IMAGE, "IMAGE"),
    (USER, "USER"),
    (TEMPLATE, "TEMPLATE"),
    (GROUP, "GROUP"),
    (DATASTORE, "DATASTORE"),
    (CLUSTER, "CLUSTER"),
    (DOCUMENT, "DOCUMENT"),
    (ZONE, "ZONE"),
    (SECGROUP, "SECGROUP"),
    (VDC, "VDC"),
    (VROUTER, "VROUTER"),
    (MARKETPLACE, "MARKETPLACE"),
    (MARKETPLACEAPP, "MARKETPLACEAPP"),
    (VMGROUP, "VMGROUP"),
    (VNTEMPLATE, "VNTEMPLATE"),
    (HOOK, "HOOK"),
    (BACKUPJOB, "BACKUPJOB"),
];

// Rights (`AuthRequest::Operation`).
pub const USE: u64 = 0x1;
pub const MANAGE: u64 = 0x2;
pub const ADMIN: u64 = 0x4;
pub const CREATE: u64 = 0x8;
/// Every right bit.
pub const RIGHTS_MASK: u64 = USE | MANAGE | ADMIN | CREATE;

/// The rights, in the order rules print them.
pub const RIGHTS: &[(u64, &str)] = &[
    (USE, "USE"),
    (MANAGE, "MANAGE"),
    (ADMIN, "ADMIN"),
    (CREATE, "CREATE"),
];

/// The bit of a resource type name, case-insensitive.
pub fn resource_bit(name: &str) -> Option<u64> {
    bit_named(RESOURCES, name)
}

/// The bit of a right name, case-insensitive.
pub fn right_bit(name: &str) -> Option<u64> {
    bit_named(RIGHTS, name)
}

fn bit_named(table: &[(u64, &str)], name: &str) -> Option<u64> {
    table
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(bit, _)| *bit)
}

fn names(table: &[(u64, &'static str)], mask: u64) -> String {
    table
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("+")
}

/// A selector in text: `#id`, `@id`, `%id` or `*`.
pub fn selector_string(v: u64) -> String {
    let id = v & ID_MASK;
    if v & INDIVIDUAL_ID != 0 {
        format!("#{id}")
    } else if v & GROUP_ID != 0 {
        format!("@{id}")
    } else if v & CLUSTER_ID != 0 {
        format!("%{id}")
    } else {
        "*".to_string()
    }
}

/// Why a selector's text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("bad id")]
    BadId,
    #[error("bad selector")]
    BadSelector,
}

/// A selector's bits from its text (`#5`, `@1`, `%0`, `*`).
pub fn parse_selector(text: &str) -> Result<u64, SelectorError> {
    let kind = match text.chars().next() {
        Some('*') if text == "*" => return Ok(ALL_ID),
        Some('#') => INDIVIDUAL_ID,
        Some('@') => GROUP_ID,
        Some('%') => CLUSTER_ID,
        _ => return Err(SelectorError::BadSelector),
    };
    let id: u32 = text[1..].parse().map_err(|_| SelectorError::BadId)?;
    Ok(kind | u64::from(id))
}

/// The text form of a rule, as OpenNebula's `AclRule::to_str`.
pub fn rule_string(user: u64, resource: u64, rights: u64, zone: u64) -> String {
    format!(
        "{} {}/{} {} {}",
        selector_as(user, &[GROUP_ID, INDIVIDUAL_ID, ALL_ID]),
        names(RESOURCES, resource),
        selector_as(resource, &[GROUP_ID, INDIVIDUAL_ID, CLUSTER_ID, ALL_ID]),
        names(RIGHTS, rights),
        selector_as(zone, &[INDIVIDUAL_ID, ALL_ID])
    )
}

/// `AclRule::build_str`'s selector: the first of `order` the mask has, its id as a C `int`;
/// `??` for none (a malformed rule, in its refusal).
fn selector_as(v: u64, order: &[u64]) -> String {
    let id = (v & ID_MASK) as u32 as i32;
    match order.iter().find(|bit| v & **bit != 0) {
        Some(&GROUP_ID) => format!("@{id}"),
        Some(&INDIVIDUAL_ID) => format!("#{id}"),
        Some(&CLUSTER_ID) => format!("%{id}"),
        Some(_) => "*".to_string(),
        None => "??".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `include/PoolObjectSQL.h` (`ObjectType`), `src/acl/AclRule.cc` (selector ids) and
    /// `include/AuthRequest.h` (`Operation`), OpenNebula 7.0.
    #[test]
    fn bits_are_opennebulas() {
        let objects: &[(u64, u64)] = &[
            (VM, 0x0000001000000000),
            (HOST, 0x0000002000000000),
            (NET, 0x0000004000000000),
            (IMAGE, 0x0000008000000000),
            (USER, 0x0000010000000000),
            (TEMPLATE, 0x0000020000000000),
            (GROUP, 0x0000040000000000),
            (ACL, 0x0000080000000000),
            (DATASTORE, 0x0000100000000000),
            (CLUSTER, 0x0000200000000000),
            (DOCUMENT, 0x0000400000000000),
            (ZONE, 0x0000800000000000),
            (SECGROUP, 0x0001000000000000),
            (VDC, 0x0002000000000000),
            (VROUTER, 0x0004000000000000),
            (MARKETPLACE, 0x0008000000000000),
            (MARKETPLACEAPP, 0x0010000000000000),
            (VMGROUP, 0x0020000000000000),
            (VNTEMPLATE, 0x0040000000000000),
            (HOOK, 0x0080000000000000),
            (BACKUPJOB, 0x0100000000000000),
            (INDIVIDUAL_ID, 0x0000000100000000),
            (GROUP_ID, 0x0000000200000000),
            (ALL_ID, 0x0000000400000000),
            (CLUSTER_ID, 0x0000000800000000),
            (USE, 0x1),
            (MANAGE, 0x2),
            (ADMIN, 0x4),
            (CREATE, 0x8),
        ];
        for (ours, theirs) in objects {
            assert_eq!(ours, theirs);
        }
        let names: Vec<&str> = RESOURCES.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            names.join(" "),
            "VM HOST NET IMAGE USER TEMPLATE GROUP DATASTORE CLUSTER DOCUMENT ZONE SECGROUP VDC \
             VROUTER MARKETPLACE MARKETPLACEAPP VMGROUP VNTEMPLATE HOOK BACKUPJOB"
        );
        assert_eq!(resource_bit("marketplaceapp"), Some(MARKETPLACEAPP));
        assert_eq!(right_bit("Create"), Some(CREATE));
        assert_eq!(resource_bit("ACL"), None);
    }

    #[test]
    fn default_rules_print_as_opennebula_prints_them() {
        assert_eq!(
            rule_string(0x200000001, 0x121429400000000, 0x8, 0x400000000),
            "@1 VM+IMAGE+TEMPLATE+DOCUMENT+SECGROUP+VMGROUP+BACKUPJOB/* CREATE *"
        );
        assert_eq!(
            rule_string(0x400000000, 0x800400000000, 0x1, 0x400000000),
            "* ZONE/* USE *"
        );
        assert_eq!(
            rule_string(
                INDIVIDUAL_ID | 5,
                HOST | CLUSTER_ID | 100,
                USE | MANAGE,
                ALL_ID
            ),
            "#5 HOST/%100 USE+MANAGE *"
        );
    }

    #[test]
    fn selectors_read_back() {
        for text in ["#0", "@1", "%100", "*", "#4294967295"] {
            assert_eq!(parse_selector(text).map(selector_string), Ok(text.into()));
        }
        assert_eq!(parse_selector("#x"), Err(SelectorError::BadId));
        assert_eq!(parse_selector("#4294967296"), Err(SelectorError::BadId));
        assert_eq!(parse_selector("**"), Err(SelectorError::BadSelector));
        assert_eq!(parse_selector("5"), Err(SelectorError::BadSelector));
        assert_eq!(parse_selector(""), Err(SelectorError::BadSelector));
    }
}
