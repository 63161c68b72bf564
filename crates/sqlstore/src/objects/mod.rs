//! Every object family's rows and statements (VMs, templates, images, datastores, virtual
//! networks, hosts, groups): typed rows, the query each is read with, and the statements that change
//! them. `oned::api` authorizes, builds the transaction from these and formats the XML. The SQL
//! is written once for both backends (`crate::sql`).

pub mod acl;
pub mod backup;
pub mod backupjob;
pub mod cluster;
pub mod datastore;
pub mod document;
pub mod group;
pub mod hook;
pub mod host;
pub mod image;
pub mod lease;
pub mod market;
pub mod monitoring;
pub mod pci;
pub mod placement;
pub mod plan;
pub mod quota;
pub mod secgroup;
pub mod template;
pub mod user;
pub mod vdc;
pub mod vm;
pub mod vmgroup;
pub mod vnc;
pub mod vnet;
pub mod vntemplate;
pub mod vrouter;
pub mod zone;

use crate::sql::{Conn, Row};

use crate::{SqlStmt, SqlValue};

/// What authorization needs to know about an object: its id, owner, group and the nine
/// permission bits (owner u m a, group u m a, other u m a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub oid: i64,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
}

/// The columns every owned row starts with: owner, group, permissions, name, and the owner's
/// and group's names.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub owned: Owned,
    pub name: String,
    pub uname: String,
    pub gname: String,
}

/// How many columns [`Head`] reads: a family's own columns start at this index.
pub const HEAD_COLUMNS: usize = 7;

impl Head {
    fn from_row(r: &Row) -> crate::sql::Result<Head> {
        Ok(Head {
            owned: Owned {
                oid: r.get(0)?,
                uid: r.get(1)?,
                gid: r.get(2)?,
                perms: r.get(3)?,
            },
            name: r.get(4)?,
            uname: r.get(5)?,
            gname: r.get(6)?,
        })
    }
}

/// A row that has an owner, group and permissions.
pub trait HasOwner {
    fn owner(&self) -> Owned;

    fn name(&self) -> &str;

    /// Its lock, for families OpenNebula lets lock (VMs, templates, images, networks...).
    fn lock(&self) -> Option<&Lock> {
        None
    }
}

/// OpenNebula's object lock (`PoolObjectSQL::lock_db`): a level, who took it, when, and the
/// request that did. Level 0 is unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lock {
    /// 0 none, 1 USE, 2 MANAGE, 3 ADMIN (`PoolObjectSQL::LockStates`).
    pub level: i64,
    pub owner: i64,
    pub time: i64,
    pub req_id: i64,
}

/// How many columns a lock takes after [`Head`] in a lockable family's `select`.
pub const LOCK_COLUMNS: usize = 4;

impl Lock {
    fn from_row(r: &Row, at: usize) -> crate::sql::Result<Lock> {
        Ok(Lock {
            level: r.get(at)?,
            owner: r.get(at + 1)?,
            time: r.get(at + 2)?,
            req_id: r.get(at + 3)?,
        })
    }

    /// Whether this lock refuses an operation needing `op` (USE 1, MANAGE 2, ADMIN 4), as
    /// OpenNebula's `AclManager::authorize`: a level at or below the operation's number.
    pub fn blocks(&self, op: u64) -> bool {
        self.level > 0 && self.level as u64 <= op
    }

    /// The head and lock of a lockable row, and the index its own columns start at.
    pub fn head_and_lock(r: &Row) -> crate::sql::Result<(Head, Lock, usize)> {
        Ok((
            Head::from_row(r)?,
            Lock::from_row(r, HEAD_COLUMNS)?,
            HEAD_COLUMNS + LOCK_COLUMNS,
        ))
    }
}

/// Takes (or, by its owner or an administrator, retakes) the lock of object `oid`, if it is
/// still `was` (read before): a concurrent change makes it match nothing.
pub fn set_lock(table: &str, oid: i64, lock: Lock, was: Lock) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "UPDATE {table} SET lock_level = ?2, lock_owner = ?3, lock_time = ?4, lock_req = ?5
             WHERE oid = ?1 AND lock_level = ?6 AND lock_owner = ?7"
        ),
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(lock.level),
            SqlValue::Int(lock.owner),
            SqlValue::Int(lock.time),
            SqlValue::Int(lock.req_id),
            SqlValue::Int(was.level),
            SqlValue::Int(was.owner),
        ],
    )
    .must_match()
}

/// Reads one row of a family's `select` (the connection serves sub-queries).
pub type RowReader<R> = fn(&Conn, &Row) -> crate::sql::Result<R>;

/// How a family's rows are read.
pub struct Rows<R> {
    /// `SELECT <head>, <own columns> FROM <table> <alias> LEFT JOIN ...`, without WHERE.
    pub select: &'static str,
    /// The alias of the family's table in `select`, whose `oid`, `uid`, `gid` and `perms`
    /// columns pool filters read.
    pub alias: &'static str,
    pub read: RowReader<R>,
}

impl<R> Rows<R> {
    /// The query for one row by oid (`?1`).
    pub fn by_id(&self) -> String {
        format!("{} WHERE {}.oid = ?1", self.select, self.alias)
    }
}

/// `SELECT` of a family's [`Head`] followed by its own columns, joined with the owner's and
/// group's names: `owned_select!(table, alias, "own columns" [, "more joins"])`.
macro_rules! owned_select {
    (lockable $table:literal, $a:literal, $cols:literal $(, $joins:literal)?) => {
        owned_select!(
            $table,
            $a,
            concat!(
                $a, ".lock_level, ", $a, ".lock_owner, ", $a, ".lock_time, ", $a, ".lock_req, ",
                $cols
            ),
            concat!("" $(, $joins)?)
        )
    };
    ($table:literal, $a:literal, $cols:expr) => {
        owned_select!($table, $a, $cols, "")
    };
    ($table:literal, $a:literal, $cols:expr, $joins:expr) => {
        concat!(
            "SELECT ",
            $a,
            ".oid, ",
            $a,
            ".uid, ",
            $a,
            ".gid, ",
            $a,
            ".perms, ",
            $a,
            ".name, ",
            "COALESCE(u.name, ''), COALESCE(g.name, ''), ",
            $cols,
            " FROM ",
            $table,
            " ",
            $a,
            " LEFT JOIN user_pool u ON u.oid = ",
            $a,
            ".uid",
            " LEFT JOIN group_pool g ON g.oid = ",
            $a,
            ".gid",
            $joins
        )
    };
}
pub(crate) use owned_select;

/// `HasOwner` for a row with a `head` (and, for `lockable` rows, a `lock`).
macro_rules! has_owner {
    ($row:ty) => {
        impl $crate::objects::HasOwner for $row {
            fn owner(&self) -> $crate::objects::Owned {
                self.head.owned
            }

            fn name(&self) -> &str {
                &self.head.name
            }
        }
    };
    (lockable $row:ty) => {
        impl $crate::objects::HasOwner for $row {
            fn owner(&self) -> $crate::objects::Owned {
                self.head.owned
            }

            fn name(&self) -> &str {
                &self.head.name
            }

            fn lock(&self) -> Option<&$crate::objects::Lock> {
                Some(&self.lock)
            }
        }
    };
}
pub(crate) use has_owner;

/// An insert whose oid is the next one of `table`'s `pool_control` counter: `columns` (after
/// `oid`) take `values` (SQL over `pool_control`, `last_oid + 1` being the new oid), returning
/// the oid. The counter itself moves in [`next_oid`], in the same transaction.
pub fn insert_next(table: &str, columns: &str, values: &str, args: Vec<SqlValue>) -> SqlStmt {
    insert_next_where(table, columns, values, "", args)
}

/// [`insert_next`] that inserts nothing (the statement matches no row) when SQL condition
/// `unless` holds.
pub fn insert_next_unless(
    table: &str,
    columns: &str,
    values: &str,
    unless: &str,
    args: Vec<SqlValue>,
) -> SqlStmt {
    insert_next_where(table, columns, values, &format!(" AND NOT {unless}"), args)
}

fn insert_next_where(
    table: &str,
    columns: &str,
    values: &str,
    and: &str,
    args: Vec<SqlValue>,
) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "INSERT INTO {table} (oid, {columns}) SELECT last_oid + 1, {values} FROM pool_control
             WHERE tablename = '{table}'{and} RETURNING oid"
        ),
        args,
    )
    .must_match()
}

/// Moves `table`'s oid counter past the oid [`insert_next`] took.
pub fn next_oid(table: &str) -> SqlStmt {
    SqlStmt::new(
        "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1",
        vec![SqlValue::Text(table.to_string())],
    )
}

/// `chmod`: the object's nine permission bits.
pub fn set_perms(table: &str, oid: i64, perms: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("UPDATE {table} SET perms = ?2 WHERE oid = ?1"),
        vec![SqlValue::Int(oid), SqlValue::Int(perms)],
    )
    .must_match()
}

/// `chown`: owner and group.
pub fn set_owner(table: &str, oid: i64, uid: i64, gid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("UPDATE {table} SET uid = ?2, gid = ?3 WHERE oid = ?1"),
        vec![SqlValue::Int(oid), SqlValue::Int(uid), SqlValue::Int(gid)],
    )
    .must_match()
}

/// `rename`.
pub fn set_name(table: &str, oid: i64, name: &str) -> SqlStmt {
    SqlStmt::new(
        &format!("UPDATE {table} SET name = ?2 WHERE oid = ?1"),
        vec![SqlValue::Int(oid), SqlValue::Text(name.to_string())],
    )
    .must_match()
}

/// The text of template column `column` of object `oid`, if it exists.
pub fn template_text(
    c: &Conn,
    table: &str,
    column: &str,
    oid: i64,
) -> crate::sql::Result<Option<String>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!("SELECT {column} FROM {table} WHERE oid = ?1"))?
        .query_row([oid], |r| r.get(0))
        .optional()
}

/// Sets template column `column` to `new` only if it still holds `old` (read-compute-write:
/// a concurrent change makes it match nothing).
pub fn replace_template(table: &str, column: &str, oid: i64, new: String, old: String) -> SqlStmt {
    if table == vm::TABLE && column == "template" {
        return quota::replace_vm_template(oid, new, old);
    }
    SqlStmt::new(
        &format!("UPDATE {table} SET {column} = ?2 WHERE oid = ?1 AND {column} = ?3"),
        vec![SqlValue::Int(oid), SqlValue::Text(new), SqlValue::Text(old)],
    )
    .must_match()
}

/// `DELETE` of object `oid` of `table`.
pub fn delete(table: &str, oid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("DELETE FROM {table} WHERE oid = ?1"),
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}

/// The tables an id may be checked against before it is written into another row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    User,
    Group,
    Host,
    Datastore,
    Vnet,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::User => "user_pool",
            Table::Group => "group_pool",
            Table::Host => "host_pool",
            Table::Datastore => "datastore_pool",
            Table::Vnet => "vnet_pool",
        }
    }
}

/// Whether `table` holds object `oid`.
pub fn exists(c: &Conn, table: Table, oid: i64) -> crate::sql::Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE oid = ?1)",
        table.name()
    );
    c.prepare_cached(&sql)?.query_row([oid], |r| r.get(0))
}

/// The id of the object of `table` called `name` owned by `uid` (names are unique per owner in
/// the tables OpenNebula looks objects up by name in: networks, images, templates).
pub fn oid_by_name(c: &Conn, table: &str, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    use crate::Optional;
    c.query_row(
        &format!("SELECT oid FROM {table} WHERE name = ?1 AND uid = ?2"),
        [SqlValue::Text(name.to_string()), SqlValue::Int(uid)],
        |r| r.get::<i64>(0),
    )
    .optional()
}

/// A write of object `oid` of `table` that changes nothing: a call that has nothing to change
/// still answers once the log has its turn, as every write does.
pub fn touch(table: &str, oid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("UPDATE {table} SET oid = oid WHERE oid = ?1"),
        vec![SqlValue::Int(oid)],
    )
}

/// Whether `table` holds object `oid`.
pub fn oid_exists(c: &Conn, table: &str, oid: i64) -> crate::sql::Result<bool> {
    use crate::Optional;
    c.prepare_cached(&format!("SELECT 1 FROM {table} WHERE oid = ?1"))?
        .query_row([oid], |r| r.get::<i64>(0))
        .optional()
        .map(|row| row.is_some())
}

/// The lowest id of an object of `table` called `name` (which object an allocation collided
/// with; OpenNebula's refusal names it).
pub fn oid_named(c: &Conn, table: &str, name: &str) -> crate::sql::Result<Option<i64>> {
    use crate::Optional;
    c.query_row(
        &format!("SELECT MIN(oid) FROM {table} WHERE name = ?1 HAVING COUNT(*) > 0"),
        [SqlValue::Text(name.to_string())],
        |r| r.get::<i64>(0),
    )
    .optional()
}

/// The object of `uid` in `table` called `name`, if there is one: the duplicate check of the
/// pools whose names are unique per owner (`PoolSQL::exist(name, uid)`).
pub fn owned_named(c: &Conn, table: &str, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    use crate::Optional;
    c.prepare_cached(&format!(
        "SELECT MIN(oid) FROM {table} WHERE name = ?1 AND uid = ?2 HAVING COUNT(*) > 0"
    ))?
    .query_row((name, uid), |r| r.get::<i64>(0))
    .optional()
}
