//! Opening the state database and taking or installing consistent copies of it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::sql::{self, Backend, Conn, Location, Optional, SqlError};

/// Errors of the storage layer. Every one of them is an I/O or corruption problem: SQL that fails
/// alike on every server is a [`crate::TxnOutcome`], never a `DbError`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: SqlError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
    /// Every connection of a bounded read pool stayed busy.
    #[error("{0}")]
    Busy(String),
    /// Another oned (or onedb) has this MySQL database open for writing.
    #[error("{0} is in use by a running oned or onedb (it holds the database's lock)")]
    InUse(String),
}

impl DbError {
    pub fn at<E: Into<SqlError>>(path: &Path) -> impl FnOnce(E) -> DbError + '_ {
        move |source| DbError::Sql {
            path: path.display().to_string(),
            source: source.into(),
        }
    }

    /// [`DbError::at`] for a database of either backend.
    pub fn on<E: Into<SqlError>>(loc: &Location) -> impl FnOnce(E) -> DbError + '_ {
        move |source| DbError::Sql {
            path: loc.to_string(),
            source: source.into(),
        }
    }

    /// The database connection was lost (MySQL); retrying on a new one may succeed.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, DbError::Sql { source, .. } if source.is_connection_lost())
    }

    /// See [`SqlError::is_server_condition`].
    pub fn is_server_condition(&self) -> bool {
        matches!(self, DbError::Sql { source, .. } if source.is_server_condition())
    }

    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
        move |source| DbError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The state tables. Objects keep OpenNebula's names (`user_pool`, `zone_pool`...) so an
/// operator reading the database finds what OpenNebula would show. Written for SQLite; `{key}`
/// marks text that is (part of) a key, which MySQL must index (`sql::dialect::schema`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pool_control (tablename {key} PRIMARY KEY, last_oid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS system_attributes (name {key} PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS user_groups (uid INTEGER NOT NULL, gid INTEGER NOT NULL, PRIMARY KEY (uid, gid));
CREATE TABLE IF NOT EXISTS group_admins (gid INTEGER NOT NULL, uid INTEGER NOT NULL, PRIMARY KEY (gid, uid));
CREATE TABLE IF NOT EXISTS user_login_tokens (
    uid INTEGER NOT NULL,
    token {key} NOT NULL,
    expiration INTEGER NOT NULL,
    egid INTEGER NOT NULL,
    PRIMARY KEY (uid, token)
);
CREATE TABLE IF NOT EXISTS acl (
    oid INTEGER PRIMARY KEY,
    user INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    rights INTEGER NOT NULL,
    zone INTEGER NOT NULL,
    UNIQUE (user, resource, rights, zone)
);
CREATE TABLE IF NOT EXISTS cluster_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS cluster_datastore_relation (
    cid INTEGER NOT NULL,
    oid INTEGER NOT NULL,
    PRIMARY KEY (cid, oid)
);
CREATE TABLE IF NOT EXISTS cluster_network_relation (
    cid INTEGER NOT NULL,
    oid INTEGER NOT NULL,
    PRIMARY KEY (cid, oid)
);
CREATE TABLE IF NOT EXISTS template_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS document_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS vn_template_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS vmgroup_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    roles TEXT NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS host_pci (
    hid INTEGER NOT NULL,
    short_address {key} NOT NULL,
    vmid INTEGER NOT NULL,
    PRIMARY KEY (hid, short_address)
);
CREATE TABLE IF NOT EXISTS vnc_port (
    vid INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL,
    port INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS plan_pool (
    cid INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backupjob_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    last_time INTEGER NOT NULL,
    last_duration INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS backupjob_vm (
    job INTEGER NOT NULL,
    vid INTEGER NOT NULL,
    coll INTEGER NOT NULL,
    PRIMARY KEY (job, vid)
);
CREATE TABLE IF NOT EXISTS vrouter_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS vrouter_vms (
    vrouter_oid INTEGER NOT NULL,
    vm_oid INTEGER NOT NULL,
    PRIMARY KEY (vrouter_oid, vm_oid)
);
CREATE TABLE IF NOT EXISTS vrouter_vnets (
    vrouter_oid INTEGER NOT NULL,
    vnet_oid INTEGER NOT NULL,
    PRIMARY KEY (vrouter_oid, vnet_oid)
);
CREATE TABLE IF NOT EXISTS hook_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    hook_key TEXT NOT NULL,
    template TEXT NOT NULL,
    last_exeid INTEGER NOT NULL DEFAULT -1,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS hook_log (
    hkid INTEGER NOT NULL,
    exeid INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    rc INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (hkid, exeid)
);
CREATE TABLE IF NOT EXISTS marketplace_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    market_mad TEXT NOT NULL,
    zone_id INTEGER NOT NULL,
    total_mb INTEGER NOT NULL DEFAULT 0,
    free_mb INTEGER NOT NULL DEFAULT 0,
    used_mb INTEGER NOT NULL DEFAULT 0,
    template TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marketplaceapp_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    zone_id INTEGER NOT NULL,
    origin_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    md5 TEXT NOT NULL,
    size INTEGER NOT NULL,
    description TEXT NOT NULL,
    version TEXT NOT NULL,
    format TEXT NOT NULL,
    apptemplate64 TEXT NOT NULL,
    market_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    type INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS secgroup_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    template TEXT NOT NULL,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS secgroup_vm (
    sgid INTEGER NOT NULL,
    vid INTEGER NOT NULL,
    state INTEGER NOT NULL,
    PRIMARY KEY (sgid, vid)
);
CREATE TABLE IF NOT EXISTS vdc_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS vdc_group (
    vdc INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    PRIMARY KEY (vdc, gid)
);
CREATE TABLE IF NOT EXISTS vdc_resource (
    vdc INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    zone INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (vdc, kind, zone, rid)
);
CREATE TABLE IF NOT EXISTS quota_limits (
    owner VARCHAR(16) NOT NULL,
    oid INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    rid INTEGER NOT NULL,
    metric VARCHAR(32) NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (owner, oid, kind, rid, metric)
);
CREATE TABLE IF NOT EXISTS vm_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    lcm_state INTEGER NOT NULL,
    prev_state INTEGER NOT NULL,
    prev_lcm_state INTEGER NOT NULL,
    stime INTEGER NOT NULL,
    etime INTEGER NOT NULL DEFAULT 0,
    cpu REAL NOT NULL,
    memory INTEGER NOT NULL,
    hid INTEGER NOT NULL DEFAULT -1,
    template TEXT NOT NULL,
    user_template TEXT NOT NULL DEFAULT '',
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    disk_size REAL NOT NULL DEFAULT 0,
    resched INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS datastore_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    ds_mad TEXT NOT NULL,
    tm_mad TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS image_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    persistent INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    state INTEGER NOT NULL,
    datastore_id INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    modtime INTEGER NOT NULL DEFAULT 0,
    prev_state INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT '',
    fs TEXT NOT NULL DEFAULT '',
    cloning_id INTEGER NOT NULL DEFAULT -1,
    target_snapshot INTEGER NOT NULL DEFAULT -1,
    snapshots TEXT NOT NULL DEFAULT '',
    op INTEGER NOT NULL DEFAULT 0,
    increments TEXT NOT NULL DEFAULT '',
    disk_type INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS backup_reserve (
    vid INTEGER PRIMARY KEY,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    datastore_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    images INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_vm (
    oid INTEGER NOT NULL,
    vid INTEGER NOT NULL,
    PRIMARY KEY (oid, vid)
);
CREATE TABLE IF NOT EXISTS vnet_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    vn_mad TEXT NOT NULL,
    bridge TEXT NOT NULL,
    template TEXT NOT NULL,
    parent INTEGER NOT NULL DEFAULT -1,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    vlan_auto INTEGER NOT NULL DEFAULT -1,
    outer_vlan_auto INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS vnet_lease (
    vnet_oid INTEGER NOT NULL,
    ar_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    owner INTEGER NOT NULL,
    PRIMARY KEY (vnet_oid, ar_id, idx)
);
CREATE TABLE IF NOT EXISTS history (
    vid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    vm_mad TEXT NOT NULL,
    stime INTEGER NOT NULL,
    etime INTEGER NOT NULL DEFAULT 0,
    cid INTEGER NOT NULL DEFAULT 0,
    ds_id INTEGER NOT NULL DEFAULT 0,
    action INTEGER NOT NULL DEFAULT 0,
    uid INTEGER NOT NULL DEFAULT -1,
    gid INTEGER NOT NULL DEFAULT -1,
    pstime INTEGER NOT NULL DEFAULT 0,
    petime INTEGER NOT NULL DEFAULT 0,
    rstime INTEGER NOT NULL DEFAULT 0,
    retime INTEGER NOT NULL DEFAULT 0,
    estime INTEGER NOT NULL DEFAULT 0,
    eetime INTEGER NOT NULL DEFAULT 0,
    plan_id INTEGER NOT NULL DEFAULT -2,
    action_id INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (vid, seq)
);
CREATE TABLE IF NOT EXISTS vm_monitoring (
    vmid INTEGER NOT NULL,
    last_poll INTEGER NOT NULL,
    cpu INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    netrx INTEGER NOT NULL,
    nettx INTEGER NOT NULL,
    diskrdbytes INTEGER NOT NULL,
    diskwrbytes INTEGER NOT NULL,
    diskrdiops INTEGER NOT NULL,
    diskwriops INTEGER NOT NULL,
    PRIMARY KEY (vmid, last_poll)
);
CREATE TABLE IF NOT EXISTS host_monitoring (
    hid INTEGER NOT NULL,
    last_mon_time INTEGER NOT NULL,
    free_cpu INTEGER NOT NULL,
    used_cpu INTEGER NOT NULL,
    free_mem INTEGER NOT NULL,
    used_mem INTEGER NOT NULL,
    netrx INTEGER NOT NULL,
    nettx INTEGER NOT NULL,
    PRIMARY KEY (hid, last_mon_time)
);
CREATE TABLE IF NOT EXISTS vm_showback (
    vmid INTEGER NOT NULL,
    year INTEGER NOT NULL,
    month INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (vmid, year, month)
);
CREATE TABLE IF NOT EXISTS host_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    prev_state INTEGER NOT NULL,
    im_mad TEXT NOT NULL,
    vm_mad TEXT NOT NULL,
    cluster_id INTEGER NOT NULL,
    total_cpu INTEGER NOT NULL DEFAULT 0,
    total_mem INTEGER NOT NULL DEFAULT 0,
    cpu_usage INTEGER NOT NULL DEFAULT 0,
    mem_usage INTEGER NOT NULL DEFAULT 0,
    running_vms INTEGER NOT NULL DEFAULT 0,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS user_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    password TEXT NOT NULL,
    auth_driver TEXT NOT NULL,
    gid INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS zone_pool (
    oid INTEGER PRIMARY KEY,
    name {key} NOT NULL UNIQUE,
    state INTEGER NOT NULL DEFAULT 0,
    endpoint TEXT NOT NULL,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS fed_log (fed_index INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS db_versioning (
    oid INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    comment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS local_db_versioning (
    oid INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    comment TEXT NOT NULL,
    is_slave INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS zone_server (
    zone_id INTEGER NOT NULL,
    server_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    PRIMARY KEY (zone_id, server_id)
);
CREATE TABLE IF NOT EXISTS raft_sm_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_applied BLOB,
    membership BLOB,
    format INTEGER NOT NULL DEFAULT 0
);
";

fn pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // An applied entry must survive power loss together with `last_applied`.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// The tables of lockable objects (OpenNebula's `LockableObject`) and the columns their lock
/// takes, added to a database written before locks existed.
const LOCKABLE: [&str; 4] = ["template_pool", "vm_pool", "image_pool", "vnet_pool"];
const LOCK_COLUMNS: [(&str, &str); 4] = [
    ("lock_level", "INTEGER NOT NULL DEFAULT 0"),
    ("lock_owner", "INTEGER NOT NULL DEFAULT -1"),
    ("lock_time", "INTEGER NOT NULL DEFAULT 0"),
    ("lock_req", "INTEGER NOT NULL DEFAULT -1"),
];

/// The schema as `backend` creates it.
fn schema_for(conn: &Conn) -> String {
    match conn.backend() {
        Backend::Sqlite => SCHEMA.replace("{key}", "TEXT"),
        Backend::Mysql => sql::mysql_schema(conn, SCHEMA),
    }
}

/// Creates what is missing of the schema: the tables, and the columns later versions added
/// (appended, as `CREATE TABLE` lists them, so every server's tables are alike).
fn ensure_schema(conn: &Conn) -> Result<(), SqlError> {
    let before = conn.tables()?;
    conn.execute_batch(&schema_for(conn))?;
    crate::federated::ensure_staging(conn)?;
    // Before clusters held datastores and networks, every one of them was shown in cluster 0:
    // a database from then gets them there. Every server does the same to the same rows, so
    // replicas stay alike.
    for (table, pool) in [
        ("cluster_datastore_relation", "datastore_pool"),
        ("cluster_network_relation", "vnet_pool"),
    ] {
        if !before.is_empty() && !before.iter().any(|t| t == table) {
            conn.execute_batch(&format!(
                "INSERT INTO {table} (cid, oid) SELECT 0, oid FROM {pool}"
            ))?;
        }
    }
    // Before a network listed every router with a NIC in it, it listed those leasing a
    // floating address of it: a database from then keeps those.
    if !before.is_empty() && !before.iter().any(|t| t == "vrouter_vnets") {
        conn.execute_batch(&crate::objects::vrouter::backfill_networks())?;
    }
    crate::versions::ensure(conn)?;
    // A bootstrapped database from before documents or hooks gets their id counters (a fresh
    // one gets them from the bootstrap).
    for table in [
        "document_pool",
        "hook_pool",
        "vn_template_pool",
        "vmgroup_pool",
        "backupjob_pool",
        "vrouter_pool",
    ] {
        conn.execute_batch(&format!(
            "INSERT INTO pool_control (tablename, last_oid)
             SELECT '{table}', -1 FROM pool_control WHERE tablename = 'user_pool'
             AND NOT EXISTS (SELECT 1 FROM pool_control WHERE tablename = '{table}')"
        ))?;
    }
    // A bootstrapped database from before VDCs gets VDC 0, as a new one does.
    let bootstrapped: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'user_pool')",
        (),
        |r| r.get(0),
    )?;
    let has_vdcs: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'vdc_pool')",
        (),
        |r| r.get(0),
    )?;
    if bootstrapped && !has_vdcs {
        crate::txn::run_all(conn, &crate::objects::vdc::bootstrap_default(0))?;
    }
    // ...and OpenNebula's default marketplaces.
    let has_markets: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'marketplace_pool')",
        (),
        |r| r.get(0),
    )?;
    if bootstrapped && !has_markets {
        crate::txn::run_all(conn, &crate::objects::market::bootstrap_default(0))?;
    }
    // ...and OpenNebula's default security group.
    let has_secgroups: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pool_control WHERE tablename = 'secgroup_pool')",
        (),
        |r| r.get(0),
    )?;
    if bootstrapped && !has_secgroups {
        crate::txn::run_all(conn, &crate::objects::secgroup::bootstrap_default())?;
    }
    // Both backends: cluster templates came with the cluster methods, zone templates with
    // `one.zone.update`.
    // ...and reservations (a network's parent) with address-range leases.
    if !conn.columns("vnet_pool")?.iter().any(|c| c == "parent") {
        let add = "ALTER TABLE vnet_pool ADD COLUMN parent INTEGER NOT NULL DEFAULT -1".to_string();
        conn.execute_batch(&match conn.backend() {
            Backend::Sqlite => add,
            Backend::Mysql => sql::mysql_schema(conn, &add),
        })?;
    }
    // ...and VMs their system disk size (SYSTEM_DISK_SIZE), before `resched` as `SCHEMA` lists them.
    crate::objects::quota::upgrade_disk_size(conn)?;
    // ...and VMs their rescheduling flag with `resched`.
    if !conn.columns("vm_pool")?.iter().any(|c| c == "resched") {
        let add = "ALTER TABLE vm_pool ADD COLUMN resched INTEGER NOT NULL DEFAULT 0".to_string();
        conn.execute_batch(&match conn.backend() {
            Backend::Sqlite => add,
            Backend::Mysql => sql::mysql_schema(conn, &add),
        })?;
    }
    // ...and the indexes of placed and of flagged VMs, partial where the backend allows.
    for (name, table, column, only) in VM_INDEXES {
        match conn.backend() {
            Backend::Sqlite => ensure_partial_index(conn, name, table, column, only)?,
            Backend::Mysql => ensure_index(conn, name, table, column)?,
        }
    }
    for (name, table, column) in OWNER_INDEXES {
        ensure_index(conn, name, table, column)?;
    }
    // ...and templates' lookup by owner and name (`objects::owned_named`, which every
    // `one.template.allocate` and clone asks before it writes): without it each scanned every
    // template, and a zone's template writes slowed as it grew (a seventh at 64 in flight after
    // a few thousand). MySQL indexes a TEXT column by a prefix.
    let by_name = match conn.backend() {
        Backend::Sqlite => "uid, name",
        Backend::Mysql => "uid, name(255)",
    };
    ensure_index(conn, "template_pool_uid_name", "template_pool", by_name)?;
    // ...and the scheduled-action runner, which asks every period for the VMs whose template holds
    // a SCHED_ACTION (`objects::vm::WITH_SCHED_ACTIONS`, a scan of every template without it): on
    // SQLite a partial index of just those VMs. MySQL has no partial index and scans as before.
    if conn.backend() == Backend::Sqlite {
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS vm_pool_sched ON vm_pool (oid)
             WHERE template LIKE '%SCHED_ACTION%'",
        )?;
    }
    for table in ["cluster_pool", "zone_pool"] {
        if !conn.columns(table)?.iter().any(|c| c == "template") {
            let add = format!("ALTER TABLE {table} ADD COLUMN template TEXT NOT NULL DEFAULT ''");
            conn.execute_batch(&match conn.backend() {
                Backend::Sqlite => add,
                Backend::Mysql => sql::mysql_schema(conn, &add),
            })?;
        }
    }
    upgrade_images(conn)?;
    // ...and history records the cluster, system datastore, action and its user of each.
    for (column, kind) in HISTORY_COLUMNS {
        if !conn.columns("history")?.iter().any(|c| c == column) {
            let add = format!("ALTER TABLE history ADD COLUMN {column} {kind}");
            conn.execute_batch(&match conn.backend() {
                Backend::Sqlite => add,
                Backend::Mysql => sql::mysql_schema(conn, &add),
            })?;
        }
    }
    // ...and backup images their increment chains with incremental backups.
    if !conn
        .columns("image_pool")?
        .iter()
        .any(|c| c == "increments")
    {
        let add =
            "ALTER TABLE image_pool ADD COLUMN increments TEXT NOT NULL DEFAULT ''".to_string();
        conn.execute_batch(&match conn.backend() {
            Backend::Sqlite => add,
            Backend::Mysql => sql::mysql_schema(conn, &add),
        })?;
    }
    // ...and images the disk type of their datastore when they were made (FILE before).
    if !conn.columns("image_pool")?.iter().any(|c| c == "disk_type") {
        let add =
            "ALTER TABLE image_pool ADD COLUMN disk_type INTEGER NOT NULL DEFAULT 0".to_string();
        conn.execute_batch(&match conn.backend() {
            Backend::Sqlite => add,
            Backend::Mysql => sql::mysql_schema(conn, &add),
        })?;
    }
    if conn.backend() == Backend::Mysql {
        // MySQL state databases were created with every column but the cluster template.
        return upgrade_auto_vlans(conn);
    }
    for table in LOCKABLE {
        let has: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'lock_level')",
            [table],
            |r| r.get(0),
        )?;
        if !has {
            for (column, kind) in LOCK_COLUMNS {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
    }
    let has_format: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('raft_sm_meta') WHERE name = 'format')",
        (),
        |r| r.get(0),
    )?;
    if !has_format {
        conn.execute_batch(
            "ALTER TABLE raft_sm_meta ADD COLUMN format INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    upgrade_auto_vlans(conn)
}

/// Networks keep the VLAN ids oned chose (AUTOMATIC_VLAN_ID) with that feature; last, so that a
/// database made before it ends with the same columns as a new one.
fn upgrade_auto_vlans(conn: &Conn) -> Result<(), SqlError> {
    for column in ["vlan_auto", "outer_vlan_auto"] {
        if !conn.columns("vnet_pool")?.iter().any(|c| c == column) {
            let add =
                format!("ALTER TABLE vnet_pool ADD COLUMN {column} INTEGER NOT NULL DEFAULT -1");
            conn.execute_batch(&match conn.backend() {
                Backend::Sqlite => add,
                Backend::Mysql => sql::mysql_schema(conn, &add),
            })?;
        }
    }
    Ok(())
}

/// The history columns added after the table: a record's cluster and system datastore
/// (`History::cid`, `ds_id`), the action that closed it with who asked for it, and the start
/// and end of its prolog, running and epilog times.
const HISTORY_COLUMNS: [(&str, &str); 13] = [
    ("cid", "INTEGER NOT NULL DEFAULT 0"),
    ("ds_id", "INTEGER NOT NULL DEFAULT 0"),
    ("action", "INTEGER NOT NULL DEFAULT 0"),
    ("uid", "INTEGER NOT NULL DEFAULT -1"),
    ("gid", "INTEGER NOT NULL DEFAULT -1"),
    ("pstime", "INTEGER NOT NULL DEFAULT 0"),
    ("petime", "INTEGER NOT NULL DEFAULT 0"),
    ("rstime", "INTEGER NOT NULL DEFAULT 0"),
    ("retime", "INTEGER NOT NULL DEFAULT 0"),
    ("estime", "INTEGER NOT NULL DEFAULT 0"),
    ("eetime", "INTEGER NOT NULL DEFAULT 0"),
    ("plan_id", "INTEGER NOT NULL DEFAULT -2"),
    ("action_id", "INTEGER NOT NULL DEFAULT -1"),
];

/// Secondary indexes of per-owner and per-VM lookups, which otherwise scan whole tables: quota
/// usage (read by every `one.user.info`, `one.group.info` and quota check) by `uid`/`gid`, and
/// the rows a VM holds (image uses, leases, security groups) found by VM id when it ends. Integer
/// columns only (MySQL cannot index TEXT without a prefix); each costs inserts a little, so only
/// those a measured query needs (and see `VM_INDEXES`). `vm_pool_state` covers the leader's
/// scheduler, which asks every period whether a VM is pending (`objects::vm::pending`) or
/// between states (`objects::vm::any_moving`): each scanned every VM's row (22 ms at 10k
/// running VMs with 2.6 KB templates, on a loaded machine), 0.03 ms as searches.
const OWNER_INDEXES: [(&str, &str, &str); 13] = [
    ("vnc_port_cid", "vnc_port", "cid, port"),
    ("vm_pool_state", "vm_pool", "state, lcm_state"),
    ("vm_pool_uid", "vm_pool", "uid"),
    ("vm_pool_gid", "vm_pool", "gid"),
    ("image_pool_uid", "image_pool", "uid"),
    ("image_pool_gid", "image_pool", "gid"),
    ("image_vm_vid", "image_vm", "vid"),
    ("vnet_lease_owner", "vnet_lease", "owner"),
    ("vnet_pool_uid", "vnet_pool", "uid"),
    ("vnet_pool_gid", "vnet_pool", "gid"),
    ("vrouter_pool_uid", "vrouter_pool", "uid"),
    ("vrouter_pool_gid", "vrouter_pool", "gid"),
    ("secgroup_vm_vid", "secgroup_vm", "vid"),
];

/// Indexes of VMs that most VMs are not in: a VM placed on a host (`vm_pool_host`, which covers
/// the per-host usage recount of every VM placement change, `objects::vm::recount_host_ids`:
/// 3.5 ms to 0.13 ms at 10k VMs) and one flagged for rescheduling (`vm_pool_resched`, what the
/// scheduler looks for every period). On SQLite each holds only the VMs of its condition (the
/// last field), so a new VM, pending and unflagged, enters neither: every server's apply of
/// `one.vm.allocate` makes 3 index insertions instead of 5 (a fifth to a quarter of its cost:
/// `cargo bench -p sqlstore --bench apply`). A query reaches one only by naming its condition
/// as written here (`objects::vm::recount`, `objects::vm::rescheduled`). MySQL, without partial
/// indexes, indexes every VM.
const VM_INDEXES: [(&str, &str, &str, &str); 2] = [
    (
        "vm_pool_host",
        "vm_pool",
        "hid, state, cpu, memory",
        "hid >= 0",
    ),
    ("vm_pool_resched", "vm_pool", "resched", "resched = 1"),
];

/// Creates index `name` on `table (column)` of the rows where `only` holds, on SQLite; one of
/// that name defined otherwise (an older server's index of every row) is replaced. Indexes hold
/// nothing a replica must agree on, so each server may do this on its own, when it opens.
fn ensure_partial_index(
    conn: &Conn,
    name: &str,
    table: &str,
    column: &str,
    only: &str,
) -> Result<(), SqlError> {
    let wanted = format!("CREATE INDEX {name} ON {table} ({column}) WHERE {only}");
    let found: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    match found {
        Some(sql) if sql == wanted => Ok(()),
        Some(_) => conn.execute_batch(&format!("DROP INDEX {name}; {wanted}")),
        None => conn.execute_batch(&wanted),
    }
}

/// Creates index `name` on `table (column)` where it is missing. MySQL has no
/// `CREATE INDEX IF NOT EXISTS`, so its catalogue is asked first.
fn ensure_index(conn: &Conn, name: &str, table: &str, column: &str) -> Result<(), SqlError> {
    match conn.backend() {
        Backend::Sqlite => conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})"
        )),
        Backend::Mysql => {
            let has: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM information_schema.statistics
                 WHERE table_schema = DATABASE() AND table_name = ?1 AND index_name = ?2)",
                [table, name],
                |r| r.get(0),
            )?;
            if has {
                Ok(())
            } else {
                conn.execute_batch(&format!("CREATE INDEX {name} ON {table} ({column})"))
            }
        }
    }
}

/// What images gained with their own methods (clone, snapshots, the driver's results), in the
/// order `SCHEMA` lists them after the lock.
const IMAGE_COLUMNS: [(&str, &str); 9] = [
    ("modtime", "INTEGER NOT NULL DEFAULT 0"),
    ("prev_state", "INTEGER NOT NULL DEFAULT 0"),
    ("source", "TEXT NOT NULL DEFAULT ''"),
    ("format", "TEXT NOT NULL DEFAULT ''"),
    ("fs", "TEXT NOT NULL DEFAULT ''"),
    ("cloning_id", "INTEGER NOT NULL DEFAULT -1"),
    ("target_snapshot", "INTEGER NOT NULL DEFAULT -1"),
    ("snapshots", "TEXT NOT NULL DEFAULT ''"),
    ("op", "INTEGER NOT NULL DEFAULT 0"),
];

/// Both backends: a database from before the image methods gets their columns, and its images
/// what they showed then (the driver's source once READY, a raw format, no update since
/// registration). Every server does the same to the same rows.
fn upgrade_images(conn: &Conn) -> Result<(), SqlError> {
    if conn.columns("image_pool")?.iter().any(|c| c == "op") {
        return Ok(());
    }
    for (column, kind) in IMAGE_COLUMNS {
        let add = format!("ALTER TABLE image_pool ADD COLUMN {column} {kind}");
        conn.execute_batch(&match conn.backend() {
            Backend::Sqlite => add,
            Backend::Mysql => sql::mysql_schema(conn, &add),
        })?;
    }
    conn.execute_batch(
        "UPDATE image_pool SET modtime = regtime, prev_state = state, format = 'raw',
           source = CASE WHEN state = 4 THEN ''
             ELSE '/var/lib/one//datastores/' || datastore_id || '/' || oid END",
    )
}

/// Opens (creating if needed) the state database read-write and makes sure the schema exists.
pub fn open_state(loc: &Location) -> Result<Conn, DbError> {
    match loc {
        Location::Sqlite(path) => {
            crate::files::private_file(path).map_err(DbError::io(path))?;
            let conn = Connection::open(path).map_err(DbError::at(path))?;
            pragmas(&conn).map_err(DbError::at(path))?;
            if let Some(why) = page_cache_misbuilt(&conn) {
                tracing::warn!(
                    "this build's SQLite is not built as OneHA builds it, and applies and reads \
                     slower: {why} (build from the source tree, whose .cargo/config.toml sets \
                     LIBSQLITE3_FLAGS)"
                );
            }
            let conn = Conn::from(conn);
            ensure_schema(&conn).map_err(DbError::at(path))?;
            Ok(conn)
        }
        Location::Mysql(_) => {
            let conn = writer_of(loc, None)?;
            ensure_schema(&conn).map_err(DbError::on(loc))?;
            Ok(conn)
        }
    }
}

/// A new writing connection to a state database [`open_state`] opened before in this process,
/// to replace `previous`, which failed: the schema is there already, so only the writer's lock
/// is taken again, nothing is written. If `previous` still holds that lock (the database server
/// has not seen it end, or it failed on something else than its connection), it is ended
/// first, and its transaction with it: the lock is free only once it is gone, so nothing it
/// was doing can commit after the new connection has read what was applied.
pub fn reopen_state(loc: &Location, previous: &Conn) -> Result<Conn, DbError> {
    match loc {
        Location::Sqlite(_) => open_state(loc),
        Location::Mysql(_) => writer_of(loc, previous.session_id()),
    }
}

/// A MySQL connection holding the lock that makes it the database's only writer, as the lock
/// file of `var/` is for SQLite: held by this connection, so the server releases it when the
/// connection ends, whatever ends it. A few seconds of patience: the server may not have seen
/// yet that the connection of an oned that just stopped is gone. `previous`: the connection
/// of this process that this one replaces, ended if it holds the lock.
fn writer_of(loc: &Location, previous: Option<u64>) -> Result<Conn, DbError> {
    const LOCK: &str = "CONCAT('oneha/', DATABASE())";
    let conn = Conn::open(loc, false).map_err(DbError::on(loc))?;
    if let Some(previous) = previous {
        let holder: Option<i64> = conn
            .query_row(&format!("SELECT IS_USED_LOCK({LOCK})"), (), |r| r.get(0))
            .map_err(DbError::on(loc))?;
        if holder.and_then(|h| u64::try_from(h).ok()) == Some(previous) {
            match conn.execute_batch(&format!("KILL CONNECTION {previous}")) {
                Err(e) if !e.is_no_such_thread() => return Err(DbError::on(loc)(e)),
                _ => {}
            }
        }
    }
    let got: Option<i64> = conn
        .query_row(&format!("SELECT GET_LOCK({LOCK}, 5)"), (), |r| r.get(0))
        .map_err(DbError::on(loc))?;
    if got != Some(1) {
        return Err(DbError::InUse(loc.to_string()));
    }
    Ok(conn)
}

/// What is wrong with this build's SQLite for a server, if anything: the workspace builds it
/// with its own page-cache settings (`.cargo/config.toml`, docs/benchmarks.md, sixteenth round),
/// and a build made elsewhere may lack them.
/// - `SQLITE_ENABLE_MEMORY_MANAGEMENT` makes all the process's connections share one page-cache
///   group, one LRU and one budget for the applier, the Raft log and the read pool, in which a
///   busy log writer evicts the applier's B-tree pages;
/// - a `SQLITE_DEFAULT_PCACHE_INITSZ` other than 0 makes every new page cache (each ephemeral
///   table of a `RETURNING`, a sort, a `DISTINCT`) allocate 20 pages at once.
pub fn page_cache_misbuilt(conn: &Connection) -> Option<&'static str> {
    let has = |option: &str| {
        conn.query_row(
            "SELECT count(*) FROM pragma_compile_options WHERE compile_options = ?1",
            [option],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n > 0)
    };
    if has("ENABLE_MEMORY_MANAGEMENT") {
        Some("SQLITE_ENABLE_MEMORY_MANAGEMENT is set: the connections share one page cache")
    } else if !has("DEFAULT_PCACHE_INITSZ=0") {
        Some(
            "SQLITE_DEFAULT_PCACHE_INITSZ is not 0: each new page cache allocates 20 pages at once",
        )
    } else {
        None
    }
}

/// Opens the state database read-only, for the read pool and snapshots.
pub fn open_read(loc: &Location) -> Result<Conn, DbError> {
    Conn::open(loc, true).map_err(DbError::on(loc))
}

/// Writes a consistent copy of the database behind `conn` to the SQLite file `dest` (which
/// must not exist, or be empty), while writers go on. From SQLite, `VACUUM INTO`; from MySQL,
/// every table read in one consistent-snapshot transaction. Either way the copy is a SQLite
/// state database: snapshots and `serversync` files look the same whatever the backend.
pub fn copy_into(conn: &Conn, dest: &Path) -> Result<(), DbError> {
    // VACUUM INTO accepts an empty file; creating it first makes the copy 0600 from the start.
    crate::files::private_file(dest).map_err(DbError::io(dest))?;
    match conn.sqlite() {
        Some(c) => {
            let dest_str = dest
                .to_str()
                .ok_or_else(|| DbError::Corrupt(format!("path {} is not UTF-8", dest.display())))?;
            c.execute("VACUUM INTO ?1", [dest_str])
                .map_err(DbError::at(dest))?;
            Ok(())
        }
        None => {
            let mut out = Conn::from(Connection::open(dest).map_err(DbError::at(dest))?);
            ensure_schema(&out).map_err(DbError::at(dest))?;
            crate::copy::copy_rows(conn, &mut out).map_err(DbError::at(dest))
        }
    }
}

/// Replaces the whole content of the database behind `conn` with the SQLite state database
/// `src`, in one atomic, durable step. Readers keep working throughout (SQLite's online backup
/// API; on MySQL, one transaction that empties and refills every table).
pub fn restore_from(conn: &mut Conn, src: &Path) -> Result<(), DbError> {
    let check = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(DbError::at(src))?;
    let ok: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(DbError::at(src))?;
    if ok != "ok" {
        return Err(DbError::Corrupt(format!(
            "{} failed its integrity check: {ok}",
            src.display()
        )));
    }
    drop(check);
    if let Some(c) = conn.sqlite_mut() {
        c.restore(
            rusqlite::DatabaseName::Main,
            src,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(DbError::at(src))?;
        // A copy written by an older version lacks what this one added; every server adds it
        // alike.
        return ensure_schema(conn).map_err(DbError::at(src));
    }
    // The copy may come from an older version: brought up to this schema first, in a staging
    // copy, so `src` itself is never changed.
    let staged =
        crate::files::temp_file_in(src.parent().unwrap_or(Path::new(".")), ".install.", ".db")
            .map_err(DbError::io(src))?;
    std::fs::copy(src, staged.path()).map_err(DbError::io(staged.path()))?;
    let from = Conn::from(Connection::open(staged.path()).map_err(DbError::at(staged.path()))?);
    ensure_schema(&from).map_err(DbError::at(staged.path()))?;
    crate::copy::copy_rows(&from, conn).map_err(DbError::at(src))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn columns(c: &Conn, table: &str) -> Vec<String> {
        c.columns(table).unwrap()
    }

    fn open(p: &Path) -> Conn {
        open_state(&Location::Sqlite(p.to_path_buf())).unwrap()
    }

    #[test]
    fn each_connection_keeps_its_own_page_cache() {
        let c = Connection::open_in_memory().unwrap();
        let options: Vec<String> = c
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The query itself works: the answer below is not an error read as "no".
        assert!(
            options.iter().any(|o| o.starts_with("THREADSAFE=")),
            "{options:?}"
        );
        assert_eq!(
            page_cache_misbuilt(&c),
            None,
            "is LIBSQLITE3_FLAGS of .cargo/config.toml in effect? {options:?}"
        );
    }

    #[test]
    fn the_scheduler_finds_flagged_vms_through_the_resched_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("one.db"));
        let plan = plan_with(
            &c,
            &crate::objects::vm::rescheduled_query(64),
            [3, 3, 8, -1],
        );
        assert!(
            plan.iter().any(|p| p.contains("vm_pool_resched")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_template_name_is_looked_up_by_owner_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("one.db"));
        let sql = "SELECT MIN(oid) FROM template_pool WHERE name = ?1 AND uid = ?2 \
                   HAVING COUNT(*) > 0";
        let p = plan_with(&c, sql, ("t", 0));
        assert!(
            p.iter().any(|s| s.contains("template_pool_uid_name")),
            "{p:?}"
        );
    }

    #[test]
    fn the_host_recount_finds_placed_vms_through_their_index_and_new_vms_enter_neither() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        let c = open(&path);
        let recount = crate::objects::vm::recount_host_ids(&[0]);
        let p = plan_with(&c, &recount.sql, recount.params.as_slice());
        let searches = p
            .iter()
            .filter(|s| s.contains("COVERING INDEX vm_pool_host (hid=? AND state=?)"));
        assert_eq!(searches.count(), 3, "{p:?}");
        assert!(!p.iter().any(|s| s.contains("SCAN v")), "{p:?}");
        // A pending VM (hid -1, unflagged) is in neither index; a placed one, flagged, in both.
        c.execute_batch(
            "INSERT INTO host_pool (oid, name, state, prev_state, im_mad, vm_mad, cluster_id)
               VALUES (0, 'h', 2, 2, 'kvm', 'kvm', 0);
             INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
               prev_lcm_state, stime, cpu, memory, template)
             VALUES (1, 'a', 0, 0, 0, 1, 0, 0, 0, 0, 1, 64, ''),
                    (2, 'b', 0, 0, 0, 3, 3, 0, 0, 0, 2, 64, '');
             UPDATE vm_pool SET hid = 0, resched = 1 WHERE oid = 2;",
        )
        .unwrap();
        for (index, only) in [
            ("vm_pool_host", "hid >= 0"),
            ("vm_pool_resched", "resched = 1"),
        ] {
            let held: Vec<i64> = c
                .prepare_cached(&format!(
                    "SELECT oid FROM vm_pool INDEXED BY {index} WHERE {only}"
                ))
                .unwrap()
                .query_map((), |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(held, vec![2], "{index}");
        }
        // The recount counts the placed VM, read through the index.
        c.prepare_cached(&recount.sql)
            .unwrap()
            .run(recount.params.as_slice())
            .unwrap();
        let usage: (i64, i64) = c
            .query_row(
                "SELECT cpu_usage, running_vms FROM host_pool WHERE oid = 0",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(usage, (200, 1));
    }

    #[test]
    fn an_older_servers_indexes_of_every_vm_are_replaced_by_the_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        drop(open(&path));
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP INDEX vm_pool_host; DROP INDEX vm_pool_resched;
             CREATE INDEX vm_pool_host ON vm_pool (hid, state, cpu, memory);
             CREATE INDEX vm_pool_resched ON vm_pool (resched);",
        )
        .unwrap();
        drop(c);
        let c = open(&path);
        let defined: Vec<String> = c
            .prepare_cached(
                "SELECT sql FROM sqlite_schema WHERE name IN ('vm_pool_host', 'vm_pool_resched')
                 ORDER BY name",
            )
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            defined,
            [
                "CREATE INDEX vm_pool_host ON vm_pool (hid, state, cpu, memory) WHERE hid >= 0",
                "CREATE INDEX vm_pool_resched ON vm_pool (resched) WHERE resched = 1",
            ]
        );
        // Opening again leaves them as they are.
        drop(c);
        let c = open(&path);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'vm_pool_%' AND sql LIKE '% WHERE %'",
                (),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3, "vm_pool_host, vm_pool_resched and vm_pool_sched");
    }

    fn plan(c: &Conn, sql: &str) -> Vec<String> {
        plan_with(c, sql, ())
    }

    fn plan_with(c: &Conn, sql: &str, params: impl crate::sql::Params) -> Vec<String> {
        c.prepare_cached(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_schedulers_questions_of_every_period_read_only_what_they_ask_for() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("one.db"));
        use crate::objects::vm::{any_moving, ANY_MOVING, PENDING, WITH_SCHED_ACTIONS};
        let p = plan_with(&c, WITH_SCHED_ACTIONS, [6, 256, -1]);
        assert!(p.iter().any(|s| s.contains("vm_pool_sched")), "{p:?}");
        let p = plan_with(&c, PENDING, [1, 64, -1]);
        assert!(p.iter().any(|s| s.contains("vm_pool_state")), "{p:?}");
        assert!(!p.iter().any(|s| s.starts_with("SCAN")), "{p:?}");
        // In id order from the index: the first 64 entries, not every pending VM sorted.
        assert!(!p.iter().any(|s| s.contains("TEMP B-TREE")), "{p:?}");
        // The question whether a VM moves searches two ranges of the state index.
        let p = plan_with(&c, ANY_MOVING, [3, 3]);
        let ranges = p
            .iter()
            .filter(|s| s.contains("vm_pool_state (state=? AND lcm_state"));
        assert_eq!(ranges.count(), 2, "{p:?}");
        // The runner finds a VM with a scheduled action, and only that one.
        c.execute_batch(
            "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
               prev_lcm_state, stime, cpu, memory, template)
             VALUES (1, 'a', 0, 0, 0, 3, 3, 0, 0, 0, 1, 64, 'CPU=\"1\"'),
                    (2, 'b', 0, 0, 0, 3, 3, 0, 0, 0, 1, 64, 'SCHED_ACTION=[ACTION=\"poweroff\"]')",
        )
        .unwrap();
        let found: Vec<i64> = c
            .prepare_cached(WITH_SCHED_ACTIONS)
            .unwrap()
            .query_map([6, 256, -1], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(found, vec![2]);
        // Both RUNNING: nothing moves; a VM below (BOOT) or above (MIGRATE) RUNNING moves.
        assert!(!any_moving(&c).unwrap());
        for lcm in [2, 4] {
            c.execute_batch(&format!(
                "UPDATE vm_pool SET lcm_state = {lcm} WHERE oid = 1"
            ))
            .unwrap();
            assert!(any_moving(&c).unwrap(), "lcm_state {lcm}");
        }
    }

    #[test]
    fn per_owner_usage_and_per_vm_rows_are_searched_not_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("one.db"));
        let vm = crate::objects::lease::Holder::Vm.code();
        for sql in [
            "SELECT COUNT(*), SUM(cpu) FROM vm_pool WHERE state <> 6 AND uid = 7".to_string(),
            "SELECT COUNT(*) FROM vm_pool WHERE gid = 7".to_string(),
            "SELECT SUM(size) FROM image_pool WHERE uid = 7".to_string(),
            "SELECT i.oid, COUNT(*) FROM image_vm AS i JOIN vm_pool AS v ON v.oid = i.vid
             WHERE v.uid = 7 GROUP BY i.oid"
                .to_string(),
            format!(
                "SELECT l.vnet_oid FROM vnet_lease AS l JOIN vm_pool AS v ON v.oid = l.owner
                 WHERE l.kind = {vm} AND v.uid = 7"
            ),
            format!("DELETE FROM vnet_lease WHERE kind = {vm} AND owner = 7"),
            "DELETE FROM image_vm WHERE vid = 7".to_string(),
            "DELETE FROM secgroup_vm WHERE vid = 7".to_string(),
        ] {
            let p = plan(&c, &sql);
            assert!(!p.iter().any(|s| s.starts_with("SCAN")), "{sql}: {p:?}");
        }
        // An existing database gets them on open too.
        c.execute_batch("DROP INDEX vm_pool_uid").unwrap();
        drop(c);
        let c = open(&dir.path().join("one.db"));
        let p = plan(&c, "SELECT COUNT(*) FROM vm_pool WHERE uid = 7");
        assert!(p.iter().any(|s| s.contains("vm_pool_uid")), "{p:?}");
    }

    #[test]
    fn a_database_from_before_locks_gets_the_lock_columns_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(
                "CREATE TABLE template_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL,
                   uid INTEGER NOT NULL, gid INTEGER NOT NULL, perms INTEGER NOT NULL,
                   regtime INTEGER NOT NULL, template TEXT NOT NULL);
                 INSERT INTO template_pool VALUES (0, 't', 0, 0, 384, 1, 'A = 1');",
            )
            .unwrap();
        }
        let upgraded = open(&old);
        let fresh = open(&dir.path().join("new.db"));
        for table in LOCKABLE {
            assert_eq!(columns(&upgraded, table), columns(&fresh, table), "{table}");
        }
        let lock: (i64, i64) = upgraded
            .query_row(
                "SELECT lock_level, lock_owner FROM template_pool WHERE oid = 0",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(lock, (0, -1));
        // Opening again changes nothing.
        drop(upgraded);
        let again = open(&old);
        assert_eq!(
            columns(&again, "template_pool"),
            columns(&fresh, "template_pool")
        );
    }

    #[test]
    fn a_database_from_before_automatic_vlans_gets_their_columns_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(
                "CREATE TABLE vnet_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL,
                   uid INTEGER NOT NULL, gid INTEGER NOT NULL, perms INTEGER NOT NULL,
                   state INTEGER NOT NULL, vn_mad TEXT NOT NULL, bridge TEXT NOT NULL,
                   template TEXT NOT NULL, parent INTEGER NOT NULL DEFAULT -1,
                   lock_level INTEGER NOT NULL DEFAULT 0, lock_owner INTEGER NOT NULL DEFAULT -1,
                   lock_time INTEGER NOT NULL DEFAULT 0, lock_req INTEGER NOT NULL DEFAULT -1,
                   UNIQUE (name, uid));
                 INSERT INTO vnet_pool (oid, name, uid, gid, perms, state, vn_mad, bridge,
                   template) VALUES (0, 'n', 0, 0, 384, 1, '802.1Q', 'br0', 'VLAN_ID = 7');",
            )
            .unwrap();
        }
        let upgraded = open(&old);
        let fresh = open(&dir.path().join("new.db"));
        assert_eq!(
            columns(&upgraded, "vnet_pool"),
            columns(&fresh, "vnet_pool")
        );
        let kept: (i64, i64) = upgraded
            .query_row(
                "SELECT vlan_auto, outer_vlan_auto FROM vnet_pool WHERE oid = 0",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (-1, -1), "the template's VLAN_ID, none chosen");
    }

    #[test]
    fn a_database_from_before_history_actions_gets_their_columns_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(
                "CREATE TABLE history (vid INTEGER NOT NULL, seq INTEGER NOT NULL,
                   hid INTEGER NOT NULL, hostname TEXT NOT NULL, vm_mad TEXT NOT NULL,
                   stime INTEGER NOT NULL, etime INTEGER NOT NULL DEFAULT 0,
                   PRIMARY KEY (vid, seq));
                 INSERT INTO history VALUES (3, 0, 1, 'h', 'dummy', 10, 0);",
            )
            .unwrap();
        }
        let upgraded = open(&old);
        let fresh = open(&dir.path().join("new.db"));
        assert_eq!(columns(&upgraded, "history"), columns(&fresh, "history"));
        let kept: (i64, i64, i64, i64, i64) = upgraded
            .query_row(
                "SELECT cid, ds_id, action, uid, gid FROM history WHERE vid = 3",
                (),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(kept, (0, 0, 0, -1, -1), "no action, asked by no one");
    }

    fn counter(c: &Conn, table: &str) -> Option<i64> {
        use crate::Optional;
        c.query_row(
            "SELECT last_oid FROM pool_control WHERE tablename = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
    }

    #[test]
    fn a_database_from_before_documents_gets_their_table_and_counter_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut c = open(&path);
            crate::testing::bootstrap(&mut c);
            c.execute_batch(
                "DROP TABLE document_pool;
                 DELETE FROM pool_control WHERE tablename = 'document_pool'",
            )
            .unwrap();
        }
        let upgraded = open(&path);
        assert_eq!(counter(&upgraded, "document_pool"), Some(-1));
        let fresh_path = dir.path().join("new.db");
        let mut fresh = open(&fresh_path);
        assert_eq!(
            counter(&fresh, "document_pool"),
            None,
            "not before bootstrap"
        );
        crate::testing::bootstrap(&mut fresh);
        assert_eq!(
            columns(&upgraded, "document_pool"),
            columns(&fresh, "document_pool")
        );
        drop(upgraded);
        let again = open(&path);
        let n: i64 = again
            .query_row(
                "SELECT COUNT(*) FROM pool_control WHERE tablename = 'document_pool'",
                (),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
