//! Hooks (`hook_pool`) and their executions (`hook_log`), as OpenNebula keeps them, with one
//! addition that makes a hook run exactly once per event across a leader change: an event is a
//! `hook_log` row with no `rc` yet (pending), written by the same replicated transaction as
//! the change that caused it. The leader runs pending executions and records each result by
//! filling its row; a new leader finds the rows its predecessor left pending and runs them.
//!
//! A hook matches events by its key, OpenNebula's matching key: the `CALL` of an API hook, or
//! `<RESOURCE>/<STATE>/<LCM_STATE>` of a state hook (`VM/ACTIVE/RUNNING`, `HOST/ERROR/`).
//! Execution ids count from 0 per hook (`last_exeid`), assigned when the event is written.

use crate::sql::{Conn, Row};

use super::{has_owner, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "hook_pool";

/// `Hook::HookType`.
pub const STATE: i64 = 1;
pub const API: i64 = 2;

/// Pending executions a hook may have: events past it are not written (a hook slower than its
/// events would otherwise grow the database without bound). The runner reports a hook there.
pub const MAX_PENDING: i64 = 10_000;

/// Hooks belong to oneadmin, who may only USE them through their bits (`owner_u = 1`):
/// administrators pass anyway, others need ACL rules on HOOK.
pub const PERMS: i64 = 0o400;

#[derive(Debug, Clone, PartialEq)]
pub struct HookRow {
    pub head: Head,
    pub lock: Lock,
    pub kind: i64,
    pub template: String,
}

has_owner!(lockable HookRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<HookRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(HookRow {
        head,
        lock,
        kind: r.get(c)?,
        template: r.get(c + 1)?,
    })
}

pub static ROWS: Rows<HookRow> = Rows {
    select: owned_select!(lockable "hook_pool", "k", "k.type, k.template"),
    alias: "k",
    read,
};

/// A new hook owned by oneadmin; the oid comes from the counter ([`super::next_oid`]).
pub fn insert(name: &str, kind: i64, key: &str, template: String) -> SqlStmt {
    super::insert_next(
        TABLE,
        "name, uid, gid, perms, type, hook_key, template",
        "?1, 0, 0, ?2, ?3, ?4, ?5",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(PERMS),
            SqlValue::Int(kind),
            SqlValue::Text(key.to_string()),
            SqlValue::Text(template),
        ],
    )
}

/// The hook called `name`, if any (names are unique among hooks).
pub fn id_of(c: &Conn, name: &str) -> crate::sql::Result<Option<i64>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT oid FROM hook_pool WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// A new template and key, if the template is still `old`.
pub fn set_template(oid: i64, key: &str, new: String, old: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE hook_pool SET template = ?2, hook_key = ?3 WHERE oid = ?1 AND template = ?4",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(new),
            SqlValue::Text(key.to_string()),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// Deletes hook `oid` and its executions, done and pending.
pub fn delete(oid: i64) -> Vec<SqlStmt> {
    vec![
        super::delete(TABLE, oid),
        SqlStmt::new(
            "DELETE FROM hook_log WHERE hkid = ?1",
            vec![SqlValue::Int(oid)],
        ),
    ]
}

/// Moves the execution counter of every hook of `kind` keyed `key` past the executions just
/// written for it.
fn advance_counters(kind: i64, key: &str) -> SqlStmt {
    SqlStmt::new(
        "UPDATE hook_pool SET last_exeid = COALESCE(
            (SELECT MAX(l.exeid) FROM hook_log l WHERE l.hkid = hook_pool.oid), last_exeid)
         WHERE type = ?1 AND hook_key = ?2",
        vec![SqlValue::Int(kind), SqlValue::Text(key.to_string())],
    )
}

/// The pending executions an API call starts: one per API hook on `call`, carrying `message`
/// (the `HOOK_MESSAGE`), at `now`.
pub fn api_events(call: &str, message: &str, now: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body)
             SELECT h.oid, h.last_exeid + 1, ?1, NULL, ?3 FROM hook_pool h
             WHERE h.type = ?4 AND h.hook_key = ?2
               AND (SELECT COUNT(*) FROM hook_log p WHERE p.hkid = h.oid AND p.rc IS NULL) < ?5",
            vec![
                SqlValue::Int(now),
                SqlValue::Text(call.to_string()),
                SqlValue::Text(message.to_string()),
                SqlValue::Int(API),
                SqlValue::Int(MAX_PENDING),
            ],
        ),
        advance_counters(API, call),
    ]
}

/// What a state change is about, for [`state_events`].
pub struct StateChange<'a> {
    /// `VM`, `HOST`, `IMAGE` or `NET`.
    pub resource: &'a str,
    /// The table the objects are in, aliased `o` in `which`.
    pub table: &'a str,
    /// The names of the state (and LCM state, `""` but for VMs) the objects move to.
    pub state: &'a str,
    pub lcm_state: &'a str,
    /// SQL over `o` choosing the objects that move, with `?6`... for `params`.
    pub which: &'a str,
    pub params: Vec<SqlValue>,
    pub now: i64,
    /// The object's XML as the change leaves it, carried in the message as OpenNebula's
    /// `format_message` does (empty: read when the hook runs).
    pub object: &'a str,
}

/// The pending executions a state change starts: one per state hook on the new state and per
/// object `which` chooses, in object id order. Placed in the transaction where `which` sees
/// the objects that move (before the change when it chooses them by their old state).
pub fn state_events(c: StateChange<'_>) -> Vec<SqlStmt> {
    let key = format!("{}/{}/{}", c.resource, c.state, c.lcm_state);
    let lcm = if c.resource == "VM" {
        format!("<LCM_STATE>{}</LCM_STATE>", c.lcm_state)
    } else {
        String::new()
    };
    let prefix = format!(
        "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>{}</HOOK_OBJECT>\
         <STATE>{}</STATE>{lcm}<RESOURCE_ID>",
        c.resource, c.state
    );
    let mut params = vec![
        SqlValue::Int(c.now),
        SqlValue::Text(key.clone()),
        SqlValue::Text(prefix),
        SqlValue::Text(format!("</RESOURCE_ID>{}</HOOK_MESSAGE>", c.object)),
        SqlValue::Int(STATE),
    ];
    params.extend(c.params);
    vec![
        SqlStmt::new(
            &format!(
                "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body)
                 SELECT h.oid, h.last_exeid + ROW_NUMBER() OVER (PARTITION BY h.oid ORDER BY o.oid),
                        ?1, NULL, CONCAT(?3, o.oid, ?4)
                 FROM hook_pool h JOIN {} o ON {}
                 WHERE h.type = ?5 AND h.hook_key = ?2
                   AND (SELECT COUNT(*) FROM hook_log p WHERE p.hkid = h.oid AND p.rc IS NULL) < {MAX_PENDING}",
                c.table, c.which
            ),
            params,
        ),
        advance_counters(STATE, &key),
    ]
}

/// An execution waiting to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub hook: i64,
    pub exeid: i64,
    /// The event's `HOOK_MESSAGE`.
    pub message: String,
}

/// Up to `limit` pending executions, oldest first.
pub fn pending(c: &Conn, limit: usize) -> crate::sql::Result<Vec<Pending>> {
    c.prepare_cached(
        "SELECT hkid, exeid, body FROM hook_log WHERE rc IS NULL
         ORDER BY timestamp, hkid, exeid LIMIT ?1",
    )?
    .query_map([limit as i64], |r| {
        Ok(Pending {
            hook: r.get(0)?,
            exeid: r.get(1)?,
            message: r.get(2)?,
        })
    })?
    .collect()
}

/// Records the result of pending execution (`hook`, `exeid`) (it must still be pending: a
/// second recording of one event matches nothing), keeping the last `retention` records of the
/// hook.
pub fn record(
    hook: i64,
    exeid: i64,
    now: i64,
    rc: i64,
    body: &str,
    retention: i64,
) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "UPDATE hook_log SET timestamp = ?3, rc = ?4, body = ?5
             WHERE hkid = ?1 AND exeid = ?2 AND rc IS NULL",
            vec![
                SqlValue::Int(hook),
                SqlValue::Int(exeid),
                SqlValue::Int(now),
                SqlValue::Int(rc),
                SqlValue::Text(body.to_string()),
            ],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM hook_log WHERE hkid = ?1 AND exeid <= ?2 AND rc IS NOT NULL",
            vec![SqlValue::Int(hook), SqlValue::Int(exeid - retention)],
        ),
    ]
}

/// Drops a pending execution that cannot run (OpenNebula logs nothing for it).
pub fn drop_pending(hook: i64, exeid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM hook_log WHERE hkid = ?1 AND exeid = ?2 AND rc IS NULL",
        vec![SqlValue::Int(hook), SqlValue::Int(exeid)],
    )
}

/// A new pending execution of hook `hook` carrying `message` (a retry).
pub fn retry(hook: i64, message: &str, now: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body)
             SELECT oid, last_exeid + 1, ?2, NULL, ?3 FROM hook_pool WHERE oid = ?1",
            vec![
                SqlValue::Int(hook),
                SqlValue::Int(now),
                SqlValue::Text(message.to_string()),
            ],
        )
        .must_match(),
        SqlStmt::new(
            "UPDATE hook_pool SET last_exeid = last_exeid + 1 WHERE oid = ?1",
            vec![SqlValue::Int(hook)],
        ),
    ]
}

/// The body of execution record (`hook`, `exeid`), or of the hook's first record when `exeid`
/// is -1: only recorded executions, never pending ones.
pub fn record_body(c: &Conn, hook: i64, exeid: i64) -> crate::sql::Result<Option<String>> {
    use crate::sql::Optional;
    c.prepare_cached(
        "SELECT body FROM hook_log WHERE hkid = ?1 AND (?2 = -1 OR exeid = ?2)
         AND rc IS NOT NULL ORDER BY exeid LIMIT 1",
    )?
    .query_row([hook, exeid], |r| r.get(0))
    .optional()
}

/// `one.hooklog.info`'s filters: -1 (or below) leaves one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFilter {
    pub min_ts: i64,
    pub max_ts: i64,
    pub hook: i64,
    /// -1 failures only, 1 successes only, anything else both.
    pub rc: i64,
}

/// The recorded executions `f` chooses, latest hook first (OpenNebula's order), each hook's in
/// execution order.
pub fn log(c: &Conn, f: LogFilter) -> crate::sql::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT body FROM hook_log WHERE rc IS NOT NULL
           AND (?1 < 0 OR timestamp > ?1) AND (?2 < 0 OR timestamp < ?2)
           AND (?3 < 0 OR hkid = ?3)
           AND (?4 <> -1 OR rc <> 0) AND (?4 <> 1 OR rc = 0)
         ORDER BY hkid DESC, exeid",
    )?
    .query_map([f.min_ts, f.max_ts, f.hook, f.rc], |r| r.get(0))?
    .collect()
}

/// The hooks whose pending executions reached [`MAX_PENDING`].
pub fn saturated(c: &Conn) -> crate::sql::Result<Vec<i64>> {
    c.prepare_cached(
        "SELECT hkid FROM hook_log WHERE rc IS NULL GROUP BY hkid HAVING COUNT(*) >= ?1",
    )?
    .query_map([MAX_PENDING], |r| r.get(0))?
    .collect()
}

/// Every call an API hook is set on.
pub fn api_hooked_calls(c: &Conn) -> crate::sql::Result<Vec<String>> {
    c.prepare_cached("SELECT DISTINCT hook_key FROM hook_pool WHERE type = ?1")?
        .query_map([API], |r| r.get(0))?
        .collect()
}

/// Whether an API hook is set on `call`.
pub fn api_hooked(c: &Conn, call: &str) -> crate::sql::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM hook_pool WHERE type = ?1 AND hook_key = ?2)")?
        .query_row((API, call), |r| r.get(0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;

    fn on_both_backends(test: impl Fn(&Conn)) {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            test(&c);
        }
    }

    fn count(c: &Conn, sql: &str) -> i64 {
        c.query_row(sql, (), |r| r.get(0)).unwrap()
    }

    fn allocate(c: &Conn, name: &str, kind: i64, key: &str) {
        crate::txn::run_all(
            c,
            &[
                insert(name, kind, key, String::new()),
                super::super::next_oid(TABLE),
            ],
        )
        .unwrap();
    }

    #[test]
    fn events_are_numbered_per_hook_recorded_once_and_capped() {
        on_both_backends(|c| {
            allocate(c, "a", API, "one.user.allocate");
            allocate(c, "b", STATE, "VM/ACTIVE/RUNNING");
            for _ in 0..3 {
                crate::txn::run_all(c, &api_events("one.user.allocate", "<m/>", 5)).unwrap();
            }
            // Two VMs reaching RUNNING in one statement: one execution each, numbered in turn.
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template)
                 VALUES (1, 'a', 0, 0, 384, 3, 3, 3, 3, 0, 1, 64, ''),
                        (2, 'b', 0, 0, 384, 3, 3, 3, 3, 0, 1, 64, '')",
            )
            .unwrap();
            let vms = count(c, "SELECT COUNT(*) FROM vm_pool");
            assert_eq!(vms, 2);
            crate::txn::run_all(
                c,
                &state_events(StateChange {
                    resource: "VM",
                    table: "vm_pool",
                    state: "ACTIVE",
                    lcm_state: "RUNNING",
                    which: "o.state = ?6",
                    params: vec![SqlValue::Int(3)],
                    now: 5,
                    object: "",
                }),
            )
            .unwrap();
            let waiting = pending(c, 100).unwrap();
            let ids = |hook: i64| -> Vec<i64> {
                waiting
                    .iter()
                    .filter(|p| p.hook == hook)
                    .map(|p| p.exeid)
                    .collect()
            };
            assert_eq!(ids(0), vec![0, 1, 2]);
            assert_eq!(ids(1), (0..vms).collect::<Vec<_>>());
            // Recorded once: a second recording of the same execution matches nothing.
            crate::txn::run_all(c, &record(0, 1, 9, 0, "<r/>", 20)).unwrap();
            assert!(
                crate::txn::run_all(c, &record(0, 1, 9, 0, "<r/>", 20)).is_err()
                    || count(
                        c,
                        "SELECT COUNT(*) FROM hook_log WHERE hkid = 0 AND rc IS NOT NULL"
                    ) == 1
            );
            assert_eq!(
                log(
                    c,
                    LogFilter {
                        min_ts: -1,
                        max_ts: -1,
                        hook: 0,
                        rc: 0
                    }
                )
                .unwrap(),
                vec!["<r/>".to_string()]
            );
            // A retry continues the numbering.
            crate::txn::run_all(c, &retry(0, "<retry/>", 6)).unwrap();
            assert_eq!(
                count(c, "SELECT MAX(exeid) FROM hook_log WHERE hkid = 0"),
                3
            );
            // Past MAX_PENDING waiting executions, new events are not written.
            c.execute_batch(&format!(
                "UPDATE hook_pool SET last_exeid = {m} WHERE oid = 0",
                m = MAX_PENDING + 10
            ))
            .unwrap();
            for i in 0..MAX_PENDING {
                c.execute_batch(&format!(
                    "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body)
                     VALUES (0, {}, 0, NULL, '')",
                    100 + i
                ))
                .unwrap();
            }
            let before = count(c, "SELECT COUNT(*) FROM hook_log WHERE hkid = 0");
            crate::txn::run_all(c, &api_events("one.user.allocate", "<m/>", 7)).unwrap();
            assert_eq!(
                count(c, "SELECT COUNT(*) FROM hook_log WHERE hkid = 0"),
                before
            );
            assert_eq!(saturated(c).unwrap(), vec![0]);
        });
    }
}
