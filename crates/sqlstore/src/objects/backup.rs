//! What VM backups need beyond the image and VM rows: the image counter a backup's new image
//! id is read from, and a guard that it has not moved, so the VM's BACKUP_IDS (template text,
//! written in the same transaction) names the id the insert takes.

use crate::sql::Conn;
use crate::{SqlStmt, SqlValue};

/// `table`'s `pool_control` counter: the last oid handed out.
pub fn last_oid(c: &Conn, table: &str) -> crate::sql::Result<i64> {
    c.prepare_cached("SELECT last_oid FROM pool_control WHERE tablename = ?1")?
        .query_row([table], |r| r.get(0))
}

/// Matches nothing (so the transaction is refused) unless `table`'s counter is still `was`.
pub fn counter_is(table: &str, was: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE pool_control SET last_oid = last_oid WHERE tablename = ?1 AND last_oid = ?2",
        vec![SqlValue::Text(table.to_string()), SqlValue::Int(was)],
    )
    .must_match()
}
