//! A family of owned objects: what OpenNebula calls a `PoolObjectSQL` with an owner, a group
//! and permission bits (VMs, templates, images, networks, datastores...). A family is a
//! description, not code: its table, names, ACL bit, row reader and XML writer. The calls
//! every such object has are written once, here and in `owned.rs`: `info`, `pool.info`,
//! `chmod`, `chown`, `rename`, `update`, and the checks a `delete` starts with.
//!
//! A pool call filters in SQL (the flag, the caller's permissions and ACL rules, the oid range or
//! page: [`PoolFilter::sql`]) and prints the answer row by row from the SQLite cursor, so it reads
//! only the rows the caller will see and holds one parsed row at a time: its memory is bounded
//! by its answer, not by the table.

use sqlstore::sql::params_from_iter;
use sqlstore::Optional;
use xmlrpc::{Params, Value};

use super::perms::{caller, Caller, PoolFilter, Where, NO_LOCK, USE};
use super::{code, fail, not_authorized, Ctx, Failure, MethodResult};
use crate::auth::Session;

use sqlstore::{Conn, Row, SqlError};
/// Reads one object from a row of the family's `select` (the connection serves sub-queries).
pub type RowReader<R> = fn(&Conn, &Row) -> Result<R, SqlError>;

/// A family of owned objects.
pub struct Family<R: 'static> {
    /// Its table (`image_pool`).
    pub table: &'static str,
    /// ACL resource bit.
    pub kind: u64,
    /// ACL name, for messages (`IMAGE`).
    pub acl: &'static str,
    /// What OpenNebula's messages call one (`virtual machine template`).
    pub what: &'static str,
    /// Root of the pool XML (`IMAGE_POOL`).
    pub pool: &'static str,
    /// The template column `update` edits.
    pub template: &'static str,
    /// The family's rows, as `sqlstore` reads them.
    pub rows: &'static sqlstore::objects::Rows<R>,
    /// Appends its body in OpenNebula's XML.
    pub xml: fn(&R, &mut String),
    /// What an object counts for in its owner's quotas, for the families that have them
    /// (VMs, images): a `chown` checks the new owner's.
    pub quota: Option<fn(&R) -> Option<super::quota::Ask>>,
    /// Its body in pool answers, where it is not `xml`'s.
    pub pool_xml: Option<fn(&R, &mut String)>,
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

impl<R: sqlstore::objects::HasOwner + Send + 'static> Family<R> {
    /// NO_EXISTS: `Error getting <what> [<id>].`, or `Error getting <what> Pool.` for id -1
    /// (`Request::failure_message` leaves a -1 out).
    pub fn missing(&self, id: i64) -> Failure {
        let which = if id == -1 {
            " Pool.".to_string()
        } else {
            format!(" [{id}].")
        };
        fail(
            code::NO_EXISTS,
            format!("Error getting {}{which}", self.what),
        )
    }

    /// AUTHORIZATION `CREATE <ACL>` unless the caller may create objects of this family.
    pub async fn may_create(&self, ctx: &Ctx, s: &Session) -> Result<(), Failure> {
        if caller(ctx, s).await?.may_create(self.kind) {
            Ok(())
        } else {
            Err(not_authorized(s, &format!("CREATE {}", self.acl)))
        }
    }

    /// One object by id, or the family's NO_EXISTS.
    pub async fn get(&'static self, ctx: &Ctx, id: i64) -> Result<R, Failure> {
        self.get_in(&ctx.pool, id).await
    }

    /// [`Family::get`] on the read pool `pool`, for the leader's tasks.
    pub async fn get_in(&'static self, pool: &sqlstore::ReadPool, id: i64) -> Result<R, Failure> {
        let rows = self.rows;
        super::read_row_in(pool, move |c| {
            let mut st = c.prepare_cached(&rows.by_id())?;
            st.query_row([id], |r| (rows.read)(c, r)).optional()
        })
        .await?
        .ok_or_else(|| self.missing(id))
    }

    /// The objects of `ids` that exist, read together; ids past the family's highest are not
    /// looked up, so a client's long list costs what exists.
    pub async fn get_many(&'static self, ctx: &Ctx, mut ids: Vec<i64>) -> Result<Vec<R>, Failure> {
        ids.sort_unstable();
        ids.dedup();
        // Most VMs name no image, network or group: no read for them.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, table) = (self.rows, self.table);
        super::read_row_in(&ctx.pool, move |c| {
            let top: Option<i64> = c.query_row(
                &format!("SELECT MAX(oid) FROM {table}"),
                [] as [i64; 0],
                |r| r.get(0),
            )?;
            let mut st = c.prepare_cached(&rows.by_id())?;
            let mut out = Vec::new();
            for id in ids.into_iter().filter(|id| *id >= 0 && Some(*id) <= top) {
                if let Some(r) = st.query_row([id], |r| (rows.read)(c, r)).optional()? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The object, if the caller may exercise `right` on it (and its lock allows that, unless
    /// `right` carries [`NO_LOCK`]); else AUTHORIZATION `Not authorized to perform <RIGHT> <ACL>
    /// [<id>]`, or for an administrator held back by a lock `<ACL> is locked. [<id>]`, as
    /// OpenNebula's `AuthRequest::add_auth` words them.
    pub async fn authorized(
        &'static self,
        ctx: &Ctx,
        s: &Session,
        id: i64,
        right: u64,
    ) -> Result<R, Failure> {
        // `basic_authorization` of a negative id authorizes the bare type: an administrator
        // is then told there is no such object, anyone else that the type is not theirs.
        if id < 0 && !s.is_admin() {
            return Err(fail(
                code::AUTHORIZATION,
                format!(
                    "User [{}] : Not authorized to perform {} {}.",
                    s.uid,
                    super::perms::right_name(right & !NO_LOCK),
                    self.acl
                ),
            ));
        }
        let row = self.get(ctx, id).await?;
        let c = caller(ctx, s).await?;
        match self.refusal(&c, &row, right) {
            None => Ok(row),
            Some(why) => Err(fail(
                code::AUTHORIZATION,
                format!("User [{}] : {why}.", s.uid),
            )),
        }
    }

    /// The source of a clone (`RequestManagerClone::clone`): USE on it and CREATE of the family
    /// asked in one request, every refusal named.
    pub async fn authorized_clone(
        &'static self,
        ctx: &Ctx,
        s: &Session,
        id: i64,
    ) -> Result<R, Failure> {
        if id < 0 {
            return self.authorized(ctx, s, id, USE).await;
        }
        let row = self.get(ctx, id).await?;
        self.may_use_and_create(ctx, s, &row, true).await?;
        Ok(row)
    }

    /// USE on `row`, and CREATE of the family with `create`, asked in one request (every
    /// refusal named, as `AuthRequest` joins them).
    pub async fn may_use_and_create(
        &'static self,
        ctx: &Ctx,
        s: &Session,
        row: &R,
        create: bool,
    ) -> Result<(), Failure> {
        let c = caller(ctx, s).await?;
        super::granted_unless(s, &self.use_and_create_refusals(&c, row, create))
    }

    /// Why `c` may not USE `row` (and CREATE in the family, with `create`).
    pub fn use_and_create_refusals(&self, c: &Caller<'_>, row: &R, create: bool) -> Vec<String> {
        let mut why: Vec<String> = self.refusal(c, row, USE).into_iter().collect();
        if create && !c.may_create(self.kind) {
            why.push(self.create_refusal());
        }
        why
    }

    /// OpenNebula's words for a refused CREATE in the family.
    pub fn create_refusal(&self) -> String {
        format!("Not authorized to perform CREATE {}", self.acl)
    }

    /// Why `c` may not exercise `right` on `row` (OpenNebula's words, without the `User [uid]
    /// :` prefix), or `None` if it may.
    pub fn refusal(&self, c: &Caller<'_>, row: &R, right: u64) -> Option<String> {
        let op = right & !NO_LOCK;
        let o = row.owner();
        let locked = right & NO_LOCK == 0 && row.lock().is_some_and(|l| l.blocks(op));
        if locked && c.session.is_admin() {
            return Some(format!("{} is locked. [{}]", self.acl, o.oid));
        }
        if locked || !c.may(self.kind, &o, op) {
            return Some(format!(
                "Not authorized to perform {} {} [{}]",
                super::perms::right_name(op),
                self.acl,
                o.oid
            ));
        }
        None
    }

    /// `one.<o>.info(id)`: the object, if the caller may USE it.
    pub async fn info(&'static self, ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
        let id = p.int(0)? as i64;
        let row = self.authorized(ctx, s, id, USE | NO_LOCK).await?;
        let mut out = String::new();
        (self.xml)(&row, &mut out);
        Ok(Value::String(super::encrypted::answer(
            ctx, s, &p, self.table, out,
        )?))
    }

    /// `one.<o>pool.info(filter, start, end)`, keeping only rows that also meet `only` (SQL
    /// over the family's `select`, e.g. a VM state), in the session's `list_order`.
    pub async fn pool_info(
        &'static self,
        ctx: &Ctx,
        s: &Session,
        p: Params<'_>,
        only: Where,
    ) -> MethodResult {
        let filter = PoolFilter::parse(&p)?;
        let c = caller(ctx, s).await?;
        let mut cond = only;
        let page = filter.sql(&c, self.kind, self.rows.alias, &mut cond);
        self.print_pool(ctx, s, cond, page).await
    }

    /// Every object the caller may USE, for pools that take no filter (`datastorepool.info`).
    pub async fn pool_all(&'static self, ctx: &Ctx, s: &Session) -> MethodResult {
        let c = caller(ctx, s).await?;
        let mut cond = Where::default();
        if let Some((sql, args)) = c.may_sql(self.kind, USE, self.rows.alias) {
            cond.and(sql, args);
        }
        self.print_pool(ctx, s, cond, None).await
    }

    pub async fn print_pool(
        &'static self,
        ctx: &Ctx,
        s: &Session,
        cond: Where,
        page: Option<(i64, i64)>,
    ) -> MethodResult {
        let rows = self.rows;
        let order = super::list_order::for_session(ctx, s).await?;
        let mut sql = format!(
            "{}{} ORDER BY {}.oid{}",
            rows.select,
            cond.clause(),
            rows.alias,
            order.sql()
        );
        let mut args = cond.args;
        if let Some((size, offset)) = page {
            sql.push_str(" LIMIT ? OFFSET ?");
            args.extend([size, offset]);
        }
        let (xml, pool) = (self.pool_xml.unwrap_or(self.xml), self.pool);
        let body = ctx
            .read(move |c| {
                let mut out = format!("<{pool}>");
                print_rows(c, &sql, args, rows.read, xml, &mut out)?;
                out.push_str(&format!("</{pool}>"));
                Ok(out)
            })
            .await?;
        Ok(Value::String(body))
    }
}

/// ACTION `message` for ids below 100: OpenNebula's own objects (system groups, datastores...)
/// are never deleted.
pub fn deletable_id(id: i64, message: &'static str) -> Result<(), Failure> {
    if id < 100 {
        return Err(fail(code::ACTION, message));
    }
    Ok(())
}
