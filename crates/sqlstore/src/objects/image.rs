//! Images (`image_pool`).

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "image_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub head: Head,
    pub lock: Lock,
    pub kind: i64,
    pub persistent: bool,
    pub regtime: i64,
    pub path: String,
    pub size: i64,
    pub state: i64,
    pub datastore_id: i64,
    pub datastore: String,
    pub template: String,
}

has_owner!(lockable ImageRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<ImageRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(ImageRow {
        head,
        lock,
        kind: r.get(c)?,
        persistent: r.get::<i64>(c + 1)? != 0,
        regtime: r.get(c + 2)?,
        path: r.get(c + 3)?,
        size: r.get(c + 4)?,
        state: r.get(c + 5)?,
        datastore_id: r.get(c + 6)?,
        datastore: r.get(c + 7)?,
        template: r.get(c + 8)?,
    })
}

pub static ROWS: Rows<ImageRow> = Rows {
    select: owned_select!(
        lockable "image_pool",
        "i",
        "i.type, i.persistent, i.regtime, i.path, i.size, i.state, i.datastore_id, \
         COALESCE(d.name, ''), i.template",
        " LEFT JOIN datastore_pool d ON d.oid = i.datastore_id"
    ),
    alias: "i",
    read,
};

/// What a new image is made of.
pub struct NewImage {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub kind: i64,
    pub persistent: bool,
    pub regtime: i64,
    pub path: String,
    pub size: i64,
    pub state: i64,
    pub datastore_id: i64,
    pub template: String,
}

pub fn insert(i: NewImage) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, type, persistent, regtime, path, size, state, datastore_id, \
         template",
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12",
        vec![
            SqlValue::Text(i.name),
            SqlValue::Int(i.uid),
            SqlValue::Int(i.gid),
            SqlValue::Int(i.perms),
            SqlValue::Int(i.kind),
            SqlValue::Int(i.persistent as i64),
            SqlValue::Int(i.regtime),
            SqlValue::Text(i.path),
            SqlValue::Int(i.size),
            SqlValue::Int(i.state),
            SqlValue::Int(i.datastore_id),
            SqlValue::Text(i.template),
        ],
    )
}
