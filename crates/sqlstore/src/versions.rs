//! The schema versions a database was written for, kept apart as OpenNebula keeps them: the
//! shared (federated) tables' in `db_versioning`, which a federation's zones share with the
//! users, and the zone's own tables' in `local_db_versioning`. A federation slave must hold
//! the federated tables its master writes: one of another version is refused at start-up
//! and by every record the master sends (`one.zone.fedreplicate`).

use crate::sql::{Conn, Optional, SqlError};

/// The layout of the federated tables this build reads and writes. Raised with any change of
/// them: a slave of another version would misread or miswrite the master's records.
pub const SHARED_DB_VERSION: &str = "7.0.0+oneha.1";
/// The layout of the zone's own tables.
pub const LOCAL_DB_VERSION: &str = "7.0.0+oneha.1";

/// Records this build's versions in a database that has none (new, or from before they were
/// kept). Every server writes the same rows, so replicas stay alike.
pub(crate) fn ensure(conn: &Conn) -> Result<(), SqlError> {
    conn.execute(
        "INSERT INTO db_versioning (oid, version, timestamp, comment) \
         SELECT 0, ?1, 0, 'OneHA federated tables' FROM (SELECT 1 AS one) AS once \
         WHERE NOT EXISTS (SELECT 1 FROM db_versioning)",
        [SHARED_DB_VERSION],
    )?;
    conn.execute(
        "INSERT INTO local_db_versioning (oid, version, timestamp, comment, is_slave) \
         SELECT 0, ?1, 0, 'OneHA zone tables', 0 FROM (SELECT 1 AS one) AS once \
         WHERE NOT EXISTS (SELECT 1 FROM local_db_versioning)",
        [LOCAL_DB_VERSION],
    )?;
    Ok(())
}

/// The newest version recorded for the federated tables (`db_versioning`), if any.
pub fn shared_version(conn: &Conn) -> Result<Option<String>, SqlError> {
    newest(conn, "db_versioning")
}

/// The newest version recorded for the zone's own tables (`local_db_versioning`), if any.
pub fn local_version(conn: &Conn) -> Result<Option<String>, SqlError> {
    newest(conn, "local_db_versioning")
}

fn newest(conn: &Conn, table: &str) -> Result<Option<String>, SqlError> {
    conn.query_row(
        &format!("SELECT version FROM {table} WHERE oid = (SELECT MAX(oid) FROM {table})"),
        (),
        |r| r.get(0),
    )
    .optional()
}

/// Why a federation slave holding federated tables of version `found` cannot run this build:
/// OpenNebula's message, and its advice for a slave.
pub fn slave_mismatch(found: Option<&str>) -> Option<String> {
    match found {
        Some(v) if v == SHARED_DB_VERSION => None,
        Some(v) => Some(format!(
            "Database version mismatch ( db_versioning). Installed OneHA needs DB version \
             '{SHARED_DB_VERSION}', and existing DB version is '{v}'. Cannot join federation, \
             oned master needs upgrade."
        )),
        None => Some(
            "Cannot access shared DB tables. Check DB replica configuration \
             (onedb restore --federated of the master's backup)."
                .into(),
        ),
    }
}
