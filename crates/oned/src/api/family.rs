//! `info` and `pool.info` for families of owned objects (VMs, templates, images, networks):
//! load, authorize USE, filter, print. Each family gives its row loader and XML writer.

use xmlrpc::{Params, Value};

use super::perms::{caller, not_authorized, Owned, PoolFilter, USE};
use super::{Ctx, Failure, MethodResult};
use crate::auth::Session;

type Conn = sqlstore::rusqlite::Connection;
type Loader<R> = fn(&Conn, Option<i64>) -> Result<Vec<R>, sqlstore::rusqlite::Error>;

/// A family of owned objects.
pub struct Family<R> {
    /// ACL resource bit.
    pub kind: u64,
    /// ACL name, for messages (`IMAGE`).
    pub acl: &'static str,
    /// Root of the pool XML (`IMAGE_POOL`).
    pub pool: &'static str,
    pub load: Loader<R>,
    pub owned: fn(&R) -> Owned,
    pub xml: fn(&R) -> String,
    pub missing: fn(i64) -> Failure,
}

impl<R: Send + 'static> Family<R> {
    /// One object by id, or the family's NO_EXISTS.
    pub async fn get(&self, ctx: &Ctx, id: i64) -> Result<R, Failure> {
        let load = self.load;
        ctx.read(move |c| load(c, Some(id)))
            .await?
            .pop()
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

    /// `one.<o>pool.info(filter, start, end)`, keeping rows `keep` accepts.
    pub async fn pool_info(
        &self,
        ctx: &Ctx,
        s: &Session,
        p: Params<'_>,
        keep: impl Fn(&R) -> bool,
    ) -> MethodResult {
        let filter = PoolFilter::parse(&p)?;
        let c = caller(ctx, s).await?;
        let load = self.load;
        let rows = ctx.read(move |c| load(c, None)).await?;
        let rows: Vec<(Owned, R)> = rows
            .into_iter()
            .filter(|r| keep(r))
            .map(|r| ((self.owned)(&r), r))
            .collect();
        let body: String = filter
            .apply(&c, self.kind, rows)
            .iter()
            .map(|r| (self.xml)(r))
            .collect();
        Ok(Value::String(format!("<{0}>{body}</{0}>", self.pool)))
    }
}
