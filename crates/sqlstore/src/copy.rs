//! Copies every row of one state database into another of the same schema, possibly of the
//! other backend: snapshots of a MySQL server (MySQL -> SQLite file) and their install (SQLite
//! file -> MySQL), `onedb sqlite2mysql`.

use crate::sql::{quote, Conn, Result, Row};
use crate::SqlValue;

/// Rows per INSERT: fewer round trips to a MySQL server, well under both engines' limits on
/// parameters (32766 for SQLite, 65535 for MySQL) for OneHA's widest table.
const BATCH_ROWS: usize = 100;

/// Replaces the content of every table of `to` with the rows `from` has in the table of the
/// same name (none if `from` lacks it), in one transaction on `to` that reads one consistent
/// state of `from`. Columns are matched by name: `to`'s schema decides.
pub fn copy_rows(from: &Conn, to: &mut Conn) -> Result<()> {
    let read = from.read_transaction()?;
    let source_tables = read.tables()?;
    let write = to.transaction()?;
    for table in write.tables()? {
        write.execute(&format!("DELETE FROM {}", quote(&table)), ())?;
        if !source_tables.contains(&table) {
            continue;
        }
        let columns = write.columns(&table)?;
        let list = columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut pending: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
        let flush = |rows: &mut Vec<Row>| -> Result<()> {
            if rows.is_empty() {
                return Ok(());
            }
            let one = format!("({})", vec!["?"; columns.len()].join(", "));
            let sql = format!(
                "INSERT INTO {} ({list}) VALUES {}",
                quote(&table),
                vec![one.as_str(); rows.len()].join(", ")
            );
            let values: Vec<SqlValue> = rows.iter().flat_map(|r| r.values().to_vec()).collect();
            write.prepare(&sql)?.execute(values)?;
            rows.clear();
            Ok(())
        };
        read.prepare(&format!("SELECT {list} FROM {}", quote(&table)))?
            .for_each((), |row| {
                pending.push(row.clone());
                if pending.len() == BATCH_ROWS {
                    flush(&mut pending)?;
                }
                Ok(())
            })?;
        flush(&mut pending)?;
    }
    write.commit()?;
    drop(read);
    Ok(())
}
