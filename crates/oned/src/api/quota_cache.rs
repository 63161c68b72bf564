//! The quotas of users and groups, kept in memory between reads: `one.user.info`,
//! `one.group.info`, their pools and the default quotas would otherwise count every owner's
//! usage from its VMs, images, leases and backups on each call (five to seven queries), where
//! `one.vm.info` reads one row.
//!
//! A copy is valid while the generation of the quota tables stands (`Watched::Quotas`: the
//! limits and every table usage is counted from), moved by the state machine after each
//! commit that writes to one of them. So the leader's write path runs no more SQL, and a
//! server shows the usage a write left as soon as it has applied that write. Copies are
//! bounded in number and bytes: how many users and groups exist is up to clients.

use std::sync::Arc;

use sqlstore::objects::quota::{Owner, DEFAULTS};
use sqlstore::{Conn, SqlError, Watched};

use super::quota::{load, AllQuotas, Quotas};
use super::{Ctx, Failure};
use crate::gencache::GenMap;

/// Users' and groups' quotas kept, and the bytes they may take.
const ENTRIES: usize = 4096;
const BYTES: usize = 16 << 20;
/// A pool's quotas (one copy for users, one for groups) may take this much; a larger one is
/// read again at each listing, as before.
const POOL_BYTES: usize = 32 << 20;

/// The quotas kept, by owner and id, and those of whole pools, by owner.
pub struct QuotaCache {
    one: GenMap<(Owner, i64), Arc<Quotas>>,
    pools: GenMap<Owner, Arc<AllQuotas>>,
}

impl Default for QuotaCache {
    fn default() -> Self {
        QuotaCache {
            one: GenMap::new(ENTRIES, BYTES),
            pools: GenMap::new(2, POOL_BYTES),
        }
    }
}

/// A read of the quotas of one user or group and of its owner kind's defaults: what memory
/// held under the generation taken before the read; [`Lookup::read`] reads the rest.
#[derive(Clone)]
pub struct Lookup {
    now: u64,
    owner: Owner,
    oid: i64,
    mine: Option<Arc<Quotas>>,
    defaults: Option<Arc<Quotas>>,
}

/// What [`Lookup::read`] found, and what of it was read from the database.
pub struct Found {
    lookup: Lookup,
    pub mine: Arc<Quotas>,
    pub defaults: Arc<Quotas>,
}

impl Lookup {
    /// Starts a read of the quotas of `owner` `oid` (and its defaults).
    pub fn start(ctx: &Ctx, owner: Owner, oid: i64) -> Lookup {
        let now = ctx.auth.changes().get(Watched::Quotas);
        let cache = &ctx.quotas.one;
        Lookup {
            now,
            owner,
            oid,
            mine: cache.get(now, &(owner, oid)),
            defaults: cache.get(now, &(owner, DEFAULTS)),
        }
    }

    /// Inside a read: the quotas memory did not hold, read on `c`.
    pub fn read(self, c: &Conn) -> Result<Found, SqlError> {
        let mine = match &self.mine {
            Some(q) => q.clone(),
            None => Arc::new(load(c, self.owner, self.oid)?),
        };
        let defaults = match &self.defaults {
            Some(q) => q.clone(),
            None if self.oid == DEFAULTS => mine.clone(),
            None => Arc::new(load(c, self.owner, DEFAULTS)?),
        };
        Ok(Found {
            lookup: self,
            mine,
            defaults,
        })
    }
}

impl Found {
    /// Keeps what was read for the next calls.
    pub fn keep(&self, ctx: &Ctx) {
        let l = &self.lookup;
        let cache = &ctx.quotas.one;
        if l.mine.is_none() {
            cache.put(
                l.now,
                (l.owner, l.oid),
                self.mine.clone(),
                self.mine.bytes(),
            );
        }
        if l.defaults.is_none() && l.oid != DEFAULTS {
            let d = self.defaults.clone();
            cache.put(l.now, (l.owner, DEFAULTS), d, self.defaults.bytes());
        }
    }
}

/// The default quotas of users or groups (`one.userquota.info`, `one.groupquota.info`).
pub async fn defaults(ctx: &Ctx, owner: Owner) -> Result<Arc<Quotas>, Failure> {
    let lookup = Lookup::start(ctx, owner, DEFAULTS);
    if let Some(q) = &lookup.mine {
        return Ok(q.clone());
    }
    let found = ctx.read(move |c| lookup.read(c)).await?;
    found.keep(ctx);
    Ok(found.mine)
}

/// The quotas of every `owner`, for a pool listing: from memory under the current generation,
/// else read on `c` (inside the listing's read, so the rows and the quotas agree) and kept.
/// `now` is the generation taken before the read began ([`pool_generation`]).
pub fn pool(
    cache: &QuotaCache,
    now: u64,
    c: &Conn,
    owner: Owner,
) -> Result<Arc<AllQuotas>, SqlError> {
    if let Some(all) = cache.pools.get(now, &owner) {
        return Ok(all);
    }
    let all = Arc::new(AllQuotas::load(c, owner)?);
    cache.pools.put(now, owner, all.clone(), all.bytes());
    Ok(all)
}

/// The generation a pool listing's read must take before it begins, for [`pool`].
pub fn pool_generation(ctx: &Ctx) -> u64 {
    ctx.auth.changes().get(Watched::Quotas)
}
