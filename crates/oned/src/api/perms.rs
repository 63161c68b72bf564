//! Object ownership, OpenNebula's permission bits and ACL rules, and pool filters: who may see
//! or change an object (`AuthManager`), and the same rules as SQL for pool calls
//! (`PoolSQL::usr_filter`, `acl_filter`, `oid_filter`), so a pool call reads only the rows its
//! caller will see.

use xmlrpc::Params;

use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

pub use wire::acl::{ADMIN, CREATE, MANAGE, USE};

/// ACL resource bits of the object types checked here.
pub use wire::acl::{TEMPLATE, VM};

/// `DEFAULT_UMASK = 177`: owner use and manage, nothing else (bits u m a for owner, group,
/// other, most significant first).
pub const DEFAULT_PERMS: i64 = 0o600;

pub use sqlstore::Owned;

/// Added to a right, an operation a lock does not refuse (OpenNebula's `*_NO_LCK`): reading an
/// object, and taking or releasing its lock.
pub const NO_LOCK: u64 = 0x10;

/// A right's name in OpenNebula's messages (`USE`, `MANAGE`, `ADMIN`, `CREATE`).
pub fn right_name(right: u64) -> &'static str {
    match right {
        USE => "USE",
        MANAGE => "MANAGE",
        ADMIN => "ADMIN",
        CREATE => "CREATE",
        _ => "UNKNOWN",
    }
}

/// A caller with its groups and the ACL rules that concern it.
pub struct Caller<'a> {
    pub session: &'a Session,
    pub groups: Vec<i64>,
    /// (user, resource, rights) of every rule.
    pub rules: Vec<(u64, u64, u64)>,
}

/// ACL rule bits for who (user) or what (resource) a rule names: `#id`, `@gid`, `*`.
use wire::acl::{
    ALL_ID as ACL_ALL, GROUP_ID as ACL_GROUP, ID_MASK, INDIVIDUAL_ID as ACL_INDIVIDUAL,
};

/// The bit of `right` in the permission octet of a class (u m a = 4 2 1).
fn right_octet_bit(right: u64) -> i64 {
    match right {
        USE => 0o4,
        MANAGE => 0o2,
        ADMIN => 0o1,
        _ => 0,
    }
}

fn perm_bit(perms: i64, class: u32, right: u64) -> bool {
    // class 0 owner, 1 group, 2 other; right USE/MANAGE/ADMIN = bit 2/1/0 of the class octet.
    let octet = (perms >> (3 * (2 - class))) & 0o7;
    let bit = match right {
        USE => 0o4,
        MANAGE => 0o2,
        ADMIN => 0o1,
        _ => 0,
    };
    octet & bit != 0
}

/// `col IN (?, ?, ...)` for `n` values.
fn in_list(col: &str, n: usize) -> String {
    let marks = vec!["?"; n].join(", ");
    format!("{col} IN ({marks})")
}

/// A SQL condition under construction: parts joined by AND, each with its `?` values in order.
#[derive(Debug, Clone, Default)]
pub struct Where {
    parts: Vec<String>,
    pub args: Vec<i64>,
}

impl Where {
    /// Adds `cond` (with `?` placeholders for `args`), ANDed with what is there.
    pub fn and(&mut self, cond: impl Into<String>, args: impl IntoIterator<Item = i64>) {
        self.parts.push(cond.into());
        self.args.extend(args);
    }

    /// ` WHERE (a) AND (b)`, or nothing.
    pub fn clause(&self) -> String {
        if self.parts.is_empty() {
            return String::new();
        }
        let joined = self
            .parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(" WHERE {joined}")
    }
}

/// What the caller's ACL rules grant on a kind of object, as `AclManager::reverse_search`
/// answers it: every object, or these objects and the objects of these groups.
#[derive(Debug, Default)]
pub struct AclScope {
    pub all: bool,
    pub oids: Vec<i64>,
    pub gids: Vec<i64>,
}

impl Caller<'_> {
    fn rule_applies_to_me(&self, user: u64) -> bool {
        let id = (user & ID_MASK) as i64;
        (user & ACL_ALL != 0)
            || (user & ACL_INDIVIDUAL != 0 && id == self.session.uid)
            || (user & ACL_GROUP != 0 && self.groups.contains(&id))
    }

    /// Whether an ACL rule grants `right` on objects of `kind`, for `obj` (None: on no object
    /// in particular, which only a rule on every object of the kind grants).
    fn acl_allows(&self, kind: u64, obj: Option<&Owned>, right: u64) -> bool {
        self.rules.iter().any(|&(user, resource, rights)| {
            if rights & right == 0 || resource & kind == 0 || !self.rule_applies_to_me(user) {
                return false;
            }
            let id = (resource & ID_MASK) as i64;
            if resource & ACL_ALL != 0 {
                return true;
            }
            match obj {
                Some(o) => {
                    (resource & ACL_INDIVIDUAL != 0 && id == o.oid)
                        || (resource & ACL_GROUP != 0 && id == o.gid)
                }
                None => false,
            }
        })
    }

    /// The rules granting `right` on objects of `kind` to the caller, as ids: the same rules
    /// [`Caller::may`] applies one object at a time.
    pub fn acl_scope(&self, kind: u64, right: u64) -> AclScope {
        self.scope_of(kind, right, true)
    }

    /// [`Caller::acl_scope`]; without `wide`, only the rules naming objects or groups: none
    /// on every object (`*`), none on a cluster's.
    fn scope_of(&self, kind: u64, right: u64, wide: bool) -> AclScope {
        let mut scope = AclScope::default();
        for &(user, resource, rights) in &self.rules {
            if rights & right == 0 || resource & kind == 0 || !self.rule_applies_to_me(user) {
                continue;
            }
            if !wide && resource & (ACL_ALL | wire::acl::CLUSTER_ID) != 0 {
                continue;
            }
            let id = (resource & ID_MASK) as i64;
            if resource & ACL_ALL != 0 {
                scope.all = true;
            }
            if resource & ACL_INDIVIDUAL != 0 {
                scope.oids.push(id);
            }
            if resource & ACL_GROUP != 0 {
                scope.gids.push(id);
            }
        }
        scope
    }

    /// The objects a pool call lists the caller, as SQL over the columns `oid`, `uid`, `gid`
    /// and `perms` of the table aliased `a`, with its values: [`Caller::may`], except that its
    /// own objects are listed whatever their owner bits (`PoolSQL::usr_filter` puts `uid = me`
    /// beside the permission terms); `None` when the caller may on every object (an
    /// administrator, or an ACL rule on `*`).
    pub fn may_sql(&self, kind: u64, right: u64, a: &str) -> Option<(String, Vec<i64>)> {
        self.sql_of(kind, right, a, true)
    }

    /// [`Caller::may_sql`] under the rules naming objects or groups alone, as
    /// `VirtualNetworkPoolInfo` lists reservations (`disable_all_acl`, `disable_cluster_acl`).
    pub fn may_sql_narrow(&self, kind: u64, right: u64, a: &str) -> Option<(String, Vec<i64>)> {
        self.sql_of(kind, right, a, false)
    }

    fn sql_of(&self, kind: u64, right: u64, a: &str, wide: bool) -> Option<(String, Vec<i64>)> {
        if self.session.is_admin() {
            return None;
        }
        let scope = self.scope_of(kind, right, wide);
        if scope.all {
            return None;
        }
        let bit = right_octet_bit(right);
        let (group, other) = (bit << 3, bit);
        let mut ors = vec![format!("{a}.uid = ?")];
        let mut args = vec![self.session.uid];
        if !self.groups.is_empty() {
            ors.push(format!(
                "{} AND {a}.perms & {group} <> 0",
                in_list(&format!("{a}.gid"), self.groups.len())
            ));
            args.extend(&self.groups);
        }
        ors.push(format!("{a}.perms & {other} <> 0"));
        if !scope.oids.is_empty() {
            ors.push(in_list(&format!("{a}.oid"), scope.oids.len()));
            args.extend(&scope.oids);
        }
        if !scope.gids.is_empty() {
            ors.push(in_list(&format!("{a}.gid"), scope.gids.len()));
            args.extend(&scope.gids);
        }
        let sql = ors
            .iter()
            .map(|o| format!("({o})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        Some((sql, args))
    }

    /// Whether the caller may exercise `right` on `obj` (of ACL type `kind`).
    pub fn may(&self, kind: u64, obj: &Owned, right: u64) -> bool {
        if self.session.is_admin() {
            return true;
        }
        let by_perms = (obj.uid == self.session.uid && perm_bit(obj.perms, 0, right))
            || (self.groups.contains(&obj.gid) && perm_bit(obj.perms, 1, right))
            || perm_bit(obj.perms, 2, right);
        by_perms || self.acl_allows(kind, Some(obj), right)
    }

    /// [`Caller::may`] for an object known only by its id and group (users, groups): only ACL
    /// rules can grant it to a non-administrator.
    pub fn may_on(&self, kind: u64, oid: i64, gid: i64, right: u64) -> bool {
        let obj = Owned {
            oid,
            uid: -1,
            gid,
            perms: 0,
        };
        self.session.is_admin() || self.acl_allows(kind, Some(&obj), right)
    }

    /// Creating an object of `kind`, as `add_create_auth` asks it: the new object would be
    /// in the caller's group, so a rule on that group's objects grants it (`#5 USER/@100
    /// CREATE`, a group administrator's), as does a rule on every object of the kind.
    pub fn may_create(&self, kind: u64) -> bool {
        let new = Owned {
            oid: -1,
            uid: self.session.uid,
            gid: self.session.gid,
            perms: 0,
        };
        self.session.is_admin() || self.acl_allows(kind, Some(&new), CREATE)
    }
}

/// Loads the caller's groups and the ACL rules: from memory while no applied entry changed
/// them (`Authenticator::acl_rules`), and a rule on a cluster's objects that concerns the
/// caller as the rules on those objects, from memory while no applied entry changed what
/// clusters hold (`Authenticator::cluster_rules`).
pub async fn caller<'a>(ctx: &Ctx, s: &'a Session) -> Result<Caller<'a>, Failure> {
    // A rule for another zone (`#1`) grants nothing here, as AclManager matches the zone.
    let here = (wire::acl::INDIVIDUAL_ID | ctx.config.zone_id as u64) as i64;
    let now = ctx.auth.changes().get(sqlstore::Watched::Acl);
    let all = match ctx.auth.acl_rules.get(now) {
        Some(all) => all,
        None => {
            let all = std::sync::Arc::new(ctx.read(move |c| zone_rules(c, here)).await?);
            ctx.auth.acl_rules.put(now, all.clone());
            all
        }
    };
    let (uid, groups) = (s.uid, &s.groups);
    let mine = |user: u64| {
        let id = (user & ID_MASK) as i64;
        user & ACL_ALL != 0
            || (user & ACL_INDIVIDUAL != 0 && id == uid)
            || (user & ACL_GROUP != 0 && groups.contains(&id))
    };
    let by_cluster: Vec<(u64, u64, u64)> = all
        .iter()
        .copied()
        .filter(|&(user, resource, _)| resource & wire::acl::CLUSTER_ID != 0 && mine(user))
        .collect();
    let mut rules = all.to_vec();
    // Group users' default rule (`@1 HOST/%0 MANAGE`) is one: kept, as what clusters hold
    // changes seldom (hosts added or moved), unlike the hosts themselves.
    let members = ctx.auth.changes().get(sqlstore::Watched::ClusterMembers);
    let mut missing = Vec::new();
    for rule in by_cluster {
        match ctx.auth.cluster_rules.get(members, &rule) {
            Some(expanded) => rules.extend(expanded.iter().copied()),
            None => missing.push(rule),
        }
    }
    if !missing.is_empty() {
        let expanded = ctx
            .read(move |c| {
                missing
                    .into_iter()
                    .map(|(user, resource, rights)| {
                        let objects = cluster_rule_as_objects(c, user, resource, rights)?;
                        Ok(((user, resource, rights), objects))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        for (rule, objects) in expanded {
            rules.extend(objects.iter().copied());
            let bytes = crate::auth::cluster_rule_bytes(&objects);
            ctx.auth
                .cluster_rules
                .put(members, rule, std::sync::Arc::new(objects), bytes);
        }
    }
    // The session's groups, not the user's: a login token scoped to one group acts in it
    // alone.
    Ok(Caller {
        session: s,
        groups: s.groups.clone(),
        rules,
    })
}

/// Every ACL rule of zone `here` or of all zones: (user, resource, rights).
fn zone_rules(c: &sqlstore::Conn, here: i64) -> Result<Vec<(u64, u64, u64)>, sqlstore::SqlError> {
    let mut st =
        c.prepare("SELECT user, resource, rights FROM acl WHERE zone = ?1 OR zone = ?2")?;
    let rules = st
        .query_map([wire::acl::ALL_ID as i64, here], |r| {
            Ok((
                r.get::<i64>(0)? as u64,
                r.get::<i64>(1)? as u64,
                r.get::<i64>(2)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rules)
}

/// A rule on the hosts, networks or datastores of a cluster (`HOST/%100`), as rules on each
/// of them by id: what the cluster holds when the call is made, which is when OpenNebula's
/// `AclManager` looks at an object's clusters too.
fn cluster_rule_as_objects(
    c: &sqlstore::Conn,
    user: u64,
    resource: u64,
    rights: u64,
) -> Result<Vec<(u64, u64, u64)>, sqlstore::SqlError> {
    let cid = (resource & ID_MASK) as i64;
    let mut out = Vec::new();
    for (kind, sql) in [
        (
            wire::acl::HOST,
            "SELECT oid FROM host_pool WHERE cluster_id = ?1",
        ),
        (
            wire::acl::NET,
            "SELECT oid FROM cluster_network_relation WHERE cid = ?1",
        ),
        (
            wire::acl::DATASTORE,
            "SELECT oid FROM cluster_datastore_relation WHERE cid = ?1",
        ),
    ] {
        if resource & kind == 0 {
            continue;
        }
        let ids: Vec<i64> = c
            .prepare_cached(sql)?
            .query_map([cid], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        // Still marked as a cluster's: reservations in `one.vnpool.info` do not count them.
        out.extend(ids.into_iter().map(|oid| {
            let resource = kind | ACL_INDIVIDUAL | wire::acl::CLUSTER_ID | oid as u64;
            (user, resource, rights)
        }));
    }
    Ok(out)
}

/// `one.<o>.chmod`'s nine values (owner, group, other; use, manage, admin), -1 keeping a bit.
pub struct ChmodArgs([i32; 9]);

impl ChmodArgs {
    pub fn read(p: &Params<'_>) -> Result<Self, Failure> {
        let mut v = [-1; 9];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = p.int(1 + i)?;
        }
        Ok(ChmodArgs(v))
    }

    /// The bits of `perms` the call asks to change, as `RequestManagerChmod::chmod` weighs
    /// them before authorizing: a value that is not -1 and not the bit's (an invalid one too).
    pub fn changing(&self, perms: i64) -> i64 {
        let mut mask = 0;
        for (i, v) in self.0.iter().enumerate() {
            let bit = 1 << (8 - i);
            let now = i32::from(perms & bit != 0);
            if *v != -1 && *v != now {
                mask |= bit;
            }
        }
        mask
    }

    /// `PoolObjectSQL::set_permissions`: the new permissions, or its refusal.
    pub fn apply(&self, perms: i64) -> Result<i64, Failure> {
        let mut out = perms;
        for (i, v) in self.0.iter().enumerate() {
            let bit = 1 << (8 - i);
            match v {
                -1 => {}
                0 => out &= !bit,
                1 => out |= bit,
                _ => {
                    return Err(fail(
                        code::INTERNAL,
                        "New permission values must be -1, 0 or 1",
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// A pool call's filter flag and oid range (`i filter, i start, i end`), defaults -2, -1, -1.
#[derive(Debug, Clone, Copy)]
pub struct PoolFilter {
    pub flag: i64,
    pub start: i64,
    pub end: i64,
}

impl PoolFilter {
    pub fn parse(p: &Params<'_>) -> Result<PoolFilter, Failure> {
        let get = |i: usize, d: i64| -> Result<i64, Failure> {
            match p.0.get(i) {
                Some(_) => Ok(p.int(i)? as i64),
                None => Ok(d),
            }
        };
        let f = PoolFilter {
            flag: get(0, -2)?,
            start: get(1, -1)?,
            end: get(2, -1)?,
        };
        if f.flag < -4 {
            return Err(fail(code::XML_RPC_API, "Incorrect filter_flag"));
        }
        Ok(f)
    }

    /// The rows of a pool call, as SQL over the table aliased `a` (columns `oid`, `uid`, `gid`,
    /// `perms`): the objects the flag selects and the caller may USE, then the oid range
    /// (`oid >= start`, `oid <= end`, -1 open), or with `end < -1` a page of `-end` rows from
    /// row `start` (`LIMIT ? OFFSET ?`, values last). Read in `oid` order, these are exactly
    /// the rows OpenNebula's `where_filter` selects.
    pub fn sql(&self, c: &Caller<'_>, kind: u64, a: &str, w: &mut Where) -> Option<(i64, i64)> {
        self.sql_with(c, a, w, c.may_sql(kind, USE, a))
    }

    /// [`PoolFilter::sql`] with the caller's ACL condition given (`None`: every object).
    pub fn sql_with(
        &self,
        c: &Caller<'_>,
        a: &str,
        w: &mut Where,
        acl: Option<(String, Vec<i64>)>,
    ) -> Option<(i64, i64)> {
        let me = c.session;
        match self.flag {
            -4 => w.and(format!("{a}.gid = ?"), [me.gid]),
            -3 => w.and(format!("{a}.uid = ?"), [me.uid]),
            -2 => {}
            -1 if c.groups.is_empty() => w.and(format!("{a}.uid = ?"), [me.uid]),
            -1 => w.and(
                format!(
                    "{a}.uid = ? OR {}",
                    in_list(&format!("{a}.gid"), c.groups.len())
                ),
                std::iter::once(me.uid).chain(c.groups.iter().copied()),
            ),
            uid => w.and(format!("{a}.uid = ?"), [uid]),
        }
        if let Some((sql, args)) = acl {
            w.and(sql, args);
        }
        if self.end < -1 {
            return Some((-self.end, self.start.max(0)));
        }
        // `PoolSQL::oid_filter`: without a start there is no range at all (an end alone is
        // ignored).
        if self.start != -1 {
            w.and(format!("{a}.oid >= ?"), [self.start]);
            if self.end != -1 {
                w.and(format!("{a}.oid <= ?"), [self.end]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl PoolFilter {
        /// The reference the SQL is checked against: keeps the objects the flag selects and the caller may see, then applies the range.
        pub fn apply<T>(&self, c: &Caller<'_>, kind: u64, items: Vec<(Owned, T)>) -> Vec<T> {
            let me = c.session;
            let selected = items.into_iter().filter(|(o, _)| {
                let owner_ok = match self.flag {
                    -4 => o.gid == me.gid,
                    -3 => o.uid == me.uid,
                    -2 => true,
                    -1 => o.uid == me.uid || c.groups.contains(&o.gid),
                    uid => o.uid == uid,
                };
                owner_ok && (o.uid == me.uid || c.may(kind, o, USE))
            });
            let mut ranged: Vec<T> = Vec::new();
            if self.end < -1 {
                let (offset, size) = (self.start.max(0) as usize, (-self.end) as usize);
                ranged.extend(selected.skip(offset).take(size).map(|(_, t)| t));
            } else {
                ranged.extend(
                    selected
                        .filter(|(o, _)| {
                            self.start == -1
                                || (o.oid >= self.start && (self.end == -1 || o.oid <= self.end))
                        })
                        .map(|(_, t)| t),
                );
            }
            ranged
        }
    }

    #[test]
    fn the_default_umask_gives_owner_use_and_manage() {
        assert_eq!(
            crate::api::xml::build(|x| crate::api::xml::permissions(x, DEFAULT_PERMS)),
            "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>"
        );
        assert!(perm_bit(DEFAULT_PERMS, 0, USE) && perm_bit(DEFAULT_PERMS, 0, MANAGE));
        assert!(!perm_bit(DEFAULT_PERMS, 0, ADMIN) && !perm_bit(DEFAULT_PERMS, 1, USE));
    }

    /// A small deterministic generator, so a failure replays.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }

        fn pick(&mut self, from: &[i64]) -> i64 {
            from[self.below(from.len() as u64) as usize]
        }
    }

    #[test]
    fn pool_filters_in_sql_select_what_the_per_object_check_selects() {
        let c = sqlstore::rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (oid INTEGER PRIMARY KEY, uid INTEGER, gid INTEGER, perms INTEGER)",
        )
        .unwrap();
        let mut rng = Lcg(7);
        let mut objects = Vec::new();
        for oid in 0..80i64 {
            if rng.below(5) == 0 {
                continue; // gaps, as deletes leave them
            }
            let o = Owned {
                oid,
                uid: rng.pick(&[0, 1, 2, 3, 4]),
                gid: rng.pick(&[0, 1, 100, 101]),
                perms: rng.below(512) as i64,
            };
            c.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                [o.oid, o.uid, o.gid, o.perms],
            )
            .unwrap();
            objects.push(o);
        }
        let kinds = [TEMPLATE, VM];
        // Cases whose answer is neither empty nor everything: the ones that test something.
        let mut partial = 0;
        for _ in 0..3000 {
            let (uid, gid) = (rng.pick(&[0, 2, 3, 4]), rng.pick(&[0, 1, 1, 100]));
            let mut groups = vec![gid];
            for g in [1, 100, 101] {
                if g != gid && rng.below(3) == 0 {
                    groups.push(g);
                }
            }
            if rng.below(10) == 0 {
                groups.clear();
            }
            let session = Session {
                uid,
                gid,
                name: String::new(),
                groups: groups.clone(),
                umask: None,
            };
            let rules = (0..rng.below(4))
                .map(|_| {
                    let user = match rng.below(3) {
                        0 => ACL_ALL,
                        1 => ACL_INDIVIDUAL | rng.pick(&[2, 3]) as u64,
                        _ => ACL_GROUP | rng.pick(&[1, 100]) as u64,
                    };
                    let resource = kinds[rng.below(2) as usize]
                        | match rng.below(4) {
                            0 => ACL_ALL,
                            1 => ACL_INDIVIDUAL | rng.below(80),
                            2 => ACL_GROUP | rng.pick(&[0, 1, 100, 101]) as u64,
                            _ => wire::acl::CLUSTER_ID, // a cluster: never matches here
                        };
                    let rights = [USE, MANAGE, USE | MANAGE, CREATE][rng.below(4) as usize];
                    (user, resource, rights)
                })
                .collect();
            let caller = Caller {
                session: &session,
                groups,
                rules,
            };
            let filter = PoolFilter {
                flag: rng.pick(&[-4, -3, -2, -1, 0, 2, 3]),
                start: rng.pick(&[-1, -1, 0, 3, 20, 79]),
                end: rng.pick(&[-1, -1, 10, 50, -2, -7, -100]),
            };
            let expected: Vec<i64> = filter.apply(
                &caller,
                TEMPLATE,
                objects.iter().map(|o| (*o, o.oid)).collect(),
            );
            if !expected.is_empty() && expected.len() < objects.len() {
                partial += 1;
            }
            let mut cond = Where::default();
            let page = filter.sql(&caller, TEMPLATE, "a", &mut cond);
            let mut sql = format!("SELECT a.oid FROM t a{} ORDER BY a.oid", cond.clause());
            let mut args = cond.args.clone();
            if let Some((size, offset)) = page {
                sql.push_str(" LIMIT ? OFFSET ?");
                args.extend([size, offset]);
            }
            let mut st = c.prepare(&sql).unwrap();
            let got: Vec<i64> = st
                .query_map(sqlstore::rusqlite::params_from_iter(args), |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                got, expected,
                "{filter:?} for {session:?} in {:?} with {:?}: {sql}",
                caller.groups, caller.rules
            );
        }
        assert!(partial > 1000, "only {partial} informative cases");
    }
}
