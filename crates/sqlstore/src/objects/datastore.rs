//! Datastores (`datastore_pool`), with the images each holds.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Rows, HEAD_COLUMNS};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "datastore_pool";

/// An image a datastore holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldImage {
    pub oid: i64,
    /// MB.
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatastoreRow {
    pub head: Head,
    /// 0 image, 1 system, 2 file datastore.
    pub kind: i64,
    pub ds_mad: String,
    pub tm_mad: String,
    pub state: i64,
    pub template: String,
    pub images: Vec<HeldImage>,
    /// The clusters it belongs to, ascending.
    pub clusters: Vec<i64>,
}

has_owner!(DatastoreRow);

fn read(c: &Conn, r: &Row) -> crate::sql::Result<DatastoreRow> {
    let head = Head::from_row(r)?;
    let mut imgs =
        c.prepare_cached("SELECT oid, size FROM image_pool WHERE datastore_id = ?1 ORDER BY oid")?;
    let images = imgs
        .query_map([head.owned.oid], |r| {
            Ok(HeldImage {
                oid: r.get(0)?,
                size: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let clusters =
        super::cluster::clusters_of(c, super::cluster::Member::Datastore, head.owned.oid)?;
    let c = HEAD_COLUMNS;
    Ok(DatastoreRow {
        head,
        clusters,
        kind: r.get(c)?,
        ds_mad: r.get(c + 1)?,
        tm_mad: r.get(c + 2)?,
        state: r.get(c + 3)?,
        template: r.get(c + 4)?,
        images,
    })
}

pub static ROWS: Rows<DatastoreRow> = Rows {
    select: owned_select!(
        "datastore_pool",
        "d",
        "d.type, d.ds_mad, d.tm_mad, d.state, d.template"
    ),
    alias: "d",
    read,
};

/// What a new datastore is made of.
pub struct NewDatastore {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub kind: i64,
    pub ds_mad: String,
    pub tm_mad: String,
    pub template: String,
}

pub fn insert(d: NewDatastore) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, type, ds_mad, tm_mad, template",
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8",
        vec![
            SqlValue::Text(d.name),
            SqlValue::Int(d.uid),
            SqlValue::Int(d.gid),
            SqlValue::Int(d.perms),
            SqlValue::Int(d.kind),
            SqlValue::Text(d.ds_mad),
            SqlValue::Text(d.tm_mad),
            SqlValue::Text(d.template),
        ],
    )
}

/// `one.datastore.update`: the new template with the type and drivers it sets, guarded on the
/// template read (`old`).
pub fn set_template_and_drivers(
    oid: i64,
    kind: i64,
    ds_mad: &str,
    tm_mad: &str,
    template: String,
    old: String,
) -> SqlStmt {
    SqlStmt::new(
        "UPDATE datastore_pool SET type = ?2, ds_mad = ?3, tm_mad = ?4, template = ?5
         WHERE oid = ?1 AND template = ?6",
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(kind),
            SqlValue::Text(ds_mad.to_string()),
            SqlValue::Text(tm_mad.to_string()),
            SqlValue::Text(template),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// `one.datastore.enable`: READY (0) or DISABLED (1).
pub fn set_state(oid: i64, state: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE datastore_pool SET state = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(state)],
    )
    .must_match()
}

/// Deletes datastore `oid` only while it holds no image.
pub fn delete_if_empty(oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "DELETE FROM datastore_pool WHERE oid = ?1
               AND NOT EXISTS (SELECT 1 FROM image_pool WHERE datastore_id = ?1)",
            vec![SqlValue::Int(oid)],
        )
        .must_match(),
        super::cluster::forget(super::cluster::Member::Datastore, oid),
    ]
}
