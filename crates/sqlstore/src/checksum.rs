//! A digest of the whole state database, equal on two servers exactly when their state tables
//! hold the same rows. Operators and the fault suite compare it across servers to prove the
//! replicas never diverged.

use sha2::{Digest, Sha256};

use crate::sql::{quote, Conn, Result};
use crate::SqlValue;

/// The digest and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// Hex SHA-256 over every table's name, columns and rows.
    pub sha256: String,
    /// `(table, rows)` in the order hashed.
    pub tables: Vec<(String, u64)>,
}

/// Hashes every table of `conn` in one read transaction.
///
/// Rows are taken in the order of their values, not of their rowids: `VACUUM INTO` (snapshots)
/// may renumber rowids, and two replicas with the same rows must still agree. Both backends
/// give the same digest for the same rows: tables in byte order of their names, columns in
/// their order, text compared byte by byte (MySQL's binary no-pad collation), and each value
/// hashed by its kind (integer, real, text, blob, NULL).
pub fn checksum(conn: &Conn) -> Result<Checksum> {
    checksum_except(conn, &[])
}

/// [`checksum`] of every table but those named in `skip`.
pub fn checksum_except(conn: &Conn, skip: &[&str]) -> Result<Checksum> {
    let tx = conn.read_transaction()?;
    checksum_in(&tx, skip)
}

/// [`checksum_except`] inside the read transaction already open on `tx`, so what else reads
/// there (a dump) sees the same state.
pub(crate) fn checksum_in(tx: &Conn, skip: &[&str]) -> Result<Checksum> {
    let names = tx.tables()?;
    let whole: Vec<(&str, Option<&str>)> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !skip.contains(n))
        .map(|n| (n, None))
        .collect();
    checksum_of(tx, &whole)
}

/// The digest of the rows of each `(table, filter)` (a SQL condition on the table's columns,
/// or every row), in the order given, hashed as [`checksum`] hashes whole tables.
pub(crate) fn checksum_of(tx: &Conn, selection: &[(&str, Option<&str>)]) -> Result<Checksum> {
    let mut hash = Sha256::new();
    let mut tables = Vec::with_capacity(selection.len());
    for &(name, filter) in selection {
        let quoted = quote(name);
        let columns = tx.columns(name)?;
        let ncols = columns.len();
        field(&mut hash, b't', name.as_bytes());
        for col in &columns {
            field(&mut hash, b'c', col.as_bytes());
        }
        let mut sql = format!("SELECT * FROM {quoted}");
        if let Some(cond) = filter {
            sql.push_str(" WHERE ");
            sql.push_str(cond);
        }
        if ncols > 0 {
            let order: Vec<String> = (1..=ncols).map(|i| i.to_string()).collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&order.join(", "));
        }
        let mut count = 0u64;
        tx.prepare(&sql)?.for_each((), |row| {
            hash.update(b"r");
            for v in row.values() {
                match v {
                    SqlValue::Null => hash.update(b"n"),
                    SqlValue::Int(v) => field(&mut hash, b'i', &v.to_le_bytes()),
                    SqlValue::Real(v) => field(&mut hash, b'f', &v.to_bits().to_le_bytes()),
                    SqlValue::Text(v) => field(&mut hash, b's', v.as_bytes()),
                    SqlValue::Blob(v) => field(&mut hash, b'b', v),
                }
            }
            count += 1;
            Ok(())
        })?;
        tables.push((name.to_string(), count));
    }
    Ok(Checksum {
        sha256: hex::encode(hash.finalize()),
        tables,
    })
}

/// A tagged, length-prefixed field, so no two different tables or rows hash the same bytes.
fn field(hash: &mut Sha256, tag: u8, bytes: &[u8]) {
    hash.update([tag]);
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(rows: &[(i64, &str)]) -> Conn {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (id INTEGER, name TEXT); CREATE TABLE u (x BLOB);")
            .unwrap();
        for (id, name) in rows {
            conn.execute("INSERT INTO t VALUES (?1, ?2)", (*id, *name))
                .unwrap();
        }
        conn
    }

    #[test]
    fn same_rows_in_another_insertion_order_give_the_same_checksum() {
        let a = checksum(&db(&[(1, "a"), (2, "b")])).unwrap();
        let b = checksum(&db(&[(2, "b"), (1, "a")])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.tables, vec![("t".to_string(), 2), ("u".to_string(), 0)]);
    }

    #[test]
    fn any_difference_in_a_row_changes_the_checksum() {
        let base = checksum(&db(&[(1, "a"), (2, "b")])).unwrap();
        for other in [
            db(&[(1, "a"), (2, "c")]),
            db(&[(1, "a")]),
            db(&[(1, "a"), (2, "b"), (3, "")]),
            db(&[(1, "ab"), (2, "")]),
        ] {
            assert_ne!(checksum(&other).unwrap().sha256, base.sha256);
        }
    }
}
