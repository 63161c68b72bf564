//! `info` and `pool.info` for families of owned objects (VMs, templates, images, networks):
//! read, authorize USE, print. Each family gives its query, row reader and XML writer.
//!
//! A pool call filters in SQL (the flag, the caller's permissions and ACL rules, the oid range or
//! page: [`PoolFilter::sql`]) and prints the answer row by row from the SQLite cursor, so it reads
//! only the rows the caller will see and holds one parsed row at a time: its memory is bounded
//! by its answer, not by the table.

use sqlstore::rusqlite::{params_from_iter, OptionalExtension};
use xmlrpc::{Params, Value};

use super::perms::{caller, not_authorized, Owned, PoolFilter, Where, USE};
use super::{Ctx, Failure, MethodResult};
use crate::auth::Session;

type Conn = sqlstore::rusqlite::Connection;
type SqlError = sqlstore::rusqlite::Error;
/// Reads one object from a row of the family's `select` (the connection serves sub-queries).
pub type RowReader<R> = fn(&Conn, &sqlstore::rusqlite::Row<'_>) -> Result<R, SqlError>;

/// A family of owned objects.
pub struct Family<R> {
    /// ACL resource bit.
    pub kind: u64,
    /// ACL name, for messages (`IMAGE`).
    pub acl: &'static str,
    /// Root of the pool XML (`IMAGE_POOL`).
    pub pool: &'static str,
    /// `SELECT <columns> FROM <table> <alias> LEFT JOIN ...`, without WHERE: what `row` reads.
    pub select: &'static str,
    /// The alias of the family's table in `select`, whose `oid`, `uid`, `gid` and `perms`
    /// columns the pool filter reads.
    pub alias: &'static str,
    pub row: RowReader<R>,
    pub owned: fn(&R) -> Owned,
    pub xml: fn(&R) -> String,
    pub missing: fn(i64) -> Failure,
}

/// Runs `sql` with `args` and appends `xml` of each row to `out`, one row at a time: only one
/// parsed row is ever held, whatever the table holds.
pub fn print_rows<R>(
    c: &Conn,
    sql: &str,
    args: Vec<i64>,
    row: RowReader<R>,
    xml: impl Fn(&R, &mut String),
    out: &mut String,
) -> Result<(), SqlError> {
    let mut st = c.prepare(sql)?;
    let mut rows = st.query(params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        xml(&row(c, r)?, out);
    }
    Ok(())
}

impl<R: Send + 'static> Family<R> {
    /// One object by id, or the family's NO_EXISTS.
    pub async fn get(&self, ctx: &Ctx, id: i64) -> Result<R, Failure> {
        let (select, alias, row) = (self.select, self.alias, self.row);
        ctx.read(move |c| {
            let mut st = c.prepare_cached(&format!("{select} WHERE {alias}.oid = ?1"))?;
            st.query_row([id], |r| row(c, r)).optional()
        })
        .await?
        .ok_or_else(|| (self.missing)(id))
    }

    /// `one.<o>.info(id)`: the object, if the caller may USE it.
    pub async fn info(&self, ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
        let id = p.int(0)? as i64;
        let row = self.get(ctx, id).await?;
        if !caller(ctx, s)
            .await?
            .may(self.kind, &(self.owned)(&row), USE)
        {
            return Err(not_authorized(s, &format!("USE {} [{id}]", self.acl)));
        }
        Ok(Value::String((self.xml)(&row)))
    }

    /// `one.<o>pool.info(filter, start, end)`, keeping only rows that also meet `only` (SQL
    /// over the family's `select`, e.g. a VM state), in oid order.
    pub async fn pool_info(
        &self,
        ctx: &Ctx,
        s: &Session,
        p: Params<'_>,
        only: Where,
    ) -> MethodResult {
        let filter = PoolFilter::parse(&p)?;
        let c = caller(ctx, s).await?;
        let mut cond = only;
        let page = filter.sql(&c, self.kind, self.alias, &mut cond);
        let mut sql = format!(
            "{}{} ORDER BY {}.oid",
            self.select,
            cond.clause(),
            self.alias
        );
        let mut args = cond.args;
        if let Some((size, offset)) = page {
            sql.push_str(" LIMIT ? OFFSET ?");
            args.extend([size, offset]);
        }
        let (row, xml, pool) = (self.row, self.xml, self.pool);
        let body = ctx
            .read(move |c| {
                let mut out = format!("<{pool}>");
                print_rows(c, &sql, args, row, |r, out| out.push_str(&xml(r)), &mut out)?;
                out.push_str(&format!("</{pool}>"));
                Ok(out)
            })
            .await?;
        Ok(Value::String(body))
    }
}
