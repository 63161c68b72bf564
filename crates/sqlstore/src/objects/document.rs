//! Generic documents (`document_pool`): OpenNebula's store for what its services keep in the
//! cloud's database, such as OneFlow's services and service templates, told apart by `type`.

use crate::sql::{Conn, Row};

use super::{has_owner, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "document_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub head: Head,
    pub lock: Lock,
    pub kind: i64,
    pub template: String,
}

has_owner!(lockable DocumentRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<DocumentRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(DocumentRow {
        head,
        lock,
        kind: r.get(c)?,
        template: r.get(c + 1)?,
    })
}

pub static ROWS: Rows<DocumentRow> = Rows {
    select: owned_select!(lockable "document_pool", "d", "d.type, d.template"),
    alias: "d",
    read,
};

/// A new document; the oid comes from the counter ([`super::next_oid`]). Without a name it is
/// called `document-<oid>`, as OpenNebula names it.
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, kind: i64, text: String) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO document_pool (oid, name, uid, gid, perms, type, template)
         SELECT last_oid + 1,
                CASE WHEN ?1 = '' THEN CONCAT('document-', last_oid + 1) ELSE ?1 END,
                ?2, ?3, ?4, ?5, ?6
         FROM pool_control WHERE tablename = 'document_pool' RETURNING oid",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Int(kind),
            SqlValue::Text(text),
        ],
    )
    .must_match()
}
