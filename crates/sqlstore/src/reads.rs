//! Reads the API serves from the local database (possibly stale on a follower, as in OpenNebula).

use crate::params;
use crate::sql::{Conn, Optional, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub oid: i64,
    pub name: String,
    pub password: String,
    pub auth_driver: String,
    pub gid: i64,
    pub gname: String,
    pub enabled: bool,
    pub template: String,
    /// Every group the user belongs to, the primary one included, ascending.
    pub groups: Vec<i64>,
    /// Its login tokens (`one.user.login`), expired ones included until a new one is set, as
    /// OpenNebula lists them.
    pub tokens: Vec<LoginToken>,
}

/// A login token: the secret a session may give instead of the password, until `expiration`
/// (seconds since the epoch; -1: never), acting as group `egid` alone (-1: every group).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginToken {
    pub token: String,
    pub expiration: i64,
    pub egid: i64,
}

impl LoginToken {
    /// Whether it still opens a session at `now` (OpenNebula's `SessionToken::is_valid`).
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.expiration == -1 || now < self.expiration
    }
}

const USER_COLS: &str =
    "u.oid, u.name, u.password, u.auth_driver, u.gid, COALESCE(g.name, ''), u.enabled, u.template
     FROM user_pool u LEFT JOIN group_pool g ON g.oid = u.gid";

fn user_row(r: &Row) -> crate::sql::Result<UserRow> {
    Ok(UserRow {
        oid: r.get(0)?,
        name: r.get(1)?,
        password: r.get(2)?,
        auth_driver: r.get(3)?,
        gid: r.get(4)?,
        gname: r.get(5)?,
        enabled: r.get::<i64>(6)? != 0,
        template: r.get(7)?,
        groups: Vec::new(),
        tokens: Vec::new(),
    })
}

/// Completes a user row with its groups and login tokens.
fn with_groups(conn: &Conn, mut u: UserRow) -> crate::sql::Result<UserRow> {
    let mut st = conn.prepare_cached("SELECT gid FROM user_groups WHERE uid = ?1 ORDER BY gid")?;
    u.groups = st
        .query_map(params![u.oid], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare_cached(
        "SELECT token, expiration, egid FROM user_login_tokens WHERE uid = ?1 ORDER BY token",
    )?;
    u.tokens = st
        .query_map(params![u.oid], |r| {
            Ok(LoginToken {
                token: r.get(0)?,
                expiration: r.get(1)?,
                egid: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(u)
}

pub fn load_user(conn: &Conn, oid: i64) -> crate::sql::Result<Option<UserRow>> {
    conn.query_row(
        &format!("SELECT {USER_COLS} WHERE u.oid = ?1"),
        params![oid],
        user_row,
    )
    .optional()?
    .map(|u| with_groups(conn, u))
    .transpose()
}

pub fn find_user_by_name(conn: &Conn, name: &str) -> crate::sql::Result<Option<UserRow>> {
    conn.query_row(
        &format!("SELECT {USER_COLS} WHERE u.name = ?1"),
        params![name],
        user_row,
    )
    .optional()?
    .map(|u| with_groups(conn, u))
    .transpose()
}

/// Which users a pool answer shows: every one, or those with these ids and those whose
/// primary group is one of these (`PoolSQL::usr_filter` with the caller's ACL reach).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UserReach {
    #[default]
    All,
    Some {
        oids: Vec<i64>,
        gids: Vec<i64>,
    },
}

/// The users `reach` covers, in oid order (newest first if `descending`), handed to `each` one at a time: a pool answer is
/// printed as the cursor moves and never holds every row.
pub fn for_each_user(
    conn: &Conn,
    reach: &UserReach,
    descending: bool,
    mut each: impl FnMut(&UserRow),
) -> crate::sql::Result<()> {
    let order = if descending { " DESC" } else { "" };
    let (sql, args) = match reach {
        UserReach::All => (
            format!("SELECT {USER_COLS} ORDER BY u.oid{order}"),
            Vec::new(),
        ),
        UserReach::Some { oids, gids } => {
            let list = |col: &str, n: usize| {
                (n > 0).then(|| format!("{col} IN ({})", vec!["?"; n].join(", ")))
            };
            let ors: Vec<String> = [list("u.oid", oids.len()), list("u.gid", gids.len())]
                .into_iter()
                .flatten()
                .collect();
            let cond = if ors.is_empty() {
                "0 = 1".to_string()
            } else {
                ors.join(" OR ")
            };
            let args: Vec<i64> = oids.iter().chain(gids).copied().collect();
            (
                format!("SELECT {USER_COLS} WHERE {cond} ORDER BY u.oid{order}"),
                args,
            )
        }
    };
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(crate::sql::params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        each(&with_groups(conn, user_row(r)?)?);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneServerRow {
    pub id: i64,
    pub name: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneRow {
    pub oid: i64,
    pub name: String,
    pub state: i64,
    pub endpoint: String,
    /// The template `one.zone.update` wrote, ENDPOINT included; empty until then.
    pub template: String,
    pub servers: Vec<ZoneServerRow>,
}

pub fn load_zone(conn: &Conn, oid: i64) -> crate::sql::Result<Option<ZoneRow>> {
    let zone = conn
        .query_row(
            "SELECT oid, name, state, endpoint, template FROM zone_pool WHERE oid = ?1",
            params![oid],
            |r| {
                Ok(ZoneRow {
                    oid: r.get(0)?,
                    name: r.get(1)?,
                    state: r.get(2)?,
                    endpoint: r.get(3)?,
                    template: r.get(4)?,
                    servers: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut zone) = zone else {
        return Ok(None);
    };
    let mut st = conn.prepare(
        "SELECT server_id, name, endpoint FROM zone_server WHERE zone_id = ?1 ORDER BY server_id",
    )?;
    let servers = st.query_map(params![oid], |r| {
        Ok(ZoneServerRow {
            id: r.get(0)?,
            name: r.get(1)?,
            endpoint: r.get(2)?,
        })
    })?;
    zone.servers = servers.collect::<crate::sql::Result<_>>()?;
    Ok(Some(zone))
}

pub fn load_zones(conn: &Conn) -> crate::sql::Result<Vec<ZoneRow>> {
    let mut st = conn.prepare("SELECT oid FROM zone_pool ORDER BY oid")?;
    let ids: Vec<i64> = st
        .query_map((), |r| r.get(0))?
        .collect::<crate::sql::Result<_>>()?;
    let mut zones = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(z) = load_zone(conn, id)? {
            zones.push(z);
        }
    }
    Ok(zones)
}
