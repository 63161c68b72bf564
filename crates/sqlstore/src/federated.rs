//! `onedb backup --federated` and `onedb restore --federated`: the tables a federation of zones
//! shares (OpenNebula's `FEDERATED_TABLES`: users, groups, ACL rules, zones, VDCs, marketplaces
//! and their apps), copied from the master zone's database into a slave zone's, whose own
//! tables (hosts, VMs, images, networks, quotas...) stay as they are.
//!
//! The file is portable between the backends: a header line, then for each table a line naming
//! it and its columns followed by one JSON array of values per row, and a last line with the
//! digests of the rows it holds and of every byte before it. A truncated or edited file, or one
//! from a schema with other columns, is refused before anything changes; the restore replaces
//! every federated row in one transaction and checks the result against the file's digest
//! before it commits.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checksum::checksum_of;
use crate::open::DbError;
use crate::sql::SqlError;
use crate::sql::{quote, Conn, Location};
use crate::txn::Undo;
use crate::{BackupInfo, SqlStmt, SqlTxn, SqlValue, TxnOutcome};

/// OneHA's tables that hold OpenNebula's federated pools: `user_pool` with its groups and login
/// tokens, `group_pool` with its admins, `acl`, `zone_pool` with each zone's servers,
/// `vdc_pool` with its groups and resources, `marketplace_pool`, `marketplaceapp_pool`, their
/// schema version (`db_versioning`, checked by a slave zone when it starts); and
/// `fed_log`, the federated log, so a zone restored from the master's tables continues from
/// the master's last record, as OpenNebula's federated backup carries its `logdb` rows.
/// Quotas stay per zone, as OpenNebula keeps them.
pub const FEDERATED_TABLES: &[&str] = &[
    "acl",
    "db_versioning",
    "fed_log",
    "group_admins",
    "group_pool",
    "marketplace_pool",
    "marketplaceapp_pool",
    "user_groups",
    "user_login_tokens",
    "user_pool",
    "vdc_group",
    "vdc_pool",
    "vdc_resource",
    "zone_pool",
    "zone_server",
];

/// The id counters of the federated pools, kept with them so a zone that becomes the master
/// later allocates no id twice.
const COUNTERS: (&str, &str) = (
    "pool_control",
    "tablename IN ('acl', 'group_pool', 'marketplace_pool', 'marketplaceapp_pool', \
     'user_pool', 'vdc_pool', 'zone_pool') OR tablename LIKE 'zone_server/%'",
);

const HEADER: &str =
    "-- OneHA federated tables (onedb backup --federated). Load them with: onedb restore --federated <this file>";
const TABLE: &str = "-- table ";
/// Bumped if the layout of these files changes.
const FORMAT: &str = "oneha-federated-2";

/// The federated records a master keeps: a fixed number, not `LOG_RETENTION`, so that every
/// server of the zone drops the same ones whatever its own configuration says. A slave zone
/// further behind than this will need the federated tables whole (issue 17).
pub const FED_LOG_RETENTION: i64 = 10_000;

/// The pools whose id counters (`pool_control` rows) are federated.
const FEDERATED_POOLS: &[&str] = &[
    "acl",
    "group_pool",
    "marketplace_pool",
    "marketplaceapp_pool",
    "user_pool",
    "vdc_pool",
    "zone_pool",
];

/// Whether `stmt` writes a federated table (or a federated pool's id counter).
pub fn is_federated_write(stmt: &SqlStmt) -> bool {
    match crate::changes::target(&stmt.sql) {
        Some("pool_control") => {
            FEDERATED_POOLS.iter().any(|pool| {
                stmt.sql.contains(&format!("'{pool}'"))
                    || stmt
                        .params
                        .iter()
                        .any(|p| matches!(p, SqlValue::Text(t) if t == pool))
            }) || stmt.params.iter().any(
                |p| matches!(p, SqlValue::Text(t) if t.starts_with(crate::objects::zone::SERVER_COUNTER)),
            )
        }
        Some("fed_log") => false,
        Some(table) => FEDERATED_TABLES.contains(&table),
        None => false,
    }
}

/// Federated statements applied that also read a zone's own tables, since start. Each zone
/// would compute such a statement from its own rows, so the zones' copies of the shared tables
/// would part: every one is a bug, logged with its SQL.
pub static LOCAL_READS: AtomicU64 = AtomicU64::new(0);

/// The tables `stmt` reads (after FROM or JOIN, and each further table of a comma join, its
/// own target aside) that are not federated.
pub fn local_tables_read(stmt: &SqlStmt) -> Vec<&str> {
    let target = crate::changes::target(&stmt.sql);
    let mut words = sql_words(&stmt.sql).peekable();
    let mut named = Vec::new();
    while let Some(w) = words.next() {
        if !(w.eq_ignore_ascii_case("FROM") || w.eq_ignore_ascii_case("JOIN")) {
            continue;
        }
        let Some(table) = words.next() else { break };
        if table.eq_ignore_ascii_case("SELECT") {
            // A subquery: its own FROM names its tables.
            continue;
        }
        named.push(table);
        // `FROM a [[AS] x], b [[AS] y], ...`: the tables after the first are read too.
        loop {
            if words.next_if(|w| w.eq_ignore_ascii_case("AS")).is_some() {
                words.next();
            } else {
                words.next_if(|w| is_alias(w));
            }
            if words.next_if(|w| *w == ",").is_none() {
                break;
            }
            let Some(table) = words.next() else { break };
            named.push(table);
        }
    }
    let mut local: Vec<&str> = Vec::new();
    for table in named {
        let table = table.trim_matches(|c| c == '`' || c == '"');
        let read_here = !(table == ","
            || Some(table) == target
            || table == "pool_control"
            || table.starts_with(STAGE_PREFIX)
            || FEDERATED_TABLES.contains(&table)
            || local.contains(&table));
        if read_here {
            local.push(table);
        }
    }
    local
}

/// The words of `sql`, with each comma a word of its own; parentheses and semicolons part
/// words and are dropped.
fn sql_words(sql: &str) -> impl Iterator<Item = &str> {
    sql.split_inclusive(|c: char| c.is_ascii_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
        .flat_map(|w| match w.strip_suffix(',') {
            Some(head) => [head, ","],
            None => [
                w.trim_end_matches(|c: char| {
                    c.is_ascii_whitespace() || matches!(c, '(' | ')' | ';')
                }),
                "",
            ],
        })
        .filter(|w| !w.is_empty())
}

/// Whether `word`, right after a table's name, names that table (an alias), not a clause.
fn is_alias(word: &str) -> bool {
    const CLAUSES: [&str; 16] = [
        "WHERE", "ON", "USING", "JOIN", "LEFT", "RIGHT", "INNER", "OUTER", "CROSS", "NATURAL",
        "GROUP", "ORDER", "LIMIT", "HAVING", "UNION", "SET",
    ];
    word != "," && !CLAUSES.iter().any(|c| word.eq_ignore_ascii_case(c))
}

/// Counts and logs a federated statement that reads local tables ([`LOCAL_READS`]).
fn check_reads(stmt: &SqlStmt) {
    let local = local_tables_read(stmt);
    if !local.is_empty() {
        LOCAL_READS.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            sql = %stmt.sql,
            tables = ?local,
            "a statement on the federated tables reads this zone's own tables: zones may part"
        );
    }
}

/// Applies `txns` in the open transaction `tx`, as `apply_txn` does each. With `federated`
/// (a federation's master), the statements of those that succeeded and wrote a federated
/// table become the next record of the federated log (`fed_log`), in the same transaction:
/// every server of the zone applies the same transactions in the same order, so every one
/// holds the same federated log, numbered 1, 2, 3... without gaps.
pub fn apply_batch(
    tx: &Conn,
    txns: &[SqlTxn],
    federated: bool,
) -> Result<Vec<TxnOutcome>, SqlError> {
    apply_batch_with(tx, txns, federated, Undo::Savepoint)
        .map(|outcomes| outcomes.unwrap_or_default())
}

/// [`apply_batch`] without a savepoint per transaction (`Undo::Abandon`): `None` as soon as one
/// transaction fails, its first statements still applied; the caller must then roll back its
/// whole database transaction and apply the same entries with [`apply_batch`], which gives
/// every server the same outcomes as if this attempt had never been made.
pub fn apply_batch_or_abandon(
    tx: &Conn,
    txns: &[SqlTxn],
    federated: bool,
) -> Result<Option<Vec<TxnOutcome>>, SqlError> {
    apply_batch_with(tx, txns, federated, Undo::Abandon)
}

fn apply_batch_with(
    tx: &Conn,
    txns: &[SqlTxn],
    federated: bool,
    undo: Undo,
) -> Result<Option<Vec<TxnOutcome>>, SqlError> {
    let mut outcomes = Vec::with_capacity(txns.len());
    let mut record: Vec<&SqlStmt> = Vec::new();
    for t in txns {
        let outcome = crate::txn::apply_txn_with(tx, t, undo)?;
        if undo == Undo::Abandon && !matches!(outcome, TxnOutcome::Done { .. }) {
            return Ok(None);
        }
        if federated && matches!(outcome, TxnOutcome::Done { .. }) {
            record.extend(t.stmts.iter().filter(|s| is_federated_write(s)));
        }
        if cfg!(debug_assertions) || federated {
            t.stmts
                .iter()
                .filter(|s| is_federated_write(s))
                .for_each(check_reads);
        }
        outcomes.push(outcome);
    }
    if !record.is_empty() {
        let body = serde_json::to_string(&record)
            .map_err(|e| SqlError::Encode(format!("encoding a federated record: {e}")))?;
        let last = last_federated(tx)?.unwrap_or(0) + 1;
        tx.prepare_cached("INSERT INTO fed_log (fed_index, body) VALUES (?1, ?2)")?
            .execute((last, body))?;
        if last > FED_LOG_RETENTION {
            tx.prepare_cached("DELETE FROM fed_log WHERE fed_index <= ?1")?
                .execute([last - FED_LOG_RETENTION])?;
        }
    }
    Ok(Some(outcomes))
}

/// The digest of the federated tables but the federated log (whose records a slave holds
/// fewer of, after a snapshot): equal on every server of every zone of a federation that
/// caught up.
pub fn federated_checksum(conn: &Conn) -> Result<String, SqlError> {
    let tx = conn.read_transaction()?;
    let tables: Vec<_> = selection()
        .into_iter()
        .filter(|(t, _)| *t != "fed_log")
        .collect();
    Ok(checksum_of(&tx, &tables)?.sha256)
}

/// The index of the newest record of the federated log, if there is one.
pub fn last_federated(c: &Conn) -> Result<Option<i64>, SqlError> {
    c.query_row("SELECT MAX(fed_index) FROM fed_log", (), |r| r.get(0))
}

fn selection() -> Vec<(&'static str, Option<&'static str>)> {
    FEDERATED_TABLES
        .iter()
        .map(|t| (*t, None))
        .chain([(COUNTERS.0, Some(COUNTERS.1))])
        .collect()
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("{}: {what}", path.display()))
}

/// Whether `path` starts like a file written by [`write_federated`].
pub fn is_federated(path: &Path) -> bool {
    let mut head = vec![0u8; HEADER.len()];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head == HEADER.as_bytes())
}

/// Writes the federated tables of the database behind `conn` to `dest` (replaced if it
/// exists), from one consistent snapshot, while oned goes on writing.
pub fn write_federated(conn: &Conn, dest: &Path) -> Result<BackupInfo, DbError> {
    let tx = conn.read_transaction().map_err(DbError::at(dest))?;
    let sum = checksum_of(&tx, &selection()).map_err(DbError::at(dest))?;
    let mut out = crate::digested::Writer::create(dest, ".oneha-federated.")?;
    {
        let mut line = |text: &str| out.line(text);
        line(HEADER)?;
        for (table, filter) in selection() {
            let columns = tx.columns(table).map_err(DbError::at(dest))?;
            line(&format!("{TABLE}{table} {}", columns.join(",")))?;
            let mut sql = format!("SELECT * FROM {}", quote(table));
            if let Some(cond) = filter {
                sql.push_str(" WHERE ");
                sql.push_str(cond);
            }
            let mut failed = None;
            tx.prepare(&sql)
                .and_then(|mut st| {
                    st.for_each((), |row| {
                        let text = serde_json::to_string(row.values())
                            .map_err(|e| DbError::Corrupt(format!("a row of {table}: {e}")))
                            .and_then(|t| line(&t));
                        if let Err(e) = text {
                            failed.get_or_insert(e);
                        }
                        Ok(())
                    })
                })
                .map_err(DbError::at(dest))?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    out.finish(FORMAT, &sum.sha256)?;
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}

/// A slave zone's federated tables whole, as the master holds them after its record `index`:
/// what the master sends a slave zone its records cannot bring up to date (behind the records
/// kept, or refusing one because its tables differ). Applied as one transaction through the
/// slave zone's log ([`FedSnapshot::statements`]), it leaves the slave's federated log at
/// `index`, from which records follow as usual.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FedSnapshot {
    pub index: i64,
    pub tables: Vec<SnapshotTable>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SnapshotTable {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// The federated tables of the database behind `conn`, from one consistent read, with the
/// newest record of the federated log only (the one the slave goes on from); `None` if the
/// log is empty (a zone then needs no snapshot).
pub fn federated_snapshot(conn: &Conn) -> Result<Option<FedSnapshot>, SqlError> {
    let tx = conn.read_transaction()?;
    let Some(index) = last_federated(&tx)? else {
        return Ok(None);
    };
    let mut tables = Vec::new();
    for (table, filter) in selection() {
        let columns = tx.columns(table)?;
        let mut sql = format!("SELECT * FROM {}", quote(table));
        match (table, filter) {
            ("fed_log", _) => sql.push_str(&format!(" WHERE fed_index = {index}")),
            (_, Some(cond)) => {
                sql.push_str(" WHERE ");
                sql.push_str(cond);
            }
            _ => {}
        }
        let mut rows = Vec::new();
        tx.prepare(&sql)?.for_each((), |row| {
            rows.push(row.values().to_vec());
            Ok(())
        })?;
        tables.push(SnapshotTable {
            table: table.to_string(),
            columns,
            rows,
        });
    }
    Ok(Some(FedSnapshot { index, tables }))
}

/// The tables a snapshot sent in parts is staged in on a slave: `fedsnap_<table>` for each
/// federated table, with its columns, and `fed_snapshot_stage` saying which snapshot they
/// hold and which part comes next. Written only through the slave zone's log, like any
/// table, so every server of the zone holds the same staged parts.
pub const STAGE_PREFIX: &str = "fedsnap_";
const STAGE: &str = "fed_snapshot_stage";

/// Creates the staging tables that are missing ([`STAGE_PREFIX`]), empty, shaped as the
/// federated tables.
pub(crate) fn ensure_staging(conn: &Conn) -> Result<(), SqlError> {
    for (table, _) in selection() {
        let stage = quote(&format!("{STAGE_PREFIX}{table}"));
        let sql = match conn.backend() {
            crate::Backend::Sqlite => {
                format!("CREATE TABLE IF NOT EXISTS {stage} AS SELECT * FROM {table} WHERE 0")
            }
            // `LIKE`, not `AS SELECT`, which a server enforcing GTID consistency refuses.
            crate::Backend::Mysql => {
                format!("CREATE TABLE IF NOT EXISTS {stage} LIKE {}", quote(table))
            }
        };
        conn.execute_batch(&sql)?;
    }
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {STAGE} (snap_index BIGINT NOT NULL, next_part BIGINT NOT NULL, parts BIGINT NOT NULL)"
    ))
}

impl FedSnapshot {
    /// The transaction that makes a slave's federated tables this snapshot's: each federated
    /// table emptied and filled again. Refused if the tables are not exactly the federated
    /// ones, or a row does not fit its columns.
    pub fn statements(&self) -> Result<Vec<SqlStmt>, String> {
        let mut stmts = Vec::new();
        for (t, filter) in self.checked()? {
            stmts.push(SqlStmt::new(&delete_all(&t.table, filter), vec![]));
            stmts.extend(t.inserts(&t.table));
        }
        Ok(stmts)
    }

    /// The transaction that takes part `part` of `parts` of a snapshot too large for one
    /// request ([`FedSnapshot::split`]): part 0 empties the staging tables and stages its
    /// rows; each later part stages its rows only if it is the next one of the same snapshot
    /// (its first statement matches no row otherwise); the last one then makes the federated
    /// tables the staged ones, in the same transaction.
    pub fn part_statements(&self, part: i64, parts: i64) -> Result<Vec<SqlStmt>, String> {
        if parts < 2 || !(0..parts).contains(&part) {
            return Err(format!("part {part} of {parts}"));
        }
        let tables = self.checked()?;
        let mut stmts = Vec::new();
        if part == 0 {
            for (t, _) in &tables {
                let stage = quote(&format!("{STAGE_PREFIX}{}", t.table));
                stmts.push(SqlStmt::new(&format!("DELETE FROM {stage}"), vec![]));
            }
            stmts.push(SqlStmt::new(&format!("DELETE FROM {STAGE}"), vec![]));
            stmts.push(SqlStmt::new(
                &format!("INSERT INTO {STAGE} (snap_index, next_part, parts) VALUES (?1, 1, ?2)"),
                vec![SqlValue::Int(self.index), SqlValue::Int(parts)],
            ));
        } else {
            stmts.push(
                SqlStmt::new(
                    &format!(
                        "UPDATE {STAGE} SET next_part = next_part + 1
                         WHERE snap_index = ?1 AND next_part = ?2 AND parts = ?3"
                    ),
                    vec![
                        SqlValue::Int(self.index),
                        SqlValue::Int(part),
                        SqlValue::Int(parts),
                    ],
                )
                .must_match(),
            );
        }
        for (t, _) in &tables {
            stmts.extend(t.inserts(&format!("{STAGE_PREFIX}{}", t.table)));
        }
        if part == parts - 1 {
            for (t, filter) in &tables {
                let stage = quote(&format!("{STAGE_PREFIX}{}", t.table));
                let columns = t.column_list();
                stmts.push(SqlStmt::new(&delete_all(&t.table, *filter), vec![]));
                stmts.push(SqlStmt::new(
                    &format!(
                        "INSERT INTO {} ({columns}) SELECT {columns} FROM {stage}",
                        quote(&t.table)
                    ),
                    vec![],
                ));
                stmts.push(SqlStmt::new(&format!("DELETE FROM {stage}"), vec![]));
            }
            stmts.push(SqlStmt::new(&format!("DELETE FROM {STAGE}"), vec![]));
        }
        Ok(stmts)
    }

    /// This snapshot in parts of about `max_bytes` of rows each (at least one row a part),
    /// each naming every table, in order.
    pub fn split(&self, max_bytes: usize) -> Vec<FedSnapshot> {
        let empty = || FedSnapshot {
            index: self.index,
            tables: self
                .tables
                .iter()
                .map(|t| SnapshotTable {
                    table: t.table.clone(),
                    columns: t.columns.clone(),
                    rows: Vec::new(),
                })
                .collect(),
        };
        let mut parts = vec![empty()];
        let mut bytes = 0;
        for (n, t) in self.tables.iter().enumerate() {
            for row in &t.rows {
                let size = serde_json::to_string(row).map_or(0, |r| r.len()) + 1;
                if bytes > 0 && bytes + size > max_bytes {
                    parts.push(empty());
                    bytes = 0;
                }
                bytes += size;
                if let Some(part) = parts.last_mut() {
                    part.tables[n].rows.push(row.clone());
                }
            }
        }
        parts
    }

    /// The tables with their filters, if they are exactly the federated ones with sane
    /// column names.
    fn checked(&self) -> Result<Vec<(&SnapshotTable, Option<&'static str>)>, String> {
        let expected = selection();
        let found: Vec<&str> = self.tables.iter().map(|t| t.table.as_str()).collect();
        if found != expected.iter().map(|(t, _)| *t).collect::<Vec<_>>() {
            return Err(format!(
                "holds the tables {found:?}, not the federated tables"
            ));
        }
        let mut tables = Vec::new();
        for (t, (_, filter)) in self.tables.iter().zip(expected) {
            if let Some(bad) = t.columns.iter().find(|c| !is_column_name(c)) {
                return Err(format!("table {}: {bad:?} is not a column name", t.table));
            }
            if let Some(row) = t.rows.iter().find(|r| r.len() != t.columns.len()) {
                return Err(format!(
                    "table {}: a row of {} values for {} columns",
                    t.table,
                    row.len(),
                    t.columns.len()
                ));
            }
            tables.push((t, filter));
        }
        Ok(tables)
    }
}

fn delete_all(table: &str, filter: Option<&str>) -> String {
    match filter {
        Some(cond) => format!("DELETE FROM {} WHERE {cond}", quote(table)),
        None => format!("DELETE FROM {}", quote(table)),
    }
}

impl SnapshotTable {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Its rows inserted into `into`.
    fn inserts(&self, into: &str) -> impl Iterator<Item = SqlStmt> + '_ {
        let marks: Vec<String> = (1..=self.columns.len()).map(|n| format!("?{n}")).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(into),
            self.column_list(),
            marks.join(", ")
        );
        self.rows
            .iter()
            .map(move |row| SqlStmt::new(&insert, row.clone()))
    }
}

fn is_column_name(c: &str) -> bool {
    !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// One table of a federated backup: its columns and rows.
struct Section {
    table: String,
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

/// The sections of a verified file and the digest of the rows they hold.
fn read(path: &Path) -> Result<(Vec<Section>, String), DbError> {
    let (body, state) = crate::digested::read(path, FORMAT, |f| {
        if f.starts_with("oneha-federated-") {
            format!(
                "format {f}: a federated backup of another OneHA version ({FORMAT} here): \
                 take it again with this version's onedb backup --federated"
            )
        } else {
            format!("format {f}, not a federated backup ({FORMAT}): restore it without --federated")
        }
    })?;
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err(corrupt(path, "not a OneHA federated backup"));
    }
    let mut sections: Vec<Section> = Vec::new();
    for (n, l) in lines.enumerate() {
        if let Some(head) = l.strip_prefix(TABLE) {
            let (table, columns) = head.split_once(' ').unwrap_or((head, ""));
            sections.push(Section {
                table: table.to_string(),
                columns: columns.split(',').map(str::to_string).collect(),
                rows: Vec::new(),
            });
            continue;
        }
        let section = sections
            .last_mut()
            .ok_or_else(|| corrupt(path, format!("line {}: a row before any table", n + 2)))?;
        let row: Vec<SqlValue> =
            serde_json::from_str(l).map_err(|e| corrupt(path, format!("line {}: {e}", n + 2)))?;
        if row.len() != section.columns.len() {
            return Err(corrupt(
                path,
                format!(
                    "line {}: {} values for {} columns",
                    n + 2,
                    row.len(),
                    section.columns.len()
                ),
            ));
        }
        section.rows.push(row);
    }
    let expected: Vec<&str> = selection().iter().map(|(t, _)| *t).collect();
    let found: Vec<&str> = sections.iter().map(|s| s.table.as_str()).collect();
    if found != expected {
        return Err(corrupt(
            path,
            format!("holds the tables {found:?}, not the federated tables {expected:?}"),
        ));
    }
    Ok((sections, state))
}

/// Checks that `path` is a complete, unmodified federated backup; returns the digest of the
/// rows it holds.
pub fn verify_federated(path: &Path) -> Result<String, DbError> {
    read(path).map(|(_, state)| state)
}

/// Replaces the federated rows of the state database at `target` with those of the file `src`,
/// in one transaction, after checking the file and that the database's tables have the same
/// columns. The database's other tables are left as they are.
pub fn restore_federated(src: &Path, target: &Location) -> Result<BackupInfo, DbError> {
    let (sections, state) = read(src)?;
    // Holds the database's lock: a restore never runs under a live oned, nor one under it.
    let mut conn = crate::open_state(target)?;
    let tx = conn.transaction().map_err(DbError::on(target))?;
    for (section, (_, filter)) in sections.iter().zip(selection()) {
        let here = tx.columns(&section.table).map_err(DbError::on(target))?;
        if here != section.columns {
            return Err(DbError::Corrupt(format!(
                "{}: table {} has the columns {:?} there, {:?} in the backup (another OneHA version): nothing was changed",
                src.display(),
                section.table,
                here,
                section.columns
            )));
        }
        let table = quote(&section.table);
        let delete = match filter {
            Some(cond) => format!("DELETE FROM {table} WHERE {cond}"),
            None => format!("DELETE FROM {table}"),
        };
        tx.execute(&delete, ()).map_err(DbError::on(target))?;
        let marks: Vec<&str> = section.columns.iter().map(|_| "?").collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            section
                .columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            marks.join(", ")
        );
        let mut st = tx.prepare(&insert).map_err(DbError::on(target))?;
        for row in &section.rows {
            st.execute(row).map_err(DbError::on(target))?;
        }
    }
    let sum = checksum_of(&tx, &selection()).map_err(DbError::on(target))?;
    if sum.sha256 != state {
        return Err(DbError::Corrupt(format!(
            "{}: the federated rows it would leave in {target} ({}) are not those it holds ({state}): nothing was changed",
            src.display(),
            sum.sha256
        )));
    }
    tx.commit().map_err(DbError::on(target))?;
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_federated_statement_reading_a_zones_own_table_is_found() {
        let stmt = |sql: &str| SqlStmt::new(sql, vec![]);
        let reads = |sql: &str| {
            local_tables_read(&stmt(sql))
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reads("UPDATE user_pool SET body = 1 WHERE NOT EXISTS (SELECT 1 FROM vm_pool v JOIN host_pool h ON h.oid = v.hid)"),
            ["vm_pool", "host_pool"]
        );
        assert_eq!(
            reads("INSERT INTO user_groups (oid, gid) SELECT oid, 1 FROM `user_pool` WHERE oid = (SELECT last_oid FROM pool_control WHERE tablename = 'user_pool')"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads("DELETE FROM acl WHERE oid IN (SELECT oid FROM acl a JOIN group_pool g)"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads(&crate::objects::user::set_primary_group(2, 1)[0].sql),
            Vec::<String>::new()
        );
        // Every table of a comma join is read, with or without aliases.
        assert_eq!(
            reads("UPDATE user_pool SET gid = (SELECT 1 FROM group_pool g, vm_pool v, host_pool WHERE v.oid = 1)"),
            ["vm_pool", "host_pool"]
        );
        assert_eq!(
            reads("DELETE FROM acl WHERE oid IN (SELECT a.oid FROM acl AS a,image_pool AS i)"),
            ["image_pool"]
        );
        // Commas of other clauses name no table.
        assert_eq!(
            reads("UPDATE user_pool SET gid = 1 WHERE oid IN (SELECT oid FROM group_pool ORDER BY oid, name LIMIT 1, 2)"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads("INSERT INTO acl (oid, user) SELECT oid, 1 FROM group_pool WHERE oid IN (1, 2)"),
            Vec::<String>::new()
        );
    }
    use super::*;

    fn stmt(sql: &str, params: Vec<SqlValue>) -> SqlStmt {
        SqlStmt::new(sql, params)
    }

    #[test]
    fn writes_to_shared_tables_and_their_counters_are_federated_and_no_others() {
        let user = crate::objects::user::insert("u", "h".into(), "core", 1);
        assert!(user.iter().any(is_federated_write));
        for (sql, params) in [
            ("UPDATE user_pool SET gid = 1 WHERE oid = 2", vec![]),
            ("DELETE FROM acl WHERE oid = 3", vec![]),
            ("INSERT INTO zone_server (zone_id) VALUES (1)", vec![]),
            (
                "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1",
                vec![SqlValue::Text("group_pool".into())],
            ),
            (
                "INSERT INTO vdc_pool (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 'vdc_pool'",
                vec![],
            ),
        ] {
            assert!(is_federated_write(&stmt(sql, params)), "{sql}");
        }
        for (sql, params) in [
            ("UPDATE vm_pool SET uid = 1 WHERE oid = 2", vec![]),
            ("INSERT INTO quota_limits (owner) VALUES ('user')", vec![]),
            (
                "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1",
                vec![SqlValue::Text("vm_pool".into())],
            ),
            (
                "INSERT INTO vm_pool (oid, uid) SELECT 1, oid FROM user_pool",
                vec![],
            ),
            ("DELETE FROM fed_log WHERE fed_index < 3", vec![]),
        ] {
            assert!(!is_federated_write(&stmt(sql, params)), "{sql}");
        }
    }

    #[test]
    fn a_snapshot_in_parts_is_staged_in_order_and_swapped_in_by_its_last_part() {
        let open = |dir: &tempfile::TempDir| {
            let mut c = crate::open_state(&Location::Sqlite(dir.path().join("one.db"))).unwrap();
            crate::testing::bootstrap(&mut c);
            c
        };
        let apply = |c: &mut Conn, stmts: Vec<SqlStmt>| {
            let tx = c.transaction().unwrap();
            let out = apply_batch(&tx, &[SqlTxn { stmts }], false).unwrap();
            tx.commit().unwrap();
            matches!(out[0], TxnOutcome::Done { .. })
        };
        let (m, s) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut master, mut slave) = (open(&m), open(&s));
        let user = |name: &str| crate::objects::user::insert(name, "h".into(), "core", 1);
        for n in 0..40 {
            let tx = master.transaction().unwrap();
            apply_batch(
                &tx,
                &[SqlTxn {
                    stmts: user(&format!("u{n}")),
                }],
                true,
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let snapshot = federated_snapshot(&master).unwrap().unwrap();
        let parts = snapshot.split(2048);
        let n = parts.len() as i64;
        assert!(n > 3, "{n} parts");

        eprintln!("--- a part out of order is refused, and changes nothing");
        assert!(apply(&mut slave, parts[0].part_statements(0, n).unwrap()));
        assert!(!apply(&mut slave, parts[2].part_statements(2, n).unwrap()));
        let before = federated_checksum(&slave).unwrap();
        for (k, part) in parts.iter().enumerate().skip(1).take(parts.len() - 2) {
            assert!(apply(
                &mut slave,
                part.part_statements(k as i64, n).unwrap()
            ));
        }
        assert_eq!(
            federated_checksum(&slave).unwrap(),
            before,
            "only staged so far"
        );

        eprintln!("--- the last part swaps the staged tables in");
        let last = parts.last().unwrap().part_statements(n - 1, n).unwrap();
        assert!(apply(&mut slave, last));
        assert_eq!(
            federated_checksum(&slave).unwrap(),
            federated_checksum(&master).unwrap()
        );
        let staged: i64 = slave
            .query_row("SELECT COUNT(*) FROM fedsnap_user_pool", (), |r| r.get(0))
            .unwrap();
        assert_eq!(staged, 0);
        assert!(snapshot.part_statements(1, 1).is_err());
        assert!(snapshot.part_statements(3, 3).is_err());
    }

    #[test]
    fn a_batch_records_the_federated_writes_of_what_succeeded_numbered_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::open_state(&Location::Sqlite(dir.path().join("one.db"))).unwrap();
        crate::testing::bootstrap(&mut c);
        let apply = |c: &mut Conn, txns: Vec<SqlTxn>, federated: bool| {
            let tx = c.transaction().unwrap();
            let out = apply_batch(&tx, &txns, federated).unwrap();
            tx.commit().unwrap();
            out
        };
        let user = |name: &str| SqlTxn {
            stmts: crate::objects::user::insert(name, "h".into(), "core", 1),
        };
        let local = SqlTxn {
            stmts: vec![stmt(
                "INSERT INTO cluster_pool (oid, name) VALUES (100, 'c')",
                vec![],
            )],
        };
        let refused = SqlTxn {
            stmts: vec![stmt("UPDATE user_pool SET gid = 1 WHERE oid = 99", vec![]).must_match()],
        };
        assert_eq!(last_federated(&c).unwrap(), None);
        apply(&mut c, vec![user("a")], false);
        assert_eq!(last_federated(&c).unwrap(), None, "not a master: no record");
        apply(&mut c, vec![local.clone()], true);
        assert_eq!(last_federated(&c).unwrap(), None, "nothing federated");
        let out = apply(&mut c, vec![user("b"), refused, user("c")], true);
        assert!(matches!(out[1], TxnOutcome::Failed(_)));
        assert_eq!(last_federated(&c).unwrap(), Some(1));
        apply(&mut c, vec![user("d")], true);
        assert_eq!(last_federated(&c).unwrap(), Some(2));
        let body: String = c
            .query_row("SELECT body FROM fed_log WHERE fed_index = 1", (), |r| {
                r.get(0)
            })
            .unwrap();
        let record: Vec<SqlStmt> = serde_json::from_str(&body).unwrap();
        let mut expected = user("b").stmts;
        expected.extend(user("c").stmts);
        expected.retain(is_federated_write);
        assert_eq!(record, expected);

        eprintln!("--- past the retention, the oldest records go, on every server alike");
        c.execute(
            "INSERT INTO fed_log (fed_index, body) VALUES (?1, '[]')",
            [FED_LOG_RETENTION + 5],
        )
        .unwrap();
        apply(&mut c, vec![user("e")], true);
        let (first, last): (i64, i64) = c
            .query_row(
                "SELECT MIN(fed_index), MAX(fed_index) FROM fed_log",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (first, last),
            (FED_LOG_RETENTION + 5, FED_LOG_RETENTION + 6)
        );
    }
}
