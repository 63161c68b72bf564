//! A digest of the whole state database, equal on two servers exactly when their state tables
//! hold the same rows. Operators and the fault suite compare it across servers to prove the
//! replicas never diverged.

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

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
/// may renumber rowids, and two replicas with the same rows must still agree.
pub fn checksum(conn: &Connection) -> rusqlite::Result<Checksum> {
    checksum_except(conn, &[])
}

/// [`checksum`] of every table but those named in `skip`.
pub fn checksum_except(conn: &Connection, skip: &[&str]) -> rusqlite::Result<Checksum> {
    let tx = conn.unchecked_transaction()?;
    let names: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut hash = Sha256::new();
    let mut tables = Vec::with_capacity(names.len());
    for name in names.into_iter().filter(|n| !skip.contains(&n.as_str())) {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let mut stmt = tx.prepare(&format!("SELECT * FROM {quoted} LIMIT 0"))?;
        let ncols = stmt.column_count();
        let order: Vec<String> = (1..=ncols).map(|i| i.to_string()).collect();
        field(&mut hash, b't', name.as_bytes());
        for col in stmt.column_names() {
            field(&mut hash, b'c', col.as_bytes());
        }
        let sql = if ncols == 0 {
            format!("SELECT * FROM {quoted}")
        } else {
            format!("SELECT * FROM {quoted} ORDER BY {}", order.join(", "))
        };
        stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            hash.update(b"r");
            for i in 0..ncols {
                match row.get_ref(i)? {
                    ValueRef::Null => hash.update(b"n"),
                    ValueRef::Integer(v) => field(&mut hash, b'i', &v.to_le_bytes()),
                    ValueRef::Real(v) => field(&mut hash, b'f', &v.to_bits().to_le_bytes()),
                    ValueRef::Text(v) => field(&mut hash, b's', v),
                    ValueRef::Blob(v) => field(&mut hash, b'b', v),
                }
            }
            count += 1;
        }
        tables.push((name, count));
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

    fn db(rows: &[(i64, &str)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER, name TEXT); CREATE TABLE u (x BLOB);")
            .unwrap();
        for (id, name) in rows {
            conn.execute("INSERT INTO t VALUES (?1, ?2)", (id, name))
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
