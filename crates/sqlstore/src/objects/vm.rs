//! Virtual machines (`vm_pool`) and their placement records (`history`).

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vm_pool";

use wire::state::{HostState, LcmState, VmState};

/// The VM states a host's usage counts (bound as `?1, ?2, ?3`).
const ON_HOST: [VmState; 3] = [VmState::Active, VmState::Suspended, VmState::Poweroff];

/// One placement of a VM on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub seq: i64,
    pub hid: i64,
    pub hostname: String,
    pub vm_mad: String,
    pub stime: i64,
    pub etime: i64,
    /// The host's cluster and the system datastore when the record was opened.
    pub cid: i64,
    pub ds_id: i64,
    /// OpenNebula's `VMActions::Action` that ended the record (0: none), and who asked for it
    /// (-1: no one).
    pub action: i64,
    pub uid: i64,
    pub gid: i64,
    /// When its prolog, running and epilog started and ended (0: not yet, or not at all).
    pub times: PhaseTimes,
    /// The scheduler's plan that placed it and the action's index in it; -2 and -1 for a
    /// record opened by hand (`one.vm.deploy`, `one.vm.migrate`), -1 and the index for the
    /// scheduler's placements (`PlanManager`).
    pub plan_id: i64,
    pub action_id: i64,
    /// The transfer driver of its system datastore (`History::tm_mad_name`), read with it.
    pub tm_mad: String,
}

/// A history record's PSTIME, PETIME, RSTIME, RETIME, ESTIME and EETIME.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    pub pstime: i64,
    pub petime: i64,
    pub rstime: i64,
    pub retime: i64,
    pub estime: i64,
    pub eetime: i64,
}

/// The history columns [`History`] is read from, in its order.
const HISTORY_SELECT: &str = "seq, hid, hostname, vm_mad, stime, etime, cid, ds_id, action, \
     uid, gid, pstime, petime, rstime, retime, estime, eetime, plan_id, action_id";

/// A record's TM_MAD: its system datastore's, as `add_history` takes it (what
/// [`POOL_ROWS`] reads for its `h` record too).
const TM_MAD_OF: &str =
    "COALESCE((SELECT d.tm_mad FROM datastore_pool d WHERE d.oid = history.ds_id), '')";

impl History {
    /// A record with no action and no one who asked, in cluster 0 and system datastore 0.
    pub fn new(seq: i64, hid: i64, hostname: &str, vm_mad: &str, stime: i64, etime: i64) -> Self {
        History {
            seq,
            hid,
            hostname: hostname.to_string(),
            vm_mad: vm_mad.to_string(),
            stime,
            etime,
            cid: 0,
            ds_id: 0,
            action: 0,
            uid: -1,
            gid: -1,
            times: PhaseTimes::default(),
            plan_id: -2,
            action_id: -1,
            tm_mad: String::new(),
        }
    }

    /// A record read at column `c` of `r`, as [`HISTORY_SELECT`] lists them.
    fn read_at(r: &Row, c: usize) -> crate::sql::Result<History> {
        Ok(History {
            seq: r.get(c)?,
            hid: r.get(c + 1)?,
            hostname: r.get(c + 2)?,
            vm_mad: r.get(c + 3)?,
            stime: r.get(c + 4)?,
            etime: r.get(c + 5)?,
            cid: r.get(c + 6)?,
            ds_id: r.get(c + 7)?,
            action: r.get(c + 8)?,
            uid: r.get(c + 9)?,
            gid: r.get(c + 10)?,
            times: PhaseTimes {
                pstime: r.get(c + 11)?,
                petime: r.get(c + 12)?,
                rstime: r.get(c + 13)?,
                retime: r.get(c + 14)?,
                estime: r.get(c + 15)?,
                eetime: r.get(c + 16)?,
            },
            plan_id: r.get(c + 17)?,
            action_id: r.get(c + 18)?,
            tm_mad: r.get(c + 19)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmRow {
    pub head: Head,
    pub lock: Lock,
    pub state: i64,
    pub lcm_state: i64,
    pub prev_state: i64,
    pub prev_lcm_state: i64,
    pub stime: i64,
    pub etime: i64,
    pub cpu: f64,
    /// MB.
    pub memory: i64,
    pub template: String,
    pub user_template: String,
    /// OpenNebula's RESCHED: the scheduler is asked to move the VM.
    pub resched: bool,
    pub history: Vec<History>,
    /// Its newest monitoring record (the body's MONITORING).
    pub monitoring: Option<super::monitoring::VmRecord>,
}

has_owner!(lockable VmRow);

/// The history records a VM read carries, its latest: each operation on a placed VM adds a
/// record (`close_cp_history`), as fast as a user can call, and every read of the VM and its
/// `one.vm.info` body would otherwise grow with them. Accounting and showback read them all
/// ([`WHOLE_HISTORY_ROWS`]).
pub const HISTORY_KEPT: i64 = 1024;

fn read(c: &Conn, r: &Row) -> crate::sql::Result<VmRow> {
    read_keeping(c, r, HISTORY_KEPT)
}

fn read_whole_history(c: &Conn, r: &Row) -> crate::sql::Result<VmRow> {
    read_keeping(c, r, i64::MAX)
}

fn read_keeping(c: &Conn, r: &Row, kept: i64) -> crate::sql::Result<VmRow> {
    let (head, lock, col) = Lock::head_and_lock(r)?;
    let history = last_history(c, head.owned.oid, kept)?;
    let monitoring = super::monitoring::last_vm_record(c, head.owned.oid)?;
    own_columns(r, col, head, lock, history, monitoring)
}

/// The latest `kept` history records of VM `vid`, in order.
fn last_history(c: &Conn, vid: i64, kept: i64) -> crate::sql::Result<Vec<History>> {
    let mut hist = c.prepare_cached(&format!(
        "SELECT {HISTORY_SELECT}, tm_mad FROM (SELECT {HISTORY_SELECT}, {} AS tm_mad
           FROM history WHERE vid = ?1 ORDER BY seq DESC LIMIT ?2) latest ORDER BY seq",
        TM_MAD_OF
    ))?;
    let history = hist
        .query_map([vid, kept], |h| History::read_at(h, 0))?
        .collect::<Result<_, _>>()?;
    Ok(history)
}

fn own_columns(
    r: &Row,
    c: usize,
    head: Head,
    lock: Lock,
    history: Vec<History>,
    monitoring: Option<super::monitoring::VmRecord>,
) -> crate::sql::Result<VmRow> {
    Ok(VmRow {
        head,
        lock,
        state: r.get(c)?,
        lcm_state: r.get(c + 1)?,
        prev_state: r.get(c + 2)?,
        prev_lcm_state: r.get(c + 3)?,
        stime: r.get(c + 4)?,
        etime: r.get(c + 5)?,
        cpu: r.get(c + 6)?,
        memory: r.get(c + 7)?,
        template: r.get(c + 8)?,
        user_template: r.get(c + 9)?,
        resched: r.get::<i64>(c + 10)? != 0,
        history,
        monitoring,
    })
}

/// The VM columns every read of whole VMs selects.
const SELECT: &str = owned_select!(
    lockable "vm_pool",
    "v",
    "v.state, v.lcm_state, v.prev_state, v.prev_lcm_state, v.stime, v.etime, v.cpu, \
     v.memory, v.template, v.user_template, v.resched"
);

pub static ROWS: Rows<VmRow> = Rows {
    select: SELECT,
    alias: "v",
    read,
};

/// [`ROWS`] with every history record: what accounting and showback add up.
pub static WHOLE_HISTORY_ROWS: Rows<VmRow> = Rows {
    select: SELECT,
    alias: "v",
    read: read_whole_history,
};

/// The VMs as pool calls print them: with only their last placement record and newest
/// monitoring record (`VirtualMachine::to_xml_short` and `to_xml_extended(1, false)` print no
/// more), joined in the same statement. A pool of 10k VMs is then one query, not 20k more.
pub static POOL_ROWS: Rows<VmRow> = Rows {
    select: owned_select!(
        lockable "vm_pool",
        "v",
        // The last ten are `monitoring::VM_COLUMNS` (a test checks it).
        "v.state, v.lcm_state, v.prev_state, v.prev_lcm_state, v.stime, v.etime, v.cpu, \
         v.memory, v.template, v.user_template, v.resched, \
         h.seq, h.hid, h.hostname, h.vm_mad, h.stime, h.etime, h.cid, h.ds_id, h.action, \
         h.uid, h.gid, h.pstime, h.petime, h.rstime, h.retime, h.estime, h.eetime, \
         h.plan_id, h.action_id, \
         COALESCE((SELECT d.tm_mad FROM datastore_pool d WHERE d.oid = h.ds_id), ''), \
         m.vmid, m.last_poll, m.cpu, m.memory, m.netrx, m.nettx, \
         m.diskrdbytes, m.diskwrbytes, m.diskrdiops, m.diskwriops",
        " LEFT JOIN history h ON h.vid = v.oid \
           AND h.seq = (SELECT MAX(hl.seq) FROM history hl WHERE hl.vid = v.oid) \
         LEFT JOIN vm_monitoring m ON m.vmid = v.oid \
           AND m.last_poll = (SELECT MAX(ml.last_poll) FROM vm_monitoring ml WHERE ml.vmid = v.oid)"
    ),
    alias: "v",
    read: read_for_pool,
};

/// How [`POOL_ROWS`] finds a VM's last placement and newest monitoring record, and how
/// [`pool_select`] spells it for SQLite: the subquery picks the row's `rowid`, so the join
/// finds the row by it instead of seeking the `(vid, seq)` / `(vmid, last_poll)` key a second
/// time. MySQL has no `rowid`.
const LAST_BY_KEY: [(&str, &str); 2] = [
    (
        "h.seq = (SELECT MAX(hl.seq) FROM history hl WHERE hl.vid = v.oid)",
        "h.rowid = (SELECT hl.rowid FROM history hl WHERE hl.vid = v.oid \
         ORDER BY hl.seq DESC LIMIT 1)",
    ),
    (
        "m.last_poll = (SELECT MAX(ml.last_poll) FROM vm_monitoring ml WHERE ml.vmid = v.oid)",
        "m.rowid = (SELECT ml.rowid FROM vm_monitoring ml WHERE ml.vmid = v.oid \
         ORDER BY ml.last_poll DESC LIMIT 1)",
    ),
];

/// The select of [`POOL_ROWS`] for `backend`: on SQLite it seeks one index fewer per VM and
/// table (`LAST_BY_KEY`); the rows are the same (a test reads both).
pub fn pool_select(backend: crate::Backend) -> &'static str {
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        LAST_BY_KEY
            .iter()
            .fold(POOL_ROWS.select.to_string(), |sql, (by_key, by_rowid)| {
                sql.replace(by_key, by_rowid)
            })
    });
    match backend {
        crate::Backend::Sqlite => SQLITE.as_str(),
        crate::Backend::Mysql => POOL_ROWS.select,
    }
}

/// The VM columns [`own_columns`] reads, after the head and lock.
const OWN_COLUMNS: usize = 11;
/// The history columns of [`POOL_ROWS`], after the VM's (TM_MAD last).
const HISTORY_COLUMNS: usize = 20;

/// Reads nothing but its row: the pool bodies are kept under a fingerprint of the row's
/// columns (`oned`'s `vm_pool_cache`), so a VmRow made from anything else would go stale there.
fn read_for_pool(_: &Conn, r: &Row) -> crate::sql::Result<VmRow> {
    let (head, lock, col) = Lock::head_and_lock(r)?;
    let h = col + OWN_COLUMNS;
    let history = match r.get::<Option<i64>>(h)? {
        None => Vec::new(),
        Some(_) => vec![History::read_at(r, h)?],
    };
    let m = h + HISTORY_COLUMNS;
    let monitoring = match r.get::<Option<i64>>(m)? {
        None => None,
        Some(_) => Some(super::monitoring::read_vm_at(r, m)?),
    };
    own_columns(r, col, head, lock, history, monitoring)
}

/// What a new VM is made of.
pub struct NewVm {
    /// Empty: `<prefix>-<oid>`.
    pub name: String,
    /// What an unnamed VM's name starts with: its template's name when instantiated, else
    /// `one` (`VirtualMachine::insert`'s TEMPLATE_NAME).
    pub prefix: String,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub state: i64,
    /// PENDING or HOLD: what a VM waiting in CLONING was allocated as
    /// (`VirtualMachinePool::allocate` sets it before `insert` picks CLONING).
    pub prev_state: i64,
    pub stime: i64,
    pub cpu: f64,
    pub memory: i64,
    pub template: String,
    pub user_template: String,
    /// [`super::quota::system_disk_size_of`] the template.
    pub disk_size: f64,
}

/// Stands in a new VM's templates for its name, which is `<prefix>-<oid>` when it has none
/// (`$NAME` in its CONTEXT), until its insert writes them.
pub const NAME_MARK: &str = "__ONEHA_VM_NAME__";
/// Stands in a new VM's templates for its id (`$VMID`).
pub const ID_MARK: &str = "__ONEHA_VMID__";

/// The VM's name as its insert computes it: `?1`, or `<?12>-<oid>`.
const NEW_NAME: &str = "CASE WHEN ?1 = '' THEN ?12 || '-' || (last_oid + 1) ELSE ?1 END";

pub fn insert(v: NewVm) -> SqlStmt {
    // Only a template that holds a mark pays for the replacements.
    let marked = |col: &str| {
        format!("REPLACE(REPLACE({col}, '{NAME_MARK}', {NEW_NAME}), '{ID_MARK}', last_oid + 1)")
    };
    let (template, user_template) = if v.template.contains(NAME_MARK)
        || v.template.contains(ID_MARK)
        || v.user_template.contains(NAME_MARK)
        || v.user_template.contains(ID_MARK)
    {
        (marked("?9"), marked("?11"))
    } else {
        ("?9".to_string(), "?11".to_string())
    };
    insert_next(
        TABLE,
        "name, uid, gid, perms, state, lcm_state, prev_state, prev_lcm_state, stime, cpu, \
         memory, template, disk_size, user_template",
        &format!(
            "{NEW_NAME}, ?2, ?3, ?4, ?5, 0, ?13, 0, ?6, ?7, ?8, {template}, ?10, {user_template}"
        ),
        vec![
            SqlValue::Text(v.name),
            SqlValue::Int(v.uid),
            SqlValue::Int(v.gid),
            SqlValue::Int(v.perms),
            SqlValue::Int(v.state),
            SqlValue::Int(v.stime),
            SqlValue::Real(v.cpu),
            SqlValue::Int(v.memory),
            SqlValue::Text(v.template),
            SqlValue::Real(v.disk_size),
            SqlValue::Text(v.user_template),
            SqlValue::Text(v.prefix),
            SqlValue::Int(v.prev_state),
        ],
    )
}

/// Recomputes every host's usage from the VMs placed on it: accounting can never drift. It
/// reads every placed VM, so a write that moves one VM recounts only the hosts it touches
/// (`recount_host_ids`, `recount_vm_host`, and the recount `move_stmts` does).
pub fn recount_hosts() -> SqlStmt {
    recount("", "1 = 1", Vec::new())
}

/// Recounts hosts `hids` (the figures `recount_hosts` gives them).
pub fn recount_host_ids(hids: &[i64]) -> SqlStmt {
    let marks: Vec<String> = (0..hids.len()).map(|i| format!("?{}", i + 4)).collect();
    if marks.is_empty() {
        return recount("WHERE 1 = 0", "1 = 1", Vec::new());
    }
    recount(
        &format!("WHERE oid IN ({})", marks.join(", ")),
        "1 = 1",
        hids.iter().map(|&h| SqlValue::Int(h)).collect(),
    )
}

/// Recounts the host VM `vid` is placed on now, if any.
pub fn recount_vm_host(vid: i64) -> SqlStmt {
    recount(
        "WHERE oid = (SELECT hid FROM vm_pool WHERE oid = ?4)",
        "1 = 1",
        vec![SqlValue::Int(vid)],
    )
}

/// Recounts, just before the VMs `leavers` (a condition over `vm_pool` with `?4`...) are
/// unplaced, their hosts as they will be without them: once unplaced their host is no longer
/// known. The unplacing statement must follow at once and move exactly these VMs.
fn recount_before_leaving(leavers: &str, params: Vec<SqlValue>) -> SqlStmt {
    recount(
        &format!("WHERE oid IN (SELECT hid FROM vm_pool WHERE {leavers})"),
        &format!("NOT ({leavers})"),
        params,
    )
}

/// Sets the usage of the hosts `hosts` (a WHERE clause over `host_pool`) from their placed VMs
/// that satisfy `keep`; `params` are `?4`...
fn recount(hosts: &str, keep: &str, params: Vec<SqlValue>) -> SqlStmt {
    // `hid >= 0` (true of every placed VM) as `vm_pool_host` is defined: its index holds only
    // placed VMs, and SQLite uses it only for a query that says so.
    let placed = format!("hid = host_pool.oid AND hid >= 0 AND state IN (?1, ?2, ?3) AND {keep}");
    let mut all: Vec<SqlValue> = ON_HOST.iter().map(|s| SqlValue::Int(s.as_i64())).collect();
    all.extend(params);
    SqlStmt::new(
        &format!(
            "UPDATE host_pool SET
    cpu_usage = (SELECT COALESCE(SUM(CAST(ROUND(cpu * 100) AS INTEGER)), 0) FROM vm_pool
                 WHERE {placed}),
    mem_usage = (SELECT COALESCE(SUM(memory * 1024), 0) FROM vm_pool WHERE {placed}),
    running_vms = (SELECT count(*) FROM vm_pool WHERE {placed}) {hosts}"
        ),
        all,
    )
}

/// A state change of VM `oid` from exactly (`from_state`, `from_lcm`): a concurrent change
/// makes it match nothing. `done` stamps ETIME at `now`; `leaves_host` unplaces the VM and
/// closes its open history record.
pub struct Move {
    pub oid: i64,
    pub from: (i64, i64),
    pub to: (i64, i64),
    pub now: i64,
    pub leaves_host: bool,
}

pub fn move_stmts(m: &Move) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    if m.leaves_host {
        stmts.push(recount_before_leaving(
            "oid = ?4 AND state = ?5 AND lcm_state = ?6",
            vec![
                SqlValue::Int(m.oid),
                SqlValue::Int(m.from.0),
                SqlValue::Int(m.from.1),
            ],
        ));
    }
    stmts.push(
        SqlStmt::new(
            "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = ?2,
            lcm_state = ?3, etime = CASE WHEN ?2 = ?8 THEN ?6 ELSE etime END,
            hid = CASE WHEN ?7 THEN -1 ELSE hid END
         WHERE oid = ?1 AND state = ?4 AND lcm_state = ?5",
            vec![
                SqlValue::Int(m.oid),
                SqlValue::Int(m.to.0),
                SqlValue::Int(m.to.1),
                SqlValue::Int(m.from.0),
                SqlValue::Int(m.from.1),
                SqlValue::Int(m.now),
                SqlValue::Int(m.leaves_host as i64),
                SqlValue::Int(VmState::Done.as_i64()),
            ],
        )
        .must_match(),
    );
    stmts.extend(events(
        m.to,
        "o.oid = ?6",
        vec![SqlValue::Int(m.oid)],
        m.now,
    ));
    if m.to.0 == VmState::Done.as_i64() {
        stmts.push(super::lease::free_done_vms());
        stmts.push(super::secgroup::release_done_vms());
        stmts.extend(super::image::release_done_vms(m.now));
    }
    if m.leaves_host {
        stmts.push(SqlStmt::new(
            "UPDATE history SET etime = ?2 WHERE vid = ?1 AND etime = 0",
            vec![SqlValue::Int(m.oid), SqlValue::Int(m.now)],
        ));
    }
    stmts
}

/// Where a VM is deployed from, as `one.vm.deploy` and the scheduler read it: its STATE and
/// the action that ended its last history record (`None`: it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployFrom {
    pub state: i64,
    pub last_action: Option<i64>,
}

impl DeployFrom {
    /// The PROLOG the deployment starts with, as `LifeCycleManager::trigger_deploy` picks it by
    /// the action that ended the VM's previous record: a VM stopped (undeployed) has its disks
    /// brought back, PROLOG_RESUME (PROLOG_UNDEPLOY), whether deployed as it is or PENDING
    /// again after `resume`, held and released or not; else PROLOG.
    pub fn prolog(self) -> i64 {
        match self.last_action {
            Some(wire::vm_action::STOP) => LcmState::PrologResume.as_i64(),
            Some(wire::vm_action::UNDEPLOY | wire::vm_action::UNDEPLOY_HARD) => {
                LcmState::PrologUndeploy.as_i64()
            }
            _ => LcmState::Prolog.as_i64(),
        }
    }

    /// Whether the VM comes back from STOPPED or UNDEPLOYED: its disks are brought back and its
    /// NICs keep their addresses (`VirtualMachineDeploy` leases nothing for it).
    pub fn returns(self) -> bool {
        self.prolog() != LcmState::Prolog.as_i64()
    }
}

/// A deployment of VM `oid` on host `hid`.
#[derive(Debug, Clone, Copy)]
pub struct Deploy {
    pub oid: i64,
    pub hid: i64,
    /// Where the VM must still be (PENDING, HOLD, STOPPED or UNDEPLOYED).
    pub from: DeployFrom,
    /// The host's MAX_CPU and MAX_MEM (see `host::room`) its usage with the VM's must stay
    /// within, if given.
    pub room: Option<(i64, i64)>,
    /// An administrator's `one.vm.deploy`: any host but an OFFLINE one, as OpenNebula's
    /// `get_host_information` allows; the scheduler takes INIT or MONITORED hosts only.
    pub by_hand: bool,
    /// The system datastore its history record names; -1: the default of the host's cluster
    /// (its lowest-id system datastore), as the scheduler picks it.
    pub ds_id: i64,
    /// The scheduler's placement: the action's index in its plan (PLAN_ID -1); `None` by hand
    /// (PLAN_ID -2, ACTION_ID -1).
    pub plan_action: Option<i64>,
    pub now: i64,
}

/// The statements that place a VM (in [`DeployFrom::prolog`]) if both still allow it.
pub fn deploy_stmts(d: &Deploy) -> Vec<SqlStmt> {
    let (max_cpu, max_mem) = d.room.unwrap_or_default();
    let (oid, hid, now) = (d.oid, d.hid, d.now);
    let prolog = (VmState::Active.as_i64(), d.from.prolog());
    let mut stmts = vec![
        SqlStmt::new(
            "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = ?4,
                lcm_state = ?5, hid = ?2
             WHERE oid = ?1 AND state = ?6
               AND EXISTS (SELECT 1 FROM host_pool h WHERE h.oid = ?2
                 AND (h.state IN (?8, ?9) OR (?12 = 1 AND h.state <> ?7))
                 AND (?3 = 0 OR (h.cpu_usage + CAST(ROUND(vm_pool.cpu * 100) AS INTEGER) <= ?10
                   AND h.mem_usage + vm_pool.memory * 1024 <= ?11)))",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(hid),
                SqlValue::Int(d.room.is_some() as i64),
                SqlValue::Int(prolog.0),
                SqlValue::Int(prolog.1),
                SqlValue::Int(d.from.state),
                SqlValue::Int(HostState::Offline.as_i64()),
                SqlValue::Int(HostState::Init.as_i64()),
                SqlValue::Int(HostState::Monitored.as_i64()),
                SqlValue::Int(max_cpu),
                SqlValue::Int(max_mem),
                SqlValue::Int(d.by_hand as i64),
            ],
        )
        .must_match(),
        SqlStmt::new(
            &format!(
                "INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime, pstime, cid, ds_id,
                                      plan_id, action_id)
                 SELECT ?1, COALESCE((SELECT MAX(seq) + 1 FROM history WHERE vid = ?1), 0),
                        h.oid, h.name, h.vm_mad, ?3, ?3, h.cluster_id,
                        CASE WHEN ?4 >= 0 THEN ?4 ELSE COALESCE({}, 0) END, ?5, ?6
                 FROM host_pool h WHERE h.oid = ?2",
                super::cluster::default_system_ds_sql("h.cluster_id")
            ),
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(hid),
                SqlValue::Int(now),
                SqlValue::Int(d.ds_id),
                SqlValue::Int(if d.plan_action.is_some() { -1 } else { -2 }),
                SqlValue::Int(d.plan_action.unwrap_or(-1)),
            ],
        ),
        recount_host_ids(&[hid]),
    ];
    stmts.extend(events(prolog, "o.oid = ?6", vec![SqlValue::Int(oid)], now));
    stmts
}

/// The state hooks' executions VMs `which` chooses (SQL over `o`, with `?6`...) start by
/// moving to `to`.
/// A VM leaving CLONING or CLONING_FAILURE for `to` (`LifeCycleManager::
/// trigger_disk_lock_success`): `set_state` alone, so PREV_STATE stays what it was allocated
/// as; guarded on the state read.
pub fn settle_cloning(oid: i64, from: i64, to: i64, now: i64) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "UPDATE vm_pool SET state = ?2 WHERE oid = ?1 AND state = ?3",
        vec![SqlValue::Int(oid), SqlValue::Int(to), SqlValue::Int(from)],
    )
    .must_match()];
    stmts.extend(events(
        (to, LcmState::LcmInit.as_i64()),
        "o.oid = ?6",
        vec![SqlValue::Int(oid)],
        now,
    ));
    stmts
}

fn events(to: (i64, i64), which: &str, params: Vec<SqlValue>, now: i64) -> Vec<SqlStmt> {
    let name = |s: Option<&'static str>| s.unwrap_or("UNKNOWN");
    super::hook::state_events(super::hook::StateChange {
        resource: "VM",
        table: "vm_pool",
        state: name(VmState::from_i64(to.0).map(VmState::name)),
        lcm_state: name(LcmState::from_i64(to.1).map(LcmState::name)),
        which,
        params,
        now,
        object: "",
    })
}

/// Who asked for an action recorded in a history record: OpenNebula's `VMActions::Action`
/// number and the caller's user and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub action: i64,
    pub uid: i64,
    pub gid: i64,
}

/// Which history record of a VM a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The open one (none once the VM left its host).
    Open,
    /// Record SEQ, open or not: its last, as the caller read it in the VM it changes in the
    /// same write.
    Seq(i64),
}

impl Record {
    /// The condition on `history` with `?1` the VM and `?2` the SEQ (unused when open).
    fn condition(self) -> &'static str {
        match self {
            Record::Open => "vid = ?1 AND etime = 0 AND ?2 = ?2",
            Record::Seq(_) => "vid = ?1 AND seq = ?2",
        }
    }

    fn seq(self) -> i64 {
        match self {
            Record::Open => -1,
            Record::Seq(seq) => seq,
        }
    }
}

/// `VirtualMachine::set_action` on a record of VM `vid`.
pub fn set_action(vid: i64, record: Record, asked: Asked) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "UPDATE history SET action = ?3, uid = ?4, gid = ?5 WHERE {}",
            record.condition()
        ),
        vec![
            SqlValue::Int(vid),
            SqlValue::Int(record.seq()),
            SqlValue::Int(asked.action),
            SqlValue::Int(asked.uid),
            SqlValue::Int(asked.gid),
        ],
    )
}

/// `SET` of phase-time `columns` to parameter `?n`.
fn stamps(columns: &[&str], n: usize) -> String {
    let set: Vec<String> = columns.iter().map(|c| format!("{c} = ?{n}")).collect();
    set.join(", ")
}

/// Stamps `columns` (phase times) with `now` on a record of VM `vid`.
pub fn stamp(vid: i64, record: Record, columns: &[&str], now: i64) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "UPDATE history SET {} WHERE {}",
            stamps(columns, 3),
            record.condition()
        ),
        vec![
            SqlValue::Int(vid),
            SqlValue::Int(record.seq()),
            SqlValue::Int(now),
        ],
    )
}

/// VM `vid`'s open history record closed at `now` and a copy of it opened on the same host,
/// as OpenNebula does for an operation on a placed VM: `DispatchManager::close_cp_history`
/// records `closing` on the closed record (attach, snapshot, resize...); a resume
/// (`LifeCycleManager::trigger_restore`/`trigger_restart`) records `opening` on the new one.
/// Nothing if the VM has no open record.
pub fn close_cp_history(
    vid: i64,
    closing: Option<Asked>,
    opening: Option<Asked>,
    now: i64,
) -> Vec<SqlStmt> {
    let none = Asked {
        action: 0,
        uid: -1,
        gid: -1,
    };
    let (c, o) = (closing, opening.unwrap_or(none));
    let mut close = vec![SqlValue::Int(vid), SqlValue::Int(now)];
    // `close_cp_history` ends the running time if it was on (RETIME); a resume's close
    // leaves it (it ended with the poweroff or suspend).
    let sql = match c {
        Some(c) => {
            close.extend([c.action, c.uid, c.gid].map(SqlValue::Int));
            "UPDATE history SET etime = ?2, action = ?3, uid = ?4, gid = ?5,
                 retime = CASE WHEN retime = 0 THEN ?2 ELSE retime END
             WHERE vid = ?1 AND etime = 0"
        }
        None => "UPDATE history SET etime = ?2 WHERE vid = ?1 AND etime = 0",
    };
    // The copy runs from now; after an operation on a VM that was not running (its RETIME was
    // set before now) it is not running either (`set_retime`).
    let retime = if c.is_some() {
        "CASE WHEN retime < ?2 THEN ?2 ELSE 0 END"
    } else {
        "0"
    };
    vec![
        SqlStmt::new(sql, close),
        // A copy of the record the update closed: the last one, ended now, of a VM on a host
        // (whose last record is the open one; a VM off its host, whose last record may have
        // ended in this same second, gets none).
        SqlStmt::new(
            &format!(
                "INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime, cid, ds_id, action,
                     uid, gid, rstime, retime)
                 SELECT ?1, seq + 1, hid, hostname, vm_mad, ?2, cid, ds_id, ?3, ?4, ?5, ?2,
                     {retime}
                 FROM history WHERE vid = ?1 AND etime = ?2
                   AND seq = (SELECT MAX(l.seq) FROM history l WHERE l.vid = ?1)
                   AND EXISTS (SELECT 1 FROM vm_pool v WHERE v.oid = ?1 AND v.hid >= 0)"
            ),
            vec![
                SqlValue::Int(vid),
                SqlValue::Int(now),
                SqlValue::Int(o.action),
                SqlValue::Int(o.uid),
                SqlValue::Int(o.gid),
            ],
        ),
    ]
}

/// A PENDING VM waiting for a host.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingVm {
    pub oid: i64,
    pub cpu: f64,
    /// MB.
    pub memory: i64,
    /// Its template, where its disks and NICs name their images and networks.
    pub template: String,
    /// Its owner, whose rights choose the networks of its NICs in auto mode.
    pub uid: i64,
    /// The action that ended its last history record, if it has one: a VM stopped or
    /// undeployed and resumed is deployed with its disks brought back ([`DeployFrom::prolog`]).
    pub last_action: Option<i64>,
}

impl PendingVm {
    pub fn deploy_from(&self) -> DeployFrom {
        DeployFrom {
            state: VmState::Pending.as_i64(),
            last_action: self.last_action,
        }
    }
}

/// Up to `?2` VMs in state `?1` (PENDING), lowest id first: a search of `vm_pool_state`. A
/// PENDING VM's LCM state is always LCM_INIT (0), as in OpenNebula: every move to PENDING sets
/// it. Saying so makes both columns of the index equal, so its entries come in id order and the
/// search stops after `?2` of them; with `state` alone SQLite read every pending VM's row and
/// sorted them, every period (at 20k pending VMs, 1-2 % of a leader's CPU under writes).
pub const PENDING: &str = "SELECT oid, cpu, memory, template,
       (SELECT h.action FROM history h WHERE h.vid = vm_pool.oid ORDER BY h.seq DESC LIMIT 1),
       uid
     FROM vm_pool
     WHERE state = ?1 AND lcm_state = 0 AND oid > ?3 ORDER BY oid LIMIT ?2";

/// Up to `limit` PENDING VMs of ids above `after`, lowest first.
pub fn pending(c: &Conn, after: i64, limit: usize) -> crate::sql::Result<Vec<PendingVm>> {
    let mut st = c.prepare_cached(PENDING)?;
    st.query_map([VmState::Pending.as_i64(), limit as i64, after], |r| {
        Ok(PendingVm {
            oid: r.get(0)?,
            cpu: r.get(1)?,
            memory: r.get(2)?,
            template: r.get(3)?,
            last_action: r.get(4)?,
            uid: r.get(5)?,
        })
    })?
    .collect()
}

/// The VMs not DONE whose template holds scheduled actions, lowest id first (`?1`: DONE, `?2`:
/// how many): what the leader's scheduled-action runner asks every period. On SQLite the
/// partial index `vm_pool_sched` holds just those VMs; its WHERE is this query's LIKE term,
/// word for word, or SQLite would not use it.
pub const WITH_SCHED_ACTIONS: &str = "SELECT oid, state, lcm_state, template, uid, gid FROM vm_pool
     WHERE state <> ?1 AND template LIKE '%SCHED_ACTION%' AND oid > ?3 ORDER BY oid LIMIT ?2";

/// Whether any VM is ACTIVE (`?1`) in another LCM state than RUNNING (`?2`). Two ranges of the
/// index `vm_pool_state`, below and above RUNNING: `lcm_state != ?2` read every RUNNING VM's entry
/// (1.2 ms at 10k VMs, against 0.03 ms).
pub const ANY_MOVING: &str =
    "SELECT EXISTS (SELECT 1 FROM vm_pool WHERE state = ?1 AND lcm_state < ?2)
     OR EXISTS (SELECT 1 FROM vm_pool WHERE state = ?1 AND lcm_state > ?2)";

/// Whether any VM is in a transient ACTIVE state (anything but RUNNING) a driver step moves.
pub fn any_moving(c: &Conn) -> crate::sql::Result<bool> {
    c.prepare_cached(ANY_MOVING)?.query_row(
        [VmState::Active.as_i64(), LcmState::Running.as_i64()],
        |r| r.get(0),
    )
}

/// Moves every VM in `from` to `to` (a driver step), with the same rules as [`move_stmts`]
/// for one VM.
pub fn step_all(from: (i64, i64), to: (i64, i64), leaves_host: bool, now: i64) -> Vec<SqlStmt> {
    let (fs, fl) = from;
    let (ts, tl) = to;
    let mut stmts = Vec::new();
    let stamped = phase_stamps(from, to);
    if !stamped.is_empty() {
        stmts.push(SqlStmt::new(
            &format!(
                "UPDATE history SET {} WHERE etime = 0 AND vid IN
                   (SELECT oid FROM vm_pool WHERE state = ?1 AND lcm_state = ?2)",
                stamps(stamped, 3)
            ),
            vec![SqlValue::Int(fs), SqlValue::Int(fl), SqlValue::Int(now)],
        ));
    }
    // `trigger_deploy_success` from a boot: the record's action is done (`clear_action`).
    let booted = [
        LcmState::Boot,
        LcmState::BootPoweroff,
        LcmState::BootUnknown,
        LcmState::BootSuspended,
        LcmState::BootStopped,
        LcmState::BootUndeploy,
        LcmState::BootMigrate,
    ];
    if to == (VmState::Active.as_i64(), LcmState::Running.as_i64())
        && booted.iter().any(|b| b.as_i64() == fl)
    {
        stmts.push(SqlStmt::new(
            "UPDATE history SET action = 0, uid = -1, gid = -1 WHERE etime = 0 AND vid IN
               (SELECT oid FROM vm_pool WHERE state = ?1 AND lcm_state = ?2)",
            vec![SqlValue::Int(fs), SqlValue::Int(fl)],
        ));
    }
    if leaves_host {
        stmts.push(SqlStmt::new(
            "UPDATE history SET etime = ?3 WHERE etime = 0 AND vid IN
               (SELECT oid FROM vm_pool WHERE state = ?1 AND lcm_state = ?2)",
            vec![SqlValue::Int(fs), SqlValue::Int(fl), SqlValue::Int(now)],
        ));
    }
    stmts.extend(events(
        to,
        "o.state = ?6 AND o.lcm_state = ?7",
        vec![SqlValue::Int(fs), SqlValue::Int(fl)],
        now,
    ));
    if leaves_host {
        stmts.push(recount_before_leaving(
            "state = ?4 AND lcm_state = ?5",
            vec![SqlValue::Int(fs), SqlValue::Int(fl)],
        ));
    }
    stmts.push(SqlStmt::new(
        "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = ?3,
            lcm_state = ?4, hid = CASE WHEN ?5 THEN -1 ELSE hid END,
            etime = CASE WHEN ?3 = ?7 THEN ?6 ELSE etime END
         WHERE state = ?1 AND lcm_state = ?2",
        vec![
            SqlValue::Int(fs),
            SqlValue::Int(fl),
            SqlValue::Int(ts),
            SqlValue::Int(tl),
            SqlValue::Int(leaves_host as i64),
            SqlValue::Int(now),
            SqlValue::Int(VmState::Done.as_i64()),
        ],
    ));
    if ts == VmState::Done.as_i64() {
        stmts.push(super::lease::free_done_vms());
        stmts.push(super::secgroup::release_done_vms());
        stmts.extend(super::image::release_done_vms(now));
    }
    stmts
}

/// The phase times a driver step from `from` to `to` stamps on the open history record, as
/// `LifeCycleManager`'s callbacks set them: a prolog's end starts the running time, a
/// shutdown or save ends it and starts the epilog, whose end ends the record.
pub fn phase_stamps(from: (i64, i64), to: (i64, i64)) -> &'static [&'static str] {
    use LcmState as L;
    let (active, poweroff, suspended) = (
        VmState::Active.as_i64(),
        VmState::Poweroff.as_i64(),
        VmState::Suspended.as_i64(),
    );
    // The LCM state of an ACTIVE VM; `None` for the others.
    let lcm_of = |(st, lc): (i64, i64)| (st == active).then(|| L::from_i64(lc)).flatten();
    let (fl, tl) = (lcm_of(from), lcm_of(to));
    match (fl, tl) {
        (Some(L::SaveMigrate), Some(L::PrologMigrate)) => &["pstime"],
        (Some(_), Some(L::Boot | L::BootStopped | L::BootUndeploy | L::BootMigrate)) => {
            &["petime", "rstime"]
        }
        (Some(L::PrologMigratePoweroff | L::PrologMigrateSuspend), None) => &["petime"],
        (Some(L::Migrate), Some(L::Running)) => &["rstime"],
        (
            Some(L::Shutdown | L::ShutdownUndeploy | L::SaveStop),
            Some(L::Epilog | L::EpilogUndeploy | L::EpilogStop),
        ) => &["estime", "retime"],
        (Some(L::ShutdownPoweroff), None) if to.0 == poweroff => &["retime"],
        (Some(L::SaveSuspend), None) if to.0 == suspended => &["retime"],
        (Some(L::Epilog | L::EpilogStop | L::EpilogUndeploy), None) => &["eetime"],
        _ => &[],
    }
}

/// The name of the host VM `oid` was last placed on, if it ever was.
pub fn last_hostname(c: &Conn, oid: i64) -> crate::sql::Result<Option<String>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT hostname FROM history WHERE vid = ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row([oid], |r| r.get(0))
        .optional()
}

/// VM `oid` gets `cpu` and `memory` (`one.vm.resize`), only while it is still in `state` with
/// the size it was resized from.
pub fn resize_stmt(oid: i64, state: (i64, i64), from: (f64, i64), to: (f64, i64)) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET cpu = ?2, memory = ?3
         WHERE oid = ?1 AND state = ?4 AND lcm_state = ?5 AND cpu = ?6 AND memory = ?7",
        vec![
            SqlValue::Int(oid),
            SqlValue::Real(to.0),
            SqlValue::Int(to.1),
            SqlValue::Int(state.0),
            SqlValue::Int(state.1),
            SqlValue::Real(from.0),
            SqlValue::Int(from.1),
        ],
    )
    .must_match()
}

/// Matches only while VM `vid`'s host is within its capacity (after a recount).
pub fn host_fits(vid: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT 1 FROM host_pool h WHERE h.oid = (SELECT hid FROM vm_pool WHERE oid = ?1)
         AND h.cpu_usage <= h.total_cpu AND h.mem_usage <= h.total_mem",
        vec![SqlValue::Int(vid)],
    )
    .must_match()
}

/// Sets VM `oid`'s rescheduling flag, only while it is in one of `states` ((state, lcm) pairs):
/// a VM that moved on meanwhile is not flagged.
pub fn set_resched(oid: i64, on: bool, states: &[(i64, i64)]) -> SqlStmt {
    let mut params = vec![SqlValue::Int(oid), SqlValue::Int(i64::from(on))];
    let mut alternatives = Vec::new();
    for (st, lcm) in states {
        let n = params.len();
        alternatives.push(format!("(state = ?{} AND lcm_state = ?{})", n + 1, n + 2));
        params.push(SqlValue::Int(*st));
        params.push(SqlValue::Int(*lcm));
    }
    SqlStmt::new(
        &format!(
            "UPDATE vm_pool SET resched = ?2 WHERE oid = ?1 AND ({})",
            alternatives.join(" OR ")
        ),
        params,
    )
    .must_match()
}

/// Up to `limit` VMs of ids above `after`, lowest first, flagged for rescheduling where the
/// flag can be acted on: RUNNING, or POWEROFF (`resched` refuses the flag elsewhere, but a VM
/// may have moved on since).
pub fn rescheduled(c: &Conn, after: i64, limit: usize) -> crate::sql::Result<Vec<VmRow>> {
    let mut st = c.prepare_cached(&rescheduled_query(limit))?;
    let params = [
        SqlValue::Int(VmState::Active.as_i64()),
        SqlValue::Int(LcmState::Running.as_i64()),
        SqlValue::Int(VmState::Poweroff.as_i64()),
        SqlValue::Int(after),
    ];
    let found = st.query_map(params, |r| (ROWS.read)(c, r))?;
    found.collect()
}

/// [`rescheduled`]'s query: `resched = 1` as `vm_pool_resched`'s condition is written, or SQLite
/// would not use that index.
pub(crate) fn rescheduled_query(limit: usize) -> String {
    format!(
        "{} WHERE v.resched = 1 AND ((v.state = ?1 AND v.lcm_state = ?2) OR v.state = ?3) \
         AND v.oid > ?4 ORDER BY v.oid LIMIT {limit}",
        ROWS.select
    )
}

/// Clears VM `oid`'s rescheduling flag: the scheduler is moving it.
pub fn resched_done(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET resched = 0 WHERE oid = ?1 AND resched = 1",
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}

/// Clears VM `oid`'s rescheduling flag if it is set: the actions after which oned
/// `set_resched(false)` (reboot, poweroff, suspend, stop, undeploy, terminate, migrate).
pub fn clear_resched(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET resched = 0 WHERE oid = ?1 AND resched = 1",
        vec![SqlValue::Int(oid)],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;

    /// Every host's (cpu_usage, mem_usage, running_vms), by id.
    fn shares(c: &Conn) -> Vec<(i64, i64, i64, i64)> {
        let mut st = c
            .prepare("SELECT oid, cpu_usage, mem_usage, running_vms FROM host_pool ORDER BY oid")
            .unwrap();
        st.query_map([] as [SqlValue; 0], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Applies `stmts` as one write, then checks the hosts hold what a full recount gives.
    fn write_then_compare(c: &Conn, stmts: Vec<SqlStmt>, what: &str) -> Vec<(i64, i64, i64, i64)> {
        let out = crate::txn::apply_txn(c, &crate::SqlTxn { stmts }).unwrap();
        assert!(
            matches!(out, crate::TxnOutcome::Done { .. }),
            "{what}: {out:?}"
        );
        let partial = shares(c);
        crate::txn::run_all(c, &[recount_hosts()]).unwrap();
        assert_eq!(partial, shares(c), "after {what}");
        partial
    }

    #[test]
    fn driver_steps_stamp_the_phase_times_lifecycle_callbacks_stamp() {
        let a = |l: LcmState| (VmState::Active.as_i64(), l.as_i64());
        let off = |s: VmState| (s.as_i64(), 0);
        type Step = ((i64, i64), (i64, i64), &'static [&'static str]);
        let cases: [Step; 9] = [
            (
                a(LcmState::Prolog),
                a(LcmState::Boot),
                &["petime", "rstime"],
            ),
            (
                a(LcmState::PrologResume),
                a(LcmState::BootStopped),
                &["petime", "rstime"],
            ),
            (
                a(LcmState::SaveMigrate),
                a(LcmState::PrologMigrate),
                &["pstime"],
            ),
            (a(LcmState::Migrate), a(LcmState::Running), &["rstime"]),
            (
                a(LcmState::Shutdown),
                a(LcmState::Epilog),
                &["estime", "retime"],
            ),
            (
                a(LcmState::ShutdownPoweroff),
                off(VmState::Poweroff),
                &["retime"],
            ),
            (a(LcmState::EpilogStop), off(VmState::Stopped), &["eetime"]),
            (a(LcmState::Boot), a(LcmState::Running), &[]),
            (a(LcmState::Hotplug), a(LcmState::Running), &[]),
        ];
        for (from, to, want) in cases {
            assert_eq!(phase_stamps(from, to), want, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn an_operation_closes_a_placed_vms_record_and_copies_it_and_none_off_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            // VM 1 on host 4 since 10 (cluster 100, system datastore 0); VM 2 left host 4 at 20.
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template, hid)
                 VALUES (1, 'a', 0, 0, 384, 3, 3, 3, 3, 0, 1, 64, '', 4),
                        (2, 'b', 0, 0, 384, 9, 0, 9, 0, 0, 1, 64, '', -1);
                 INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime, etime, cid)
                 VALUES (1, 0, 4, 'h', 'dummy', 10, 0, 100),
                        (2, 0, 4, 'h', 'dummy', 10, 20, 100);",
            )
            .unwrap();
            let asked = Asked {
                action: 35,
                uid: 2,
                gid: 1,
            };
            crate::txn::run_all(&c, &close_cp_history(1, Some(asked), None, 20)).unwrap();
            crate::txn::run_all(&c, &close_cp_history(2, Some(asked), None, 20)).unwrap();
            let records = |vid: i64| {
                let mut st = c
                    .prepare(
                        "SELECT seq, stime, etime, cid, action, uid, gid FROM history
                         WHERE vid = ?1 ORDER BY seq",
                    )
                    .unwrap();
                st.query_map([vid], |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                        r.get::<i64>(4)?,
                        r.get::<i64>(5)?,
                        r.get::<i64>(6)?,
                    ))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
            };
            assert_eq!(
                records(1),
                [(0, 10, 20, 100, 35, 2, 1), (1, 20, 0, 100, 0, -1, -1)]
            );
            assert_eq!(records(2), [(0, 10, 20, 100, 0, -1, -1)], "off its host");
        }
    }

    #[test]
    fn recounting_the_hosts_a_write_touches_gives_the_full_recount_figures() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        let (active, running) = (VmState::Active.as_i64(), LcmState::Running.as_i64());
        let (poweroff, init) = (VmState::Poweroff.as_i64(), LcmState::LcmInit.as_i64());
        let epilog = LcmState::Epilog.as_i64();
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            let monitored = HostState::Monitored.as_i64();
            let mut sql = String::new();
            for h in 0..3 {
                sql.push_str(&format!(
                    "INSERT INTO host_pool (oid, name, state, prev_state, im_mad, vm_mad, \
                       cluster_id, total_cpu, total_mem) \
                     VALUES ({h}, 'h{h}', {monitored}, {monitored}, 'dummy', 'dummy', 0, 10000, \
                       100000000);"
                ));
            }
            // VM 6 stays PENDING: unplaced VMs count nowhere.
            for v in 1..=6 {
                sql.push_str(&format!(
                    "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, \
                       prev_state, prev_lcm_state, stime, cpu, memory, template) \
                     VALUES ({v}, 'v{v}', 0, 0, 384, 1, 0, 1, 0, 0, 0.{v}5, {v}00, '');"
                ));
            }
            c.execute_batch(&sql).unwrap();
            for (v, h) in [(1, 0), (2, 0), (3, 1), (4, 2), (5, 2)] {
                let pending = DeployFrom {
                    state: 1,
                    last_action: None,
                };
                let deploy = deploy_stmts(&Deploy {
                    oid: v,
                    hid: h,
                    from: pending,
                    room: Some((800, 8 << 20)),
                    by_hand: false,
                    ds_id: -1,
                    plan_action: None,
                    now: 10,
                });
                write_then_compare(&c, deploy, "a deploy");
            }
            let placed = shares(&c);
            assert_eq!(placed[0], (0, 15 + 25, 300 * 1024, 2), "{placed:?}");
            for (from, to) in [
                (LcmState::Prolog, LcmState::Boot),
                (LcmState::Boot, LcmState::Running),
            ] {
                let step = step_all((active, from.as_i64()), (active, to.as_i64()), false, 11);
                write_then_compare(&c, step, "a driver step");
            }
            // A migration as `one.vm.migrate` writes it: VM 2 from host 0 to host 1.
            let migrate = vec![
                SqlStmt::new(
                    "UPDATE vm_pool SET hid = 1 WHERE oid = 2 AND hid = 0",
                    Vec::new(),
                )
                .must_match(),
                recount_host_ids(&[0, 1]),
            ];
            let moved = write_then_compare(&c, migrate, "a migration");
            assert_eq!((moved[0].3, moved[1].3), (1, 2));
            let resize = vec![
                resize_stmt(3, (active, running), (0.35, 300), (2.0, 2048)),
                recount_vm_host(3),
            ];
            let resized = write_then_compare(&c, resize, "a resize");
            assert_eq!(resized[1], (1, 25 + 200, (200 + 2048) * 1024, 2));
            let mv = |oid, from, to, leaves_host| {
                move_stmts(&Move {
                    oid,
                    from,
                    to,
                    now: 12,
                    leaves_host,
                })
            };
            let done = (VmState::Done.as_i64(), init);
            write_then_compare(&c, mv(1, (active, running), done, true), "a terminate");
            write_then_compare(
                &c,
                mv(4, (active, running), (active, epilog), false),
                "a shutdown",
            );
            let step = step_all((active, epilog), done, true, 13);
            write_then_compare(&c, step, "an epilog ending");
            write_then_compare(
                &c,
                mv(5, (active, running), (poweroff, init), false),
                "a poweroff",
            );
            let undeployed = (VmState::Undeployed.as_i64(), init);
            let end =
                write_then_compare(&c, mv(5, (poweroff, init), undeployed, true), "an undeploy");
            assert_eq!(
                end,
                vec![
                    (0, 0, 0, 0),
                    (1, 25 + 200, (200 + 2048) * 1024, 2),
                    (2, 0, 0, 0)
                ]
            );
        }
    }

    #[test]
    fn pool_rows_hold_the_last_placement_and_newest_record_as_the_full_read_does() {
        let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeeze(POOL_ROWS.select).contains(&squeeze(super::super::monitoring::VM_COLUMNS)));
        // Both subqueries are spelled by rowid on SQLite (each a `x.rowid = (SELECT y.rowid`).
        assert_eq!(
            pool_select(crate::Backend::Sqlite).matches("rowid").count(),
            4
        );
        assert_eq!(pool_select(crate::Backend::Mysql), POOL_ROWS.select);
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            // VM 1 was placed twice and monitored twice, the newer rows written first; VM 2
            // never placed nor monitored.
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template)
                 VALUES (1, 'a', 0, 0, 384, 3, 3, 3, 3, 0, 0.5, 64, 'CPU=\"0.5\"'),
                        (2, 'b', 0, 0, 384, 1, 0, 1, 0, 0, 1, 64, '');
                 INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime, etime)
                 VALUES (1, 1, 3, 'h3', 'kvm', 20, 0), (1, 0, 0, 'h0', 'dummy', 10, 20);
                 INSERT INTO vm_monitoring (vmid, last_poll, cpu, memory, netrx, nettx,
                   diskrdbytes, diskwrbytes, diskrdiops, diskwriops)
                 VALUES (1, 1090, 9, 10, 11, 12, 13, 14, 15, 16), (1, 1000, 1, 2, 3, 4, 5, 6, 7, 8);",
            )
            .unwrap();
            let all = |rows: &Rows<VmRow>| -> Vec<VmRow> {
                let sql = format!("{} ORDER BY v.oid", rows.select);
                let mut st = c.prepare(&sql).unwrap();
                st.query_map::<VmRow>([] as [SqlValue; 0], |r| (rows.read)(&c, r))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            };
            let mut full = all(&ROWS);
            let pool = all(&POOL_ROWS);
            let spelled = Rows {
                select: pool_select(c.backend()),
                ..POOL_ROWS
            };
            assert_eq!(all(&spelled), pool, "{}", spelled.select);
            assert_eq!(full[0].history.len(), 2);
            full[0].history.remove(0);
            assert_eq!(pool, full);
            assert_eq!(pool[0].monitoring.as_ref().unwrap().timestamp, 1090);
            assert!(pool[1].history.is_empty() && pool[1].monitoring.is_none());
        }
    }
}
