//! Generations of the state a server keeps in memory in front of the database: the users and
//! their groups and login tokens (authentication), the ACL rules (authorization), the zone
//! and API hooks a write checks first, the quotas of users and groups (their limits and
//! what their usage is counted from), and what a VM pool answer shows (its VMs, their
//! placements and monitoring records, their owners' and groups' names). Whoever applies transactions holds
//! [`Changes::applying`] across their commit; a cache remembers the generation it read under
//! and trusts its copy only while that generation is still current and settled.
//!
//! A statement moves a generation when it writes to one of the tables behind it, as its SQL text
//! names the target (`INSERT [OR x] INTO t`, `UPDATE t`, `DELETE FROM t`, `REPLACE INTO t`); a
//! statement of another form that names such a table moves it too, but a `SELECT` (a guard that
//! must match a row) writes nothing. A table may be behind several generations. The state has no
//! triggers or cascades, so a statement changes only its target. Two inserts are known not to
//! change any row a cache can hold, and move nothing: a new user
//! ([`crate::objects::user::insert`]), whose oid and name no remembered user has (a deleted one's
//! remove moved the generation), and that new user's group memberships
//! ([`crate::objects::user::NEW_USER_GROUP`]). Otherwise `one.user.allocate` under load would empty
//! the authentication cache on every call.
//!
//! Ordering: a generation is unsettled from before the commit until after it, and moves when
//! it settles again. A reader takes the generation *before* it reads the database, and a cache
//! neither keeps nor hands out a copy under an unsettled one ([`Changes::settled`]). So a copy
//! read before a commit carries a generation that ended before the commit became visible: no
//! read that saw the commit (on any connection, by any client) can be followed by a use of
//! that copy. Moving only after the commit would leave a window where a follower already shows
//! a user's new groups to one call and still authorizes the next with the old ones. The move
//! happens before the apply returns, so before the write is acknowledged anywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::vm_touches::{touched_vm, TouchLog};
use crate::SqlTxn;

/// What a generation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// `user_pool`, `user_groups`, `user_login_tokens`.
    Users = 0,
    /// `acl`.
    Acl = 1,
    /// `zone_pool` and `hook_pool` (a disabled zone; API hooks).
    ZoneHooks = 2,
    /// What a cluster holds: `host_pool.cluster_id` (hosts added, deleted or moved; the
    /// monitor's updates of hosts move nothing), `cluster_network_relation`,
    /// `cluster_datastore_relation` (ACL rules on a cluster's objects).
    ClusterMembers = 3,
    /// What the quotas of users and groups show: their limits (`quota_limits`) and everything
    /// their usage is counted from (`crate::objects::quota`): `vm_pool`, `vrouter_pool`,
    /// `image_pool`, `image_vm`, `vnet_pool`, `vnet_lease`, `backup_reserve`.
    Quotas = 4,
    /// What `one.vmpool.info*` prints: the VMs (`vm_pool`), their placements (`history`) and
    /// monitoring records (`vm_monitoring`), the names of their owners and groups
    /// (`user_pool`, `group_pool`: a new user or group, or a change that names no `name`
    /// column, leaves every VM's printed names as they were), and the transfer drivers of the
    /// placements' system datastores (`datastore_pool`: only a change naming `tm_mad`, or a
    /// delete, changes one).
    VmPool = 5,
}

const WATCHED: [(Watched, &[&str]); 6] = [
    (
        Watched::Users,
        &["user_pool", "user_groups", "user_login_tokens"],
    ),
    (Watched::Acl, &["acl"]),
    (Watched::ZoneHooks, &["zone_pool", "hook_pool"]),
    (
        Watched::ClusterMembers,
        &[
            "host_pool",
            crate::objects::cluster::NETWORKS,
            crate::objects::cluster::DATASTORES,
        ],
    ),
    (
        Watched::Quotas,
        &[
            crate::objects::quota::TABLE,
            crate::objects::vm::TABLE,
            crate::objects::vrouter::TABLE,
            crate::objects::image::TABLE,
            "image_vm",
            crate::objects::vnet::TABLE,
            crate::objects::lease::TABLE,
            "backup_reserve",
            // Per-cluster VM quotas count the VMs by their current record's cluster.
            "history",
        ],
    ),
    (
        Watched::VmPool,
        &[
            crate::objects::vm::TABLE,
            "history",
            "vm_monitoring",
            crate::objects::user::TABLE,
            crate::objects::group::TABLE,
            crate::objects::datastore::TABLE,
        ],
    ),
];

/// The low bits of a generation's value count the commits to its tables under way: the value is
/// *settled* when they are zero, and each commit adds one generation ([`ONE_GENERATION`]).
const UNDER_WAY_BITS: u32 = 8;
const ONE_GENERATION: u64 = 1 << UNDER_WAY_BITS;

/// The generations of one state database, shared by its writer and the caches of its readers.
#[derive(Clone, Default)]
pub struct Changes(Arc<Shared>);

#[derive(Default)]
struct Shared {
    generations: [AtomicU64; WATCHED.len()],
    /// Which VMs each move of [`Watched::VmPool`] may have changed.
    vm_touches: Mutex<TouchLog>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Changes")
            .field(&self.get(Watched::Users))
            .field(&self.get(Watched::Acl))
            .field(&self.get(Watched::ZoneHooks))
            .field(&self.get(Watched::ClusterMembers))
            .field(&self.get(Watched::Quotas))
            .field(&self.get(Watched::VmPool))
            .finish()
    }
}

impl Changes {
    /// The current generation of `what`; take it before reading the rows it covers, and keep
    /// nothing read under it unless it is [`Changes::settled`].
    pub fn get(&self, what: Watched) -> u64 {
        self.0.generations[what as usize].load(Ordering::Acquire)
    }

    /// The VMs whose rows in a pool answer (`Watched::VmPool`) the commits after generation
    /// `from` up to generation `to` may have changed, sorted, each once; both settled and taken
    /// in that order. `None` when that is not known: one of those commits may have changed
    /// every VM (or an owner's or group's name), or it is too far back to remember
    /// (`crate::vm_touches`). An answer read under `from` shows what it would show under `to`
    /// once these VMs are read again.
    pub fn vms_touched(&self, from: u64, to: u64) -> Option<Vec<i64>> {
        if !(Changes::settled(from) && Changes::settled(to)) {
            return None;
        }
        self.touch_log().between(from, to)
    }

    fn touch_log(&self) -> std::sync::MutexGuard<'_, TouchLog> {
        // Each change of the log is one push with its own bookkeeping: a poisoned lock still
        // holds a consistent log.
        self.0.vm_touches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether no commit to the tables behind `generation` was under way when it was taken:
    /// only then may a copy read under it be kept or used.
    pub fn settled(generation: u64) -> bool {
        generation & (ONE_GENERATION - 1) == 0
    }

    /// Hold across the commit of `txns`: every watched set they write to is unsettled until the
    /// returned guard is dropped, then moves, whether the commit succeeded or not. On the apply
    /// path of every entry, so each statement is parsed once.
    pub fn applying<'a>(&self, txns: impl IntoIterator<Item = &'a SqlTxn>) -> Committing {
        let mut moved = [false; WATCHED.len()];
        // The VMs the pool's writes touch; `None` once one may touch any.
        let mut vms = Some(Vec::new());
        for stmt in txns.into_iter().flat_map(|t| &t.stmts) {
            let mut by_this = [false; WATCHED.len()];
            mark_writes(&stmt.sql, &mut by_this);
            if by_this[Watched::VmPool as usize] {
                match (touched_vm(stmt), vms.as_mut()) {
                    (Some(vm), Some(v)) => v.push(vm),
                    _ => vms = None,
                }
            }
            for (m, b) in moved.iter_mut().zip(by_this) {
                *m |= b;
            }
        }
        self.begin(moved, vms)
    }

    /// Hold while the whole state is replaced (a snapshot installed, a backup restored) or
    /// changed outside [`Changes::applying`]: every generation is unsettled, then moves.
    pub fn replacing(&self) -> Committing {
        self.begin([true; WATCHED.len()], None)
    }

    /// [`Changes::applying`] of changes already committed (tests, and writes no reader can
    /// have seen yet).
    pub fn applied<'a>(&self, txns: impl IntoIterator<Item = &'a SqlTxn>) {
        drop(self.applying(txns));
    }

    /// [`Changes::replacing`] of a state already replaced.
    pub fn replaced(&self) {
        drop(self.replacing());
    }

    /// `vms`: the VMs the commit touches in the pool, if it moves [`Watched::VmPool`].
    fn begin(&self, moved: [bool; WATCHED.len()], vms: Option<Vec<i64>>) -> Committing {
        for (i, (g, m)) in self.0.generations.iter().zip(moved).enumerate() {
            if !m {
                continue;
            }
            if i == Watched::VmPool as usize {
                // Logged before the generation moves, under the log's lock, so that whoever
                // sees the generation this commit leads to finds the commit in the log.
                let mut log = self.touch_log();
                let before = g.fetch_add(1, Ordering::AcqRel);
                log.push((before / ONE_GENERATION + 1) * ONE_GENERATION, vms.clone());
            } else {
                g.fetch_add(1, Ordering::AcqRel);
            }
        }
        Committing {
            changes: self.clone(),
            moved,
        }
    }
}

/// A commit under way ([`Changes::applying`]): its generations settle, one further, when it is
/// dropped.
#[must_use = "the generations settle when this is dropped: hold it across the commit"]
pub struct Committing {
    changes: Changes,
    moved: [bool; WATCHED.len()],
}

impl Drop for Committing {
    fn drop(&mut self) {
        for (g, m) in self.changes.0.generations.iter().zip(self.moved) {
            if m {
                g.fetch_add(ONE_GENERATION - 1, Ordering::AcqRel);
            }
        }
    }
}

/// The table a data-changing statement writes to, by its leading words; `None` for any other
/// form.
pub(crate) fn target(sql: &str) -> Option<&str> {
    let mut words = sql.split_ascii_whitespace();
    let first = words.next()?;
    let table = if first.eq_ignore_ascii_case("UPDATE") {
        let mut t = words.next()?;
        if t.eq_ignore_ascii_case("OR") {
            words.next()?;
            t = words.next()?;
        }
        t
    } else if first.eq_ignore_ascii_case("DELETE") {
        let from = words.next()?;
        if !from.eq_ignore_ascii_case("FROM") {
            return None;
        }
        words.next()?
    } else if first.eq_ignore_ascii_case("INSERT") || first.eq_ignore_ascii_case("REPLACE") {
        let mut w = words.next()?;
        if w.eq_ignore_ascii_case("OR") {
            words.next()?;
            w = words.next()?;
        }
        if !w.eq_ignore_ascii_case("INTO") {
            return None;
        }
        words.next()?
    } else {
        return None;
    };
    // `t(a, b)`, `"t"`, `` `t` ``.
    let table = table.split('(').next().unwrap_or(table);
    Some(table.trim_matches(|c| c == '"' || c == '`'))
}

/// A plain insert of new rows: no `OR REPLACE`, no upsert.
fn inserts_only(sql: &str) -> bool {
    let head = sql.trim_start();
    head.get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("INSERT"))
        && head.get(6..).is_some_and(|rest| {
            rest.trim_start()
                .get(..4)
                .is_some_and(|w| w.eq_ignore_ascii_case("INTO"))
        })
        && !contains_ignore_case(sql, "ON CONFLICT")
        && !contains_ignore_case(sql, "REPLACE")
}

fn first_word_is(sql: &str, word: &str) -> bool {
    sql.split_ascii_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Marks in `moved` every watched set `sql` writes to.
fn mark_writes(sql: &str, moved: &mut [bool; WATCHED.len()]) {
    match target(sql) {
        Some(t) => {
            for (what, tables) in &WATCHED {
                if tables.iter().any(|name| t.eq_ignore_ascii_case(name)) {
                    mark_target(sql, t, *what, moved);
                }
            }
        }
        // A SELECT writes nothing (the guards that must match a row).
        None if first_word_is(sql, "SELECT") => {}
        // An unknown form: trusted only when it names none of the tables.
        None => {
            for (what, tables) in WATCHED {
                if tables.iter().any(|name| contains_ignore_case(sql, name)) {
                    moved[what as usize] = true;
                }
            }
        }
    }
}

/// Marks `what` moved by `sql`, which writes to `t`, one of its tables, unless it is a write
/// known to change no row a cache of `what` can hold.
fn mark_target(sql: &str, t: &str, what: Watched, moved: &mut [bool; WATCHED.len()]) {
    let new_user = what == Watched::Users
        && ((t.eq_ignore_ascii_case(crate::objects::user::TABLE) && inserts_only(sql))
            || sql == crate::objects::user::NEW_USER_GROUP);
    // An UPDATE names the columns it sets: one that does not name `cluster_id` leaves
    // every host in its cluster (the monitor updates hosts all the time).
    let host_stays = what == Watched::ClusterMembers
        && t.eq_ignore_ascii_case("host_pool")
        && first_word_is(sql, "UPDATE")
        && !contains_ignore_case(sql, "cluster_id");
    // Pool bodies print the names of owners and groups only: a new one is nobody's yet (ids
    // are never reused), and a change that names no name column renames no one.
    let names_stay = what == Watched::VmPool
        && (t.eq_ignore_ascii_case(crate::objects::user::TABLE)
            || t.eq_ignore_ascii_case(crate::objects::group::TABLE))
        && (inserts_only(sql)
            || (first_word_is(sql, "UPDATE") && !contains_ignore_case(sql, "name")));
    // Pool bodies print a placement's datastore's TM_MAD only: the monitor's and the
    // template's updates leave it, and a new datastore is no VM's yet.
    let drivers_stay = what == Watched::VmPool
        && t.eq_ignore_ascii_case(crate::objects::datastore::TABLE)
        && (inserts_only(sql)
            || (first_word_is(sql, "UPDATE") && !contains_ignore_case(sql, "tm_mad")));
    if !new_user && !host_stays && !names_stay && !drivers_stay {
        moved[what as usize] = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::{SqlStmt, SqlValue};

    /// Whether (users, acl, zone and hooks) moved; cluster members are checked apart.
    fn moved(stmts: Vec<SqlStmt>) -> [bool; 3] {
        let c = Changes::default();
        c.applied([&SqlTxn { stmts }]);
        [
            c.get(Watched::Users) == ONE_GENERATION,
            c.get(Watched::Acl) == ONE_GENERATION,
            c.get(Watched::ZoneHooks) == ONE_GENERATION,
        ]
    }

    /// Whether applying `sql` alone moves `group`.
    fn moves(sql: &str, group: Watched) -> bool {
        let c = Changes::default();
        c.applied([&SqlTxn {
            stmts: vec![s(sql)],
        }]);
        c.get(group) == ONE_GENERATION
    }

    fn members_moved(sql: &str) -> bool {
        moves(sql, Watched::ClusterMembers)
    }

    #[test]
    fn only_hosts_added_deleted_or_moved_change_what_a_cluster_holds() {
        for sql in [
            "UPDATE host_pool SET cluster_id = ?1 WHERE oid = ?2",
            "INSERT INTO host_pool (oid, cluster_id) VALUES (1, 0)",
            "DELETE FROM host_pool WHERE oid = 1",
            "INSERT INTO cluster_network_relation (cid, oid) VALUES (0, 1)",
            "DELETE FROM cluster_datastore_relation WHERE oid = 1",
        ] {
            assert!(members_moved(sql), "{sql}");
        }
        for sql in [
            "UPDATE host_pool SET template = ?2, state = 2 WHERE oid = ?1",
            "UPDATE host_pool SET name = ?2 WHERE oid = ?1",
            "UPDATE vm_pool SET cluster_id = 1",
        ] {
            assert!(!members_moved(sql), "{sql}");
        }
    }

    fn s(sql: &str) -> SqlStmt {
        SqlStmt::new(sql, vec![SqlValue::Int(1)])
    }

    #[test]
    fn a_new_user_moves_nothing_but_a_change_of_an_existing_one_does() {
        let new_user = crate::objects::user::insert("u", "h".into(), "core", 1);
        assert_eq!(moved(new_user), [false; 3]);
        assert_eq!(
            moved(crate::objects::user::set_password(3, "x".into())),
            [true, false, false]
        );
        for sql in [
            "UPDATE user_pool SET enabled = 0 WHERE oid = 1",
            "DELETE FROM user_pool WHERE oid = 1",
            "INSERT OR IGNORE INTO user_groups (uid, gid) VALUES (?1, ?2)",
            "DELETE FROM user_groups WHERE uid = ?1",
            "INSERT INTO user_login_tokens (uid, token) SELECT oid, ?2 FROM user_pool",
            "INSERT INTO user_pool (oid) VALUES (1) ON CONFLICT(oid) DO UPDATE SET gid = 2",
            "INSERT OR REPLACE INTO user_pool (oid) VALUES (1)",
            "REPLACE INTO user_pool (oid) VALUES (1)",
            "  update \"user_pool\" set gid = 1",
            "WITH x AS (SELECT 1) UPDATE user_pool SET gid = 1",
        ] {
            assert_eq!(moved(vec![s(sql)]), [true, false, false], "{sql}");
        }
    }

    #[test]
    fn reads_of_a_watched_table_inside_other_writes_move_nothing() {
        for sql in [
            "INSERT INTO vm_pool (oid, uid) SELECT 1, oid FROM user_pool WHERE oid = 1",
            "UPDATE template_pool SET uid = (SELECT oid FROM user_pool) WHERE oid = 1",
            "DELETE FROM image_pool WHERE uid IN (SELECT uid FROM user_groups)",
            "UPDATE acl_extra SET x = 1",
        ] {
            assert_eq!(moved(vec![s(sql)]), [false; 3], "{sql}");
        }
    }

    fn quotas_moved(sql: &str) -> bool {
        moves(sql, Watched::Quotas)
    }

    #[test]
    fn issue_16_every_table_usage_is_counted_from_moves_the_quotas() {
        for sql in [
            "INSERT INTO vm_pool (oid, uid) VALUES (1, 2)",
            "UPDATE vm_pool SET prev_state = state, state = 6 WHERE oid = 1",
            "UPDATE vrouter_pool SET uid = 3 WHERE oid = 1",
            "DELETE FROM image_pool WHERE oid = 1",
            "INSERT INTO image_vm (oid, vid) VALUES (1, 2)",
            "INSERT INTO vnet_lease (vnet_oid, idx) VALUES (1, 2)",
            "UPDATE vnet_pool SET gid = 1 WHERE oid = 4",
            "DELETE FROM backup_reserve WHERE vid = 1",
            "INSERT INTO quota_limits (owner, oid) VALUES ('user', 2)",
            "WITH x AS (SELECT 1) DELETE FROM vnet_lease WHERE idx = 1",
        ] {
            assert!(quotas_moved(sql), "{sql}");
        }
        // A guard reads those tables and writes nothing; other tables are not counted.
        for sql in [
            "SELECT 1 FROM (SELECT 1 AS one) AS quota WHERE (SELECT COUNT(*) FROM vm_pool) <= 2",
            "UPDATE template_pool SET uid = 1 WHERE oid = 1",
            "INSERT INTO user_pool (oid) VALUES (9)",
        ] {
            assert!(!quotas_moved(sql), "{sql}");
        }
    }

    #[test]
    fn issue_16_what_a_vm_pool_prints_moves_its_generation() {
        let pool_moved = |sql: &str| moves(sql, Watched::VmPool);
        for sql in [
            "INSERT INTO vm_pool (oid, uid) VALUES (1, 2)",
            "UPDATE vm_pool SET prev_state = state, state = 6 WHERE oid = 1",
            "DELETE FROM vm_pool WHERE oid = 1",
            "INSERT INTO history (vid, seq) VALUES (1, 0)",
            "UPDATE history SET etime = 5 WHERE vid = 1 AND seq = 0",
            "INSERT INTO vm_monitoring (vmid, last_poll) SELECT oid, 5 FROM vm_pool",
            "DELETE FROM vm_monitoring WHERE last_poll < ?1",
            "UPDATE user_pool SET name = ?2 WHERE oid = ?1",
            "DELETE FROM user_pool WHERE oid = 3",
            "UPDATE group_pool SET name = 'x' WHERE oid = 100",
            "DELETE FROM group_pool WHERE oid = 100",
            "INSERT OR REPLACE INTO group_pool (oid, name) VALUES (100, 'x')",
            "WITH x AS (SELECT 1) DELETE FROM history WHERE vid = 1",
            "UPDATE datastore_pool SET tm_mad = ?2, template = ?3 WHERE oid = ?1",
            "DELETE FROM datastore_pool WHERE oid = 100",
        ] {
            assert!(pool_moved(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO user_pool (oid, name) VALUES (9, 'u')",
            "INSERT INTO group_pool (oid, name) VALUES (101, 'g')",
            "UPDATE user_pool SET password = ?2 WHERE oid = ?1",
            "UPDATE group_pool SET template = ?2 WHERE oid = ?1",
            "UPDATE host_pool SET template = ?2 WHERE oid = ?1",
            "INSERT INTO template_pool (oid) VALUES (1)",
            "SELECT 1 FROM vm_pool WHERE oid = 1",
            "UPDATE datastore_pool SET total_mb = ?2, free_mb = ?3, used_mb = ?4 WHERE oid = ?1",
            "INSERT INTO datastore_pool (oid, name) VALUES (100, 'd')",
        ] {
            assert!(!pool_moved(sql), "{sql}");
        }
    }

    #[test]
    fn issue_16_every_table_the_vm_pool_query_reads_moves_its_generation() {
        let (_, watched) = WATCHED[Watched::VmPool as usize];
        for backend in [crate::Backend::Sqlite, crate::Backend::Mysql] {
            let sql = crate::objects::vm::pool_select(backend);
            let words: Vec<&str> = sql.split_ascii_whitespace().collect();
            let read: Vec<&str> = words
                .windows(2)
                .filter(|w| w[0].eq_ignore_ascii_case("FROM") || w[0].eq_ignore_ascii_case("JOIN"))
                .map(|w| w[1])
                .collect();
            assert!(read.len() >= 7, "{read:?}");
            for table in read {
                assert!(watched.contains(&table), "{table} in {sql}");
            }
        }
    }

    #[test]
    fn issue_16_the_vms_a_pool_answer_must_read_again_are_those_of_the_commits_since() {
        let c = Changes::default();
        let vm_write = |sql: &str, vm: i64| SqlStmt::new(sql, vec![SqlValue::Int(vm)]);
        let start = c.get(Watched::VmPool);
        c.applied([&SqlTxn {
            stmts: vec![
                vm_write("UPDATE vm_pool SET resched = 1 WHERE oid = ?1", 4),
                vm_write("INSERT INTO history (vid, seq) VALUES (?1, 0)", 2),
                vm_write("UPDATE template_pool SET name = 'a' WHERE oid = ?1", 9),
            ],
        }]);
        let one = c.get(Watched::VmPool);
        let committing = c.applying([&SqlTxn {
            stmts: vec![vm_write("DELETE FROM vm_monitoring WHERE vmid = ?1", 7)],
        }]);
        assert_eq!(c.vms_touched(start, c.get(Watched::VmPool)), None);
        drop(committing);
        let two = c.get(Watched::VmPool);
        assert_eq!(c.vms_touched(start, one), Some(vec![2, 4]));
        assert_eq!(c.vms_touched(one, two), Some(vec![7]));
        assert_eq!(c.vms_touched(start, two), Some(vec![2, 4, 7]));
        assert_eq!(c.vms_touched(two, two), Some(vec![]));
        // Writes over many VMs, or to a name every body of an owner shows, touch them all.
        c.applied([&SqlTxn {
            stmts: vec![vm_write(
                "UPDATE group_pool SET name = 'g' WHERE oid = ?1",
                1,
            )],
        }]);
        assert_eq!(c.vms_touched(two, c.get(Watched::VmPool)), None);
        let three = c.get(Watched::VmPool);
        c.applied([&SqlTxn {
            stmts: vec![vm_write(
                "UPDATE vm_pool SET resched = 0 WHERE resched = ?1",
                1,
            )],
        }]);
        assert_eq!(c.vms_touched(three, c.get(Watched::VmPool)), None);
        let four = c.get(Watched::VmPool);
        c.replaced();
        assert_eq!(c.vms_touched(four, c.get(Watched::VmPool)), None);
    }

    #[test]
    fn acl_zone_and_hook_writes_move_their_own_generation() {
        assert_eq!(
            moved(vec![s("INSERT INTO acl (oid) VALUES (1)")]),
            [false, true, false]
        );
        assert_eq!(
            moved(vec![s("UPDATE zone_pool SET state = 1 WHERE oid = 0")]),
            [false, false, true]
        );
        assert_eq!(
            moved(vec![s("DELETE FROM hook_pool WHERE oid = 3")]),
            [false, false, true]
        );
        let c = Changes::default();
        c.replaced();
        assert_eq!(
            [
                c.get(Watched::Users),
                c.get(Watched::Acl),
                c.get(Watched::ZoneHooks)
            ],
            [ONE_GENERATION; 3]
        );
    }

    #[test]
    fn a_generation_is_unsettled_while_its_commit_is_under_way_and_moves_after_it() {
        let c = Changes::default();
        let before = c.get(Watched::Users);
        assert!(Changes::settled(before));
        let txn = SqlTxn {
            stmts: vec![s("DELETE FROM user_groups WHERE uid = 2 AND gid = 0")],
        };
        let committing = c.applying([&txn]);
        let during = c.get(Watched::Users);
        assert!(!Changes::settled(during));
        assert!(during > before);
        // Sets the commit does not write stay settled and do not move.
        assert_eq!(c.get(Watched::Acl), 0);
        drop(committing);
        let after = c.get(Watched::Users);
        assert!(Changes::settled(after));
        assert!(after > during && after != before);
        let whole = c.replacing();
        assert!(!Changes::settled(c.get(Watched::Acl)));
        assert!(!Changes::settled(c.get(Watched::Users)));
        drop(whole);
        assert_eq!(c.get(Watched::Acl), ONE_GENERATION);
        assert_eq!(c.get(Watched::Users), 2 * ONE_GENERATION);
    }
}
