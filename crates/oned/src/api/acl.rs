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

use wire::acl::{
    CLUSTER_ID as CLUSTER, GROUP_ID as GROUP, ID_MASK, RESOURCES, RIGHTS_MASK, SELECTORS,
};

pub use wire::acl::rule_string;

/// A hex string, with or without `0x`, as C++ `>> hex` reads it.
fn hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u64::from_str_radix(t, 16).ok()
}

/// Exactly one selector bit.
fn one_selector(v: u64) -> bool {
    (v & SELECTORS).count_ones() == 1
}

/// Why a rule is malformed, as OpenNebula's `AclRule::malformed` words it.
fn malformed(user: u64, resource: u64, rights: u64, zone: u64) -> Option<&'static str> {
    let types: u64 = RESOURCES.iter().map(|(b, _)| b).sum();
    if !one_selector(user) || user & CLUSTER != 0 {
        return Some("[user] must be #id, @group or *");
    }
    if !one_selector(resource) {
        return Some("[resource] needs exactly one of #id, @group, %cluster or *");
    }
    if resource & types == 0 {
        return Some("[resource] type is missing");
    }
    if resource & !(types | SELECTORS | ID_MASK) != 0 {
        return Some("wrong [resource] type");
    }
    if rights == 0 || rights & !RIGHTS_MASK != 0 {
        return Some("wrong [rights], it must be USE, MANAGE, ADMIN or CREATE");
    }
    if !one_selector(zone) || zone & (GROUP | CLUSTER) != 0 {
        return Some("[zone] must be #id or *");
    }
    None
}

pub async fn addrule(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let parse = |i: usize| -> Result<u64, super::Failure> {
        let text = p.string(i)?;
        hex(text).ok_or_else(|| {
            fail(
                code::INTERNAL,
                format!("Error parsing rule: {text} is not a hexadecimal number"),
            )
        })
    };
    let (user, resource, rights) = (parse(0)?, parse(1)?, parse(2)?);
    let zone = match p.0.get(3) {
        Some(_) => parse(3)?,
        None => wire::acl::INDIVIDUAL_ID | ctx.config.zone_id as u64,
    };
    if let Some(why) = malformed(user, resource, rights, zone) {
        return Err(fail(code::INTERNAL, format!("Error parsing rule: {why}")));
    }
    let txn = SqlTxn {
        stmts: rows::insert(user, resource, rights, zone),
    };
    let values = ctx
        .commit(txn, |r| match r.kind {
            TxnErrorKind::Constraint => fail(code::INTERNAL, "Rule already exists"),
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
    let rules = ctx.read(rows::load_all).await?;
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
        assert_eq!(hex("0x100000005"), Some(0x100000005));
        assert_eq!(hex("100000005"), Some(0x100000005));
        assert_eq!(hex("zz"), None);
        assert_eq!(malformed(0x100000005, 0x1000000000 | ALL, 0x1, ALL), None);
        assert!(malformed(0x5, 0x1000000000 | ALL, 0x1, ALL).is_some());
        assert!(malformed(0x100000005, ALL, 0x1, ALL).is_some());
        assert!(malformed(0x100000005, 0x1000000000 | ALL, 0x10, ALL).is_some());
    }
}
