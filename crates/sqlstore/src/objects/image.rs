//! Images (`image_pool`), the VMs using each (`image_vm`), and the statements the image
//! methods and the `dummy` datastore driver change them with.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};
use wire::ImageState;

pub const TABLE: &str = "image_pool";

/// What the datastore driver is doing while an image is in a locked state (`op`).
pub mod op {
    /// Copying or creating the image (`cp`, `mkfs`); also no operation at all.
    pub const REGISTER: i64 = 0;
    /// Copying image `cloning_id` into this one.
    pub const CLONE: i64 = 1;
    pub const SNAP_DELETE: i64 = 2;
    pub const SNAP_REVERT: i64 = 3;
    pub const SNAP_FLATTEN: i64 = 4;
}

/// The states the driver finishes from, with what `Image::set_state_unlock` leaves.
pub const UNLOCKS: [(ImageState, ImageState); 3] = [
    (ImageState::Locked, ImageState::Ready),
    (ImageState::LockedUsed, ImageState::Used),
    (ImageState::LockedUsedPers, ImageState::UsedPers),
];

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
    pub modtime: i64,
    pub prev_state: i64,
    /// Where the driver put it; empty until it did.
    pub source: String,
    pub format: String,
    pub fs: String,
    /// The image this one is being cloned from, -1 once done.
    pub cloning_id: i64,
    pub target_snapshot: i64,
    /// The `SNAPSHOTS` element as a text template (`ALLOW_ORPHANS`, `CURRENT_BASE`,
    /// `NEXT_SNAPSHOT`, `SNAPSHOT = [...]`); empty when it never had any.
    pub snapshots: String,
    /// The driver operation in progress while locked ([`op`]).
    pub op: i64,
    /// A backup image's `BACKUP_INCREMENTS` as a text template (`INCREMENT = [...]`); empty
    /// for a full backup and every other image.
    pub increments: String,
    /// The VMs using it, ascending.
    pub vms: Vec<i64>,
    /// The images being cloned from it, ascending.
    pub clones: Vec<i64>,
    /// `Image::DiskType` of its datastore when it was made (`ds->get_disk_type()`).
    pub disk_type: i64,
}

has_owner!(lockable ImageRow);

fn ids(c: &Conn, sql: &str, oid: i64) -> crate::sql::Result<Vec<i64>> {
    c.prepare_cached(sql)?
        .query_map([oid], |r| r.get(0))?
        .collect()
}

fn read(c: &Conn, r: &Row) -> crate::sql::Result<ImageRow> {
    let (head, lock, at) = Lock::head_and_lock(r)?;
    let oid = head.owned.oid;
    Ok(ImageRow {
        vms: ids(
            c,
            "SELECT vid FROM image_vm WHERE oid = ?1 ORDER BY vid",
            oid,
        )?,
        clones: ids(
            c,
            "SELECT oid FROM image_pool WHERE cloning_id = ?1 ORDER BY oid",
            oid,
        )?,
        head,
        lock,
        kind: r.get(at)?,
        persistent: r.get::<i64>(at + 1)? != 0,
        regtime: r.get(at + 2)?,
        path: r.get(at + 3)?,
        size: r.get(at + 4)?,
        state: r.get(at + 5)?,
        datastore_id: r.get(at + 6)?,
        datastore: r.get(at + 7)?,
        template: r.get(at + 8)?,
        modtime: r.get(at + 9)?,
        prev_state: r.get(at + 10)?,
        source: r.get(at + 11)?,
        format: r.get(at + 12)?,
        fs: r.get(at + 13)?,
        cloning_id: r.get(at + 14)?,
        target_snapshot: r.get(at + 15)?,
        snapshots: r.get(at + 16)?,
        op: r.get(at + 17)?,
        increments: r.get(at + 18)?,
        disk_type: r.get(at + 19)?,
    })
}

pub static ROWS: Rows<ImageRow> = Rows {
    select: owned_select!(
        lockable "image_pool",
        "i",
        "i.type, i.persistent, i.regtime, i.path, i.size, i.state, i.datastore_id, \
         COALESCE(d.name, ''), i.template, i.modtime, i.prev_state, i.source, i.format, i.fs, \
         i.cloning_id, i.target_snapshot, i.snapshots, i.op, i.increments, i.disk_type",
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
    pub source: String,
    pub format: String,
    pub fs: String,
    /// -1, or the image it is cloned from (then `op` is [`op::CLONE`]).
    pub cloning_id: i64,
    /// The datastore's `Image::DiskType`.
    pub disk_type: i64,
}

/// Inserts a new image. `prev_state` is INIT, as OpenNebula's until the first update.
pub fn insert(i: NewImage) -> SqlStmt {
    let op = if i.cloning_id >= 0 {
        op::CLONE
    } else {
        op::REGISTER
    };
    insert_next(
        TABLE,
        "name, uid, gid, perms, type, persistent, regtime, path, size, state, datastore_id, \
         template, modtime, prev_state, source, format, fs, cloning_id, op, disk_type",
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?7, 0, ?13, ?14, ?15, ?16, ?17, ?18",
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
            SqlValue::Text(i.source),
            SqlValue::Text(i.format),
            SqlValue::Text(i.fs),
            SqlValue::Int(i.cloning_id),
            SqlValue::Int(op),
            SqlValue::Int(i.disk_type),
        ],
    )
}

/// The id of image `name` of user `uid`, if there is one (names are unique per owner).
pub fn named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    super::owned_named(c, "image_pool", name, uid)
}

/// What a state change does to an image's lock: `Image::set_state` ends any lock unless the
/// image goes LOCKED (`unlock_db(-1, -1)`; the LOCK element is printed only while locked, so
/// its time stays).
fn unlock_into(to: i64) -> &'static str {
    if to == ImageState::Locked.as_i64() {
        ""
    } else {
        ", lock_level = 0, lock_owner = -1, lock_req = -1"
    }
}

/// Moves image `oid` from state `from` (read before: a concurrent change makes it match
/// nothing) to `to`, with `set` (`column = ?N` from `?3` on, taking `args`) changed too.
/// `prev_state` follows the state, as `ImagePool::update` leaves it; the lock goes
/// (`unlock_into`).
pub fn set_state(oid: i64, from: i64, to: i64, set: &str, args: Vec<SqlValue>) -> SqlStmt {
    let extra = if set.is_empty() {
        String::new()
    } else {
        format!(", {set}")
    };
    let mut params = vec![SqlValue::Int(oid), SqlValue::Int(to)];
    params.extend(args);
    params.push(SqlValue::Int(from));
    let from_at = params.len();
    let unlock = unlock_into(to);
    SqlStmt::new(
        &format!(
            "UPDATE image_pool SET state = ?2, prev_state = ?2{unlock}{extra}
             WHERE oid = ?1 AND state = ?{from_at}"
        ),
        params,
    )
    .must_match()
}

/// `one.image.persistent`: the flag, while the image is still in state `state`.
pub fn set_persistent(oid: i64, persistent: bool, state: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE image_pool SET persistent = ?2, prev_state = state WHERE oid = ?1 AND state = ?3",
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(persistent as i64),
            SqlValue::Int(state),
        ],
    )
    .must_match()
}

/// `one.image.chtype`: the type, while the snapshots are still `snapshots`.
pub fn set_type(oid: i64, kind: i64, snapshots: &str) -> SqlStmt {
    SqlStmt::new(
        "UPDATE image_pool SET type = ?2, prev_state = state WHERE oid = ?1 AND snapshots = ?3",
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(kind),
            SqlValue::Text(snapshots.to_string()),
        ],
    )
    .must_match()
}

/// Deletes image `oid` while it is still in state `state`, used by no VM and cloned by no
/// image.
pub fn delete_idle(oid: i64, state: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM image_pool WHERE oid = ?1 AND state = ?2
           AND NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = ?1)
           AND NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = ?1)",
        vec![SqlValue::Int(oid), SqlValue::Int(state)],
    )
    .must_match()
}

/// `ImageManager::release_cloning_resource`: image `src`, being cloned (USED or CLONE), is READY
/// again once no image is cloned from it and no VM uses it, after its READY state hooks'
/// executions. Placed after the statements that end its last clone; matches nothing otherwise.
pub fn release_cloning(src: i64, now: i64) -> Vec<SqlStmt> {
    let mut stmts = super::hook::state_events(super::hook::StateChange {
        resource: "IMAGE",
        table: TABLE,
        state: "READY",
        lcm_state: "",
        which: "o.oid = ?6 AND o.state IN (?7, ?8)
                AND NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = o.oid)
                AND NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = o.oid)",
        params: vec![
            SqlValue::Int(src),
            SqlValue::Int(ImageState::Used.as_i64()),
            SqlValue::Int(ImageState::Clone.as_i64()),
        ],
        now,
        object: "",
    });
    stmts.push(SqlStmt::new(
        "UPDATE image_pool SET state = ?2, prev_state = ?2,
           lock_level = 0, lock_owner = -1, lock_req = -1
         WHERE oid = ?1 AND state IN (?3, ?4)
           AND NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = ?1)",
        vec![
            SqlValue::Int(src),
            SqlValue::Int(ImageState::Ready.as_i64()),
            SqlValue::Int(ImageState::Used.as_i64()),
            SqlValue::Int(ImageState::Clone.as_i64()),
        ],
    ));
    stmts
}

/// VM `vid` uses image `oid` (`Image::inc_running`).
pub fn add_vm(oid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT OR IGNORE INTO image_vm (oid, vid) VALUES (?1, ?2)",
        vec![SqlValue::Int(oid), SqlValue::Int(vid)],
    )
}

/// [`add_vm`] for the VM the same transaction creates (its id is the counter's next).
pub fn add_new_vm(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO image_vm (oid, vid)
         SELECT ?1, last_oid + 1 FROM pool_control WHERE tablename = 'vm_pool'",
        vec![SqlValue::Int(oid)],
    )
}

/// Every VM that is DONE stops using its images, and each image no VM uses any more is free
/// again, as `ImageManager::release_image` leaves it (placed after the statements that end
/// VMs, one or a driver step's many): persistent ones READY (or LOCKED while the driver works
/// on them), others too once nothing is cloned from them.
pub fn release_done_vms(now: i64) -> Vec<SqlStmt> {
    let unused = "NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = image_pool.oid)";
    let no_clones = "NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = image_pool.oid)";
    let mut stmts = vec![SqlStmt::new(
        "DELETE FROM image_vm WHERE vid IN (SELECT oid FROM vm_pool WHERE state = 6)",
        vec![],
    )];
    for (from, to, persistent) in [
        (ImageState::UsedPers, ImageState::Ready, true),
        (ImageState::LockedUsedPers, ImageState::Locked, true),
        (ImageState::Used, ImageState::Ready, false),
        (ImageState::LockedUsed, ImageState::Locked, false),
    ] {
        let (modtime, clones) = if persistent {
            (format!(", modtime = {now}"), String::new())
        } else {
            (String::new(), format!(" AND {no_clones}"))
        };
        // `ImagePool::update` fires the state hooks of each image that moves.
        let which = format!(
            "o.state = ?6 AND {}{}",
            unused.replace("image_pool.oid", "o.oid"),
            clones.replace("image_pool.oid", "o.oid")
        );
        stmts.extend(super::hook::state_events(super::hook::StateChange {
            resource: "IMAGE",
            table: TABLE,
            state: hook_state_name(to.as_i64()),
            lcm_state: "",
            which: &which,
            params: vec![SqlValue::Int(from.as_i64())],
            now,
            object: "",
        }));
        let unlock = unlock_into(to.as_i64());
        stmts.push(SqlStmt::new(
            &format!(
                "UPDATE image_pool SET state = ?2, prev_state = ?2{unlock}{modtime}
                 WHERE state = ?1 AND {unused}{clones}"
            ),
            vec![SqlValue::Int(from.as_i64()), SqlValue::Int(to.as_i64())],
        ));
    }
    stmts
}

/// VM `vid` ends while ACTIVE outside its epilog (a failure state terminated, `recover
/// --delete`): its persistent images go to ERROR, as `release_image(.., failed)` leaves them
/// (`VirtualMachine::release_disk_images`). Placed before the statements that end the VM.
pub fn fail_used_by(vid: i64, now: i64) -> Vec<SqlStmt> {
    let used = format!(
        "state IN ({}, {}) AND oid IN (SELECT oid FROM image_vm WHERE vid = ?1)",
        ImageState::UsedPers.as_i64(),
        ImageState::LockedUsedPers.as_i64()
    );
    let error = ImageState::Error.as_i64();
    let mut stmts = super::hook::state_events(super::hook::StateChange {
        resource: "IMAGE",
        table: TABLE,
        state: hook_state_name(error),
        lcm_state: "",
        which: &format!("o.{}", used.replace("oid IN", "o.oid IN")).replace("?1", "?6"),
        params: vec![SqlValue::Int(vid)],
        now,
        object: "",
    });
    stmts.push(SqlStmt::new(
        &format!(
            "UPDATE image_pool SET state = ?2, prev_state = ?2, modtime = ?3{} WHERE {used}",
            unlock_into(error)
        ),
        vec![SqlValue::Int(vid), SqlValue::Int(error), SqlValue::Int(now)],
    ));
    stmts
}

/// `ImageManager::set_image_snapshots` (and `set_image_size`, with a disk grown to `size`):
/// VM `vid`, releasing image `oid`, leaves it `snapshots` (its disk's, or none). Only an OS or DATABLOCK image still USED_PERS by that VM
/// takes them, so a replay after the release, or a non-persistent image, changes nothing;
/// `vm_in` (STATE, LCM_STATE) also requires the VM still there, for a driver step that moves
/// every VM in that state.
pub fn set_snapshots_from_vm(
    oid: i64,
    vid: i64,
    snapshots: &str,
    size: Option<i64>,
    vm_in: Option<(i64, i64)>,
) -> SqlStmt {
    let mut params = vec![
        SqlValue::Int(oid),
        SqlValue::Int(vid),
        SqlValue::Text(snapshots.to_string()),
        SqlValue::Int(ImageState::UsedPers.as_i64()),
        size.map_or(SqlValue::Null, SqlValue::Int),
    ];
    let vm_guard = match vm_in {
        Some((state, lcm)) => {
            params.extend([SqlValue::Int(state), SqlValue::Int(lcm)]);
            " AND EXISTS (SELECT 1 FROM vm_pool m WHERE m.oid = ?2 AND m.state = ?6 \
               AND m.lcm_state = ?7)"
        }
        None => "",
    };
    SqlStmt::new(
        &format!(
            "UPDATE image_pool SET snapshots = ?3, size = COALESCE(?5, size)
             WHERE oid = ?1 AND state = ?4 AND type IN (0, 2)
               AND EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = ?1 AND v.vid = ?2){vm_guard}"
        ),
        params,
    )
}

/// The id and template of up to `limit` VMs in (STATE, LCM_STATE) `at`, lowest id first.
pub fn vms_in(c: &Conn, at: (i64, i64), limit: i64) -> crate::sql::Result<Vec<(i64, String)>> {
    c.prepare_cached(
        "SELECT oid, template FROM vm_pool WHERE state = ?1 AND lcm_state = ?2
         ORDER BY oid LIMIT ?3",
    )?
    .query_map([at.0, at.1, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// VM `vid` no longer uses image `oid` (`Image::dec_running`).
pub fn remove_vm(oid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM image_vm WHERE oid = ?1 AND vid = ?2",
        vec![SqlValue::Int(oid), SqlValue::Int(vid)],
    )
}

/// After [`remove_vm`]: image `oid`, used (`from`), moves to `to` once no VM uses it (and, for
/// a non-persistent one, nothing is cloned from it), as `ImageManager::release_image`.
pub fn release_if_unused(oid: i64, from: i64, to: i64, modtime: Option<i64>) -> SqlStmt {
    let persistent =
        from == ImageState::UsedPers.as_i64() || from == ImageState::LockedUsedPers.as_i64();
    let clones = if persistent {
        ""
    } else {
        " AND NOT EXISTS (SELECT 1 FROM image_pool c WHERE c.cloning_id = ?1)"
    };
    let modtime = modtime.map_or(String::new(), |t| format!(", modtime = {t}"));
    let unlock = unlock_into(to);
    SqlStmt::new(
        &format!(
            "UPDATE image_pool SET state = ?3, prev_state = ?3{unlock}{modtime}
             WHERE oid = ?1 AND state = ?2
               AND NOT EXISTS (SELECT 1 FROM image_vm v WHERE v.oid = ?1){clones}"
        ),
        vec![SqlValue::Int(oid), SqlValue::Int(from), SqlValue::Int(to)],
    )
}

/// The images the `dummy` datastore driver has work on (in a locked state), oldest first, at
/// most `limit`.
pub fn driver_pending(c: &Conn, limit: i64) -> crate::sql::Result<Vec<ImageRow>> {
    let sql = format!(
        "{} WHERE i.state IN (?1, ?2, ?3) ORDER BY i.oid LIMIT ?4",
        ROWS.select
    );
    let mut st = c.prepare_cached(&sql)?;
    let mut rows = st.query([
        ImageState::Locked.as_i64(),
        ImageState::LockedUsed.as_i64(),
        ImageState::LockedUsedPers.as_i64(),
        limit,
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(read(c, r)?);
    }
    Ok(out)
}

/// The driver finished operation `op` on image `oid` (in locked state `from`): it moves to
/// `to` with `set` changed too (`column = ?N` from `?5` on). Never `must_match`: the driver's
/// transaction carries every image's result, and one that changed meanwhile is skipped.
pub fn driver_done(
    oid: i64,
    from: i64,
    to: i64,
    op: i64,
    set: &str,
    args: Vec<SqlValue>,
) -> SqlStmt {
    let mut params = vec![
        SqlValue::Int(oid),
        SqlValue::Int(from),
        SqlValue::Int(to),
        SqlValue::Int(op),
    ];
    params.extend(args);
    let unlock = unlock_into(to);
    SqlStmt::new(
        &format!(
            "UPDATE image_pool SET state = ?3, prev_state = ?3{unlock}, op = 0, target_snapshot = -1, {set}
             WHERE oid = ?1 AND state = ?2 AND op = ?4"
        ),
        params,
    )
}

/// The state hooks' executions for image `oid` moving, from `from`, to state `to`.
pub fn state_events(oid: i64, from: i64, to: &str, now: i64) -> Vec<SqlStmt> {
    state_events_if(oid, from, to, "", now)
}

/// [`state_events`] for a move that happens only while `cond` (SQL over the image `o`, after
/// `AND`) holds too, placed before the statement that makes it.
pub fn state_events_if(oid: i64, from: i64, to: &str, cond: &str, now: i64) -> Vec<SqlStmt> {
    let which = format!("o.oid = ?6 AND o.state = ?7{cond}");
    super::hook::state_events(super::hook::StateChange {
        resource: "IMAGE",
        table: TABLE,
        state: to,
        lcm_state: "",
        which: &which,
        params: vec![SqlValue::Int(oid), SqlValue::Int(from)],
        now,
        object: "",
    })
}

/// `Image::state_to_str`, as the state hooks name states: both USED states `USED`, both
/// LOCKED_USED ones `LOCKED_USED`.
pub fn hook_state_name(state: i64) -> &'static str {
    match ImageState::from_i64(state) {
        Some(ImageState::UsedPers) => "USED",
        Some(ImageState::LockedUsedPers) => "LOCKED_USED",
        Some(s) => s.name(),
        None => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;
    use crate::txn::apply_txn;
    use crate::{SqlTxn, TxnOutcome};

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

    fn new(name: &str, cloning_id: i64, state: ImageState) -> NewImage {
        NewImage {
            name: name.into(),
            uid: 0,
            gid: 0,
            perms: 0o600,
            kind: 0,
            persistent: false,
            regtime: 10,
            path: String::new(),
            size: 5,
            state: state.as_i64(),
            datastore_id: 1,
            template: String::new(),
            source: String::new(),
            format: "raw".into(),
            fs: String::new(),
            cloning_id,
            disk_type: 0,
        }
    }

    fn applied(c: &Conn, stmts: Vec<SqlStmt>) -> bool {
        matches!(
            apply_txn(c, &SqlTxn { stmts }).unwrap(),
            TxnOutcome::Done { .. }
        )
    }

    fn get(c: &Conn, oid: i64) -> ImageRow {
        let mut st = c.prepare(&ROWS.by_id()).unwrap();
        st.query_row([oid], |r| read(c, r)).unwrap()
    }

    #[test]
    fn a_vm_leaves_its_snapshots_only_in_a_persistent_image_it_still_uses() {
        on_both_backends(|c| {
            let mut pers = new("p", -1, ImageState::UsedPers);
            pers.persistent = true;
            for (i, stmts) in [
                vec![insert(pers), super::super::next_oid(TABLE)],
                vec![
                    insert(new("n", -1, ImageState::Used)),
                    super::super::next_oid(TABLE),
                ],
            ]
            .into_iter()
            .enumerate()
            {
                assert!(applied(c, stmts));
                assert!(applied(c, vec![add_vm(i as i64, 7)]));
            }
            let text = "NEXT_SNAPSHOT = \"1\"";
            let epilog = Some((3, 11));
            assert!(applied(
                c,
                vec![
                    set_snapshots_from_vm(0, 7, text, Some(64), epilog),
                    set_snapshots_from_vm(1, 7, text, None, None),
                    set_snapshots_from_vm(0, 8, "other VM", None, None),
                ]
            ));
            assert_eq!(get(c, 0).snapshots, "", "VM 7 is not in EPILOG");
            assert!(applied(
                c,
                vec![set_snapshots_from_vm(0, 7, text, Some(64), None)]
            ));
            assert_eq!((get(c, 0).snapshots.as_str(), get(c, 0).size), (text, 64));
            assert_eq!(get(c, 1).snapshots, "", "not persistent");
            assert!(vms_in(c, (3, 11), 10).unwrap().is_empty());
        });
    }

    #[test]
    fn an_image_knows_its_vms_and_clones_and_is_released_when_they_go() {
        on_both_backends(|c| {
            let ready = ImageState::Ready;
            for (name, from, state) in [
                ("a", -1, ready),
                ("b", 0, ImageState::Locked),
                ("c", 0, ImageState::Locked),
            ] {
                let stmts = vec![
                    insert(new(name, from, state)),
                    super::super::next_oid(TABLE),
                ];
                assert!(applied(c, stmts));
            }
            let used = ImageState::Used.as_i64();
            assert!(applied(
                c,
                vec![set_state(0, ready.as_i64(), used, "", vec![]), add_vm(0, 7)]
            ));
            let a = get(c, 0);
            assert_eq!((a.vms.clone(), a.clones.clone()), (vec![7], vec![1, 2]));
            assert_eq!((a.state, a.prev_state), (used, used));
            assert_eq!(get(c, 1).prev_state, 0, "INIT until the first update");
            // Busy: no delete.
            assert!(!applied(c, vec![delete_idle(0, used)]));
            // The VM goes: the clones still hold it.
            assert!(applied(
                c,
                vec![
                    remove_vm(0, 7),
                    release_if_unused(0, used, ready.as_i64(), None)
                ]
            ));
            assert_eq!(get(c, 0).state, used);
            // Both clones end: READY.
            let locked = ImageState::Locked.as_i64();
            let mut stmts = Vec::new();
            for oid in [1, 2] {
                stmts.extend(state_events(oid, locked, "READY", 20));
                stmts.push(driver_done(
                    oid,
                    locked,
                    ready.as_i64(),
                    op::CLONE,
                    "cloning_id = -1",
                    vec![],
                ));
            }
            stmts.extend(release_cloning(0, 20));
            assert!(applied(c, stmts));
            let a = get(c, 0);
            assert_eq!((a.state, a.clones.len()), (ready.as_i64(), 0));
            assert_eq!(get(c, 2).state, ready.as_i64());
            assert_eq!(named(c, "c", 0).unwrap(), Some(2));
            assert!(applied(c, vec![delete_idle(0, ready.as_i64())]));
        });
    }
}
