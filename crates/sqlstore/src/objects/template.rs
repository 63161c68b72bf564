//! VM templates (`template_pool`).

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next_unless, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "template_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRow {
    pub head: Head,
    pub lock: Lock,
    pub regtime: i64,
    pub template: String,
}

has_owner!(lockable TemplateRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<TemplateRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(TemplateRow {
        head,
        lock,
        regtime: r.get(c)?,
        template: r.get(c + 1)?,
    })
}

pub static ROWS: Rows<TemplateRow> = Rows {
    select: owned_select!(lockable "template_pool", "t", "t.regtime, t.template"),
    alias: "t",
    read,
};

/// A new template; the oid comes from the counter ([`super::next_oid`]). Unless its owner has
/// one of that name already (`VMTemplatePool::allocate`): the statement then matches no row
/// (`TxnErrorKind::NotFound`). The check runs in the apply, under the log's order, so two
/// allocations of one name cannot both pass it, and an allocation reads nothing beforehand.
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, regtime: i64, text: String) -> SqlStmt {
    insert_next_unless(
        TABLE,
        "name, uid, gid, perms, regtime, template",
        "?1, ?2, ?3, ?4, ?5, ?6",
        "EXISTS (SELECT 1 FROM template_pool WHERE uid = ?2 AND name = ?1)",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Int(regtime),
            SqlValue::Text(text),
        ],
    )
}

/// A guard for the end of a rename or chown of template `oid`: matches no row (refusing the
/// transaction) when its owner now holds another template of its name. `template_pool` has no
/// UNIQUE (uid, name) (OpenNebula's has none either), so this keeps it where it is applied.
pub fn name_still_unique(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT 1 FROM template_pool t WHERE t.oid = ?1 AND NOT EXISTS
           (SELECT 1 FROM template_pool o WHERE o.uid = t.uid AND o.name = t.name
              AND o.oid <> t.oid)",
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}
