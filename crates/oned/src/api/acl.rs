//! `one.acl.addrule`, `delrule` and `info`: OpenNebula's ACL rules, stored as its bit masks
//! (`include/AclRule.h`) and shown with its text form (`@1 VM+IMAGE/* CREATE *`).

use sqlstore::objects::acl::{self as rows, AclRow};
use sqlstore::{SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use crate::method;

/// OpenNebula's `RequestManagerAcl`: MANAGE ACL, on no rule in particular. Only a rule on
/// every ACL rule could grant it, and no rule may name ACL rules: group oneadmin alone passes.
pub const METHODS: &[Method] = &[
    method!(
        wire::method::ACL_ADDRULE,
        Write,
        Auth::Pool(wire::acl::ACL, wire::acl::MANAGE),
        addrule
    ),
    method!(
        wire::method::ACL_DELRULE,
        Write,
        Auth::Pool(wire::acl::ACL, wire::acl::MANAGE),
        delrule
    ),
    method!(
        wire::method::ACL_INFO,
        Read,
        Auth::Pool(wire::acl::ACL, wire::acl::MANAGE),
        info
    ),
];

use wire::acl::{ALL_ID, CLUSTER_ID, GROUP_ID, ID_MASK, INDIVIDUAL_ID, SELECTORS};

pub use wire::acl::rule_string;

/// A mask as C++'s `iss >> hex >> x` reads a `long long`: leading blanks, an optional `0x`,
/// the hex digits it finds (none: 0; too many: the largest value).
fn hex(text: &str) -> u64 {
    let t = text.trim_start();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().take_while(char::is_ascii_hexdigit).collect();
    if digits.is_empty() {
        return 0;
    }
    u64::from_str_radix(&digits, 16)
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .unwrap_or(i64::MAX as u64)
}

/// `AclRule::INVALID_CLUSTER_OBJECTS`: the types a `%cluster` selector may not name.
const INVALID_CLUSTER_OBJECTS: u64 = {
    use wire::acl::*;
    VM | IMAGE
        | USER
        | TEMPLATE
        | GROUP
        | ACL
        | CLUSTER
        | DOCUMENT
        | ZONE
        | SECGROUP
        | VDC
        | VROUTER
        | MARKETPLACE
        | MARKETPLACEAPP
        | VMGROUP
        | VNTEMPLATE
};

/// `AclRule::INVALID_GROUP_OBJECTS`: the types an `@group` selector may not name.
const INVALID_GROUP_OBJECTS: u64 = {
    use wire::acl::*;
    HOST | GROUP | CLUSTER | ZONE | VDC
};

/// `AclRule::FEDERATED_OBJECTS`: the types a `#id` rule may name for every zone.
const FEDERATED_OBJECTS: u64 = {
    use wire::acl::*;
    USER | GROUP | ZONE | ACL | VDC
};

/// The types no rule may name: OpenNebula's mask, less HOOK, which OneHA has always taken.
const WRONG_TYPES: u64 = 0xFE00_0000_0000_0000;

/// `AclRule::malformed`: every reason the rule is malformed, in OpenNebula's words and order,
/// joined as it joins them.
fn malformed(user: u64, resource: u64, rights: u64, zone: u64) -> Option<String> {
    // `user_id()` and kin: the low 32 bits as a C `int`.
    let id = |v: u64| (v & ID_MASK) as u32 as i32;
    let selectors = |v: u64| v & SELECTORS;
    let mut why: Vec<&str> = Vec::new();
    if user & INDIVIDUAL_ID != 0 && user & GROUP_ID != 0 {
        why.push("[user] INDIVIDUAL (#) and GROUP (@) bits are exclusive");
    }
    if user & INDIVIDUAL_ID != 0 && user & ALL_ID != 0 {
        why.push("[user] INDIVIDUAL (#) and ALL (*) bits are exclusive");
    }
    if user & GROUP_ID != 0 && user & ALL_ID != 0 {
        why.push("[user] GROUP (@) and ALL (*) bits are exclusive");
    }
    if user & (INDIVIDUAL_ID | GROUP_ID | ALL_ID) == 0 {
        why.push("[user] is missing one of the INDIVIDUAL, GROUP or ALL bits");
    }
    if id(user) < 0 {
        why.push("[user] ID cannot be negative");
    }
    if user & ALL_ID != 0 && id(user) != 0 {
        why.push("when using the ALL bit, [user] ID must be 0");
    }
    let sel = selectors(resource);
    if [INDIVIDUAL_ID, GROUP_ID, CLUSTER_ID, ALL_ID]
        .iter()
        .any(|bit| resource & bit != 0 && sel != *bit)
    {
        why.push(
            "[resource] INDIVIDUAL (#), GROUP (@), CLUSTER (%) and ALL (*) bits are exclusive",
        );
    }
    let types = resource & 0xFFFF_FFF0_0000_0000;
    if resource & CLUSTER_ID != 0 && types & INVALID_CLUSTER_OBJECTS != 0 {
        why.push(
            "[resource] CLUSTER(%) selector can be applied only to DATASTORE, HOST and NET types",
        );
    }
    if resource & GROUP_ID != 0 && types & INVALID_GROUP_OBJECTS != 0 {
        why.push(
            "[resource] GROUP(@) selector cannot be applied to HOST, GROUP, CLUSTER, ZONE or VDC \
             types",
        );
    }
    if sel == 0 {
        why.push("[resource] is missing one of the INDIVIDUAL, GROUP, CLUSTER or ALL bits");
    }
    if id(resource) < 0 {
        why.push("[resource] ID cannot be negative");
    }
    if resource & ALL_ID != 0 && id(resource) != 0 {
        why.push("when using the ALL bit, [resource] ID must be 0");
    }
    if types == 0 {
        why.push("[resource] type is missing");
    }
    if resource & WRONG_TYPES != 0 {
        why.push("wrong [resource] type");
    }
    if rights == 0 {
        why.push("wrong [rights], it cannot be 0");
    }
    if rights > 0xF {
        why.push("wrong [rights], it cannot be bigger than 0xF");
    }
    let mut out = why.join("; ");
    // oned writes this one without a separator before it.
    if zone & GROUP_ID != 0 {
        out.push_str("[zone] GROUP (@) bit is not supported");
    }
    let mut more: Vec<&str> = Vec::new();
    if zone & INDIVIDUAL_ID != 0 && zone & ALL_ID != 0 {
        more.push("[zone] INDIVIDUAL (#) and ALL (*) bits are exclusive");
    }
    if zone & (INDIVIDUAL_ID | GROUP_ID | ALL_ID) == 0 {
        more.push("[zone] is missing one of the INDIVIDUAL or ALL bits");
    }
    if id(zone) < 0 {
        more.push("[zone] ID cannot be negative");
    }
    if zone & ALL_ID != 0 && id(zone) != 0 {
        more.push("when using the ALL bit, [zone] ID must be 0");
    }
    if zone & ALL_ID != 0 && resource & INDIVIDUAL_ID != 0 && types & FEDERATED_OBJECTS != types {
        more.push(
            "[resource] INDIVIDUAL(#) selector cannot be applied to ALL zones, except for USER, \
             GROUP and ZONE types",
        );
    }
    for m in more {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(m);
    }
    (!out.is_empty()).then_some(out)
}

/// `one.acl.addrule(user, resource, rights[, zone])` as `AclManager::add_rule`: an existing
/// rule refused first (`Rule <rule> already exists`), then a malformed one (`Rule <rule> is
/// malformed: <why>`), both INTERNAL.
pub async fn addrule(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let parse = |i: usize| -> Result<u64, super::Failure> { Ok(hex(p.string(i)?)) };
    let (user, resource, rights) = (parse(0)?, parse(1)?, parse(2)?);
    let zone = match p.0.get(3) {
        Some(_) => parse(3)?,
        None => wire::acl::INDIVIDUAL_ID | ctx.config.zone_id as u64,
    };
    let text = rule_string(user, resource, rights, zone);
    let exists = move |c: &sqlstore::Conn| rows::exists(c, (user, resource, rights, zone));
    if ctx.read(exists).await? {
        return Err(fail(code::INTERNAL, format!("Rule {text} already exists")));
    }
    if let Some(why) = malformed(user, resource, rights, zone) {
        return Err(fail(
            code::INTERNAL,
            format!("Rule {text} is malformed: {why}"),
        ));
    }
    let txn = SqlTxn {
        stmts: rows::insert(user, resource, rights, zone),
    };
    let values = ctx
        .commit(txn, |r| match r.kind {
            TxnErrorKind::Constraint => fail(code::INTERNAL, format!("Rule {text} already exists")),
            _ => r.internal(),
        })
        .await?;
    super::new_id(&values, "ACL rule")
}

pub async fn delrule(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let txn = SqlTxn {
        stmts: vec![sqlstore::objects::delete(rows::TABLE, id)],
    };
    // OpenNebula answers a missing rule with INTERNAL, not NO_EXISTS.
    ctx.commit(txn, |r| {
        r.missing(fail(code::INTERNAL, format!("Rule {id} does not exist")))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

pub async fn info(ctx: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    let mut rules = ctx.read(rows::load_all).await?;
    // `AclManager::dump` walks its map keyed by the user mask; rules of one user in the order
    // they came.
    rules.sort_by_key(|a| (a.user as i64, a.oid));
    Ok(Value::String(xml::build_with(|out| {
        Xml::new(out).elem("ACL_POOL", |x| {
            for a in &rules {
                acl_xml(x, a);
            }
        });
    })))
}

pub(super) fn acl_xml(x: &mut Xml<'_>, a: &AclRow) {
    x.elem("ACL", |x| {
        x.num("ID", a.oid)
            .num("USER", format_args!("{:x}", a.user))
            .num("RESOURCE", format_args!("{:x}", a.resource))
            .num("RIGHTS", format_args!("{:x}", a.rights))
            .num("ZONE", format_args!("{:x}", a.zone))
            .text("STRING", &rule_string(a.user, a.resource, a.rights, a.zone));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::acl::ALL_ID as ALL;

    #[test]
    fn rules_are_hex_with_or_without_0x_and_malformed_ones_are_named() {
        assert_eq!(hex("0x100000005"), 0x100000005);
        assert_eq!(hex("100000005"), 0x100000005);
        // As `>> hex` reads: nothing is 0, the digits before the rest are the number.
        assert_eq!(hex("zz"), 0);
        assert_eq!(hex("5zz"), 5);
        assert_eq!(malformed(0x100000005, 0x1000000000 | ALL, 0x1, ALL), None);
        assert!(malformed(0x5, 0x1000000000 | ALL, 0x1, ALL).is_some());
        assert!(malformed(0x100000005, ALL, 0x1, ALL).is_some());
        assert!(malformed(0x100000005, 0x1000000000 | ALL, 0x10, ALL).is_some());
    }
}
