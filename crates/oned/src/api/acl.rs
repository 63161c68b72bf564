//! `one.acl.addrule`, `delrule` and `info`: OpenNebula's ACL rules, stored as its bit masks
//! (`include/AclRule.h`) and shown with its text form (`@1 VM+IMAGE/* CREATE *`).

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::xml::esc;
use super::{code, fail, require_admin, Ctx, MethodResult, TxnFailure};
use crate::auth::Session;

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

pub async fn addrule(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    require_admin(s, "MANAGE ACL")?;
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
        stmts: vec![
            SqlStmt::new(
                "INSERT INTO acl (oid, user, resource, rights, zone)
                 SELECT last_oid + 1, ?1, ?2, ?3, ?4 FROM pool_control WHERE tablename = 'acl'
                 RETURNING oid",
                vec![
                    SqlValue::Int(user as i64),
                    SqlValue::Int(resource as i64),
                    SqlValue::Int(rights as i64),
                    SqlValue::Int(zone as i64),
                ],
            )
            .must_match(),
            SqlStmt::new(
                "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = 'acl'",
                vec![],
            ),
        ],
    };
    match ctx.write(txn).await {
        Ok(values) => Ok(Value::Int(
            values.first().and_then(SqlValue::as_i64).unwrap_or(-1) as i32,
        )),
        Err(TxnFailure::Txn(TxnErrorKind::Constraint, _)) => {
            Err(fail(code::INTERNAL, "Rule already exists"))
        }
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

pub async fn delrule(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    require_admin(s, "MANAGE ACL")?;
    let id = p.int(0)? as i64;
    let txn = SqlTxn {
        stmts: vec![
            SqlStmt::new("DELETE FROM acl WHERE oid = ?1", vec![SqlValue::Int(id)]).must_match(),
        ],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        // OpenNebula answers a missing rule with INTERNAL, not NO_EXISTS.
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => {
            Err(fail(code::INTERNAL, format!("Rule {id} does not exist")))
        }
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

pub async fn info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    require_admin(s, "MANAGE ACL")?;
    let rules: Vec<(i64, i64, i64, i64, i64)> = ctx
        .read(|c| {
            let mut st =
                c.prepare("SELECT oid, user, resource, rights, zone FROM acl ORDER BY oid")?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect();
            rows
        })
        .await?;
    let mut out = String::from("<ACL_POOL>");
    for (id, user, resource, rights, zone) in rules {
        let (u, r, ri, z) = (user as u64, resource as u64, rights as u64, zone as u64);
        out.push_str(&format!(
            "<ACL><ID>{id}</ID><USER>{u:x}</USER><RESOURCE>{r:x}</RESOURCE><RIGHTS>{ri:x}</RIGHTS><ZONE>{z:x}</ZONE><STRING>{}</STRING></ACL>",
            esc(&rule_string(u, r, ri, z))
        ));
    }
    out.push_str("</ACL_POOL>");
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::acl::ALL_ID as ALL;

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
            rule_string(0x400000000, 0x18000400000000, 0x1, 0x400000000),
            "* MARKETPLACE+MARKETPLACEAPP/* USE *"
        );
    }

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
