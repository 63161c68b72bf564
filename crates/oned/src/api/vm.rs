//! `one.vm.*` and `one.vmpool.*`: virtual machines with OpenNebula's STATE and LCM_STATE numbers
//! and the `dummy` virtualization driver. An action only records the transient state; the
//! leader's driver task (`crate::scheduler`) moves VMs on, so every step is a replicated write.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::perms::{self, caller, not_authorized, Owned, MANAGE, VM};
use super::xml::esc;
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

pub mod state {
    use wire::VmState;
    pub const PENDING: i64 = VmState::Pending.as_i64();
    pub const HOLD: i64 = VmState::Hold.as_i64();
    pub const ACTIVE: i64 = VmState::Active.as_i64();
    pub const STOPPED: i64 = VmState::Stopped.as_i64();
    pub const SUSPENDED: i64 = VmState::Suspended.as_i64();
    pub const DONE: i64 = VmState::Done.as_i64();
    pub const POWEROFF: i64 = VmState::Poweroff.as_i64();
    pub const UNDEPLOYED: i64 = VmState::Undeployed.as_i64();
}

pub mod lcm {
    use wire::LcmState;
    pub const INIT: i64 = LcmState::LcmInit.as_i64();
    pub const PROLOG: i64 = LcmState::Prolog.as_i64();
    pub const BOOT: i64 = LcmState::Boot.as_i64();
    pub const RUNNING: i64 = LcmState::Running.as_i64();
    pub const SAVE_STOP: i64 = LcmState::SaveStop.as_i64();
    pub const SAVE_SUSPEND: i64 = LcmState::SaveSuspend.as_i64();
    pub const EPILOG_STOP: i64 = LcmState::EpilogStop.as_i64();
    pub const EPILOG: i64 = LcmState::Epilog.as_i64();
    pub const SHUTDOWN: i64 = LcmState::Shutdown.as_i64();
    pub const SHUTDOWN_POWEROFF: i64 = LcmState::ShutdownPoweroff.as_i64();
    pub const BOOT_POWEROFF: i64 = LcmState::BootPoweroff.as_i64();
    pub const BOOT_SUSPENDED: i64 = LcmState::BootSuspended.as_i64();
    pub const SHUTDOWN_UNDEPLOY: i64 = LcmState::ShutdownUndeploy.as_i64();
    pub const EPILOG_UNDEPLOY: i64 = LcmState::EpilogUndeploy.as_i64();
}

/// Recomputes every host's usage from the VMs placed on it (ACTIVE, SUSPENDED, POWEROFF):
/// accounting can never drift.
pub static RECOUNT_HOSTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let on_host = wire::state::sql_list(
        &[
            wire::VmState::Active,
            wire::VmState::Suspended,
            wire::VmState::Poweroff,
        ],
        wire::VmState::as_i64,
    );
    format!(
        "UPDATE host_pool SET
    cpu_usage = (SELECT COALESCE(SUM(CAST(ROUND(cpu * 100) AS INTEGER)), 0) FROM vm_pool
                 WHERE hid = host_pool.oid AND state IN ({on_host})),
    mem_usage = (SELECT COALESCE(SUM(memory * 1024), 0) FROM vm_pool
                 WHERE hid = host_pool.oid AND state IN ({on_host})),
    running_vms = (SELECT count(*) FROM vm_pool WHERE hid = host_pool.oid AND state IN ({on_host}))"
    )
});

pub struct VmRow {
    pub owned: Owned,
    name: String,
    uname: String,
    gname: String,
    state: i64,
    lcm_state: i64,
    prev_state: i64,
    prev_lcm_state: i64,
    stime: i64,
    etime: i64,
    cpu: f64,
    memory: i64,
    template: String,
    user_template: String,
    history: Vec<(i64, i64, String, String, i64, i64)>,
}

fn template_xml(text: &str, extra: &[(&str, String)]) -> String {
    let mut t = template::Template::parse(text).unwrap_or_default();
    for (k, v) in extra {
        t.set(k, template::Value::Single(v.clone()));
    }
    t.to_xml()
}

fn vm_xml(v: &VmRow) -> String {
    let deploy_id = if v.history.is_empty() {
        String::new()
    } else {
        format!("one-{}", v.owned.oid)
    };
    let mut history = String::from("<HISTORY_RECORDS>");
    for (seq, hid, hostname, vm_mad, stime, etime) in &v.history {
        history.push_str(&format!(
            "<HISTORY><OID>{oid}</OID><SEQ>{seq}</SEQ><HOSTNAME>{}</HOSTNAME><HID>{hid}</HID><CID>0</CID><STIME>{stime}</STIME><ETIME>{etime}</ETIME><VM_MAD>{}</VM_MAD><TM_MAD>dummy</TM_MAD><DS_ID>0</DS_ID><PLAN_ID>-1</PLAN_ID><ACTION_ID>-1</ACTION_ID><PSTIME>{stime}</PSTIME><PETIME>{stime}</PETIME><RSTIME>{stime}</RSTIME><RETIME>{etime}</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME><ACTION>0</ACTION><UID>{}</UID><GID>{}</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>",
            esc(hostname),
            esc(vm_mad),
            v.owned.uid,
            v.owned.gid,
            oid = v.owned.oid,
        ));
    }
    history.push_str("</HISTORY_RECORDS>");
    format!(
        "<VM><ID>{}</ID><UID>{}</UID><GID>{}</GID><UNAME>{}</UNAME><GNAME>{}</GNAME><NAME>{}</NAME>{}<LAST_POLL>0</LAST_POLL><STATE>{}</STATE><LCM_STATE>{}</LCM_STATE><PREV_STATE>{}</PREV_STATE><PREV_LCM_STATE>{}</PREV_LCM_STATE><RESCHED>0</RESCHED><STIME>{}</STIME><ETIME>{}</ETIME><DEPLOY_ID>{deploy_id}</DEPLOY_ID><MONITORING></MONITORING><SCHED_ACTIONS></SCHED_ACTIONS>{}{}{history}<BACKUPS><BACKUP_CONFIG></BACKUP_CONFIG><BACKUP_IDS></BACKUP_IDS></BACKUPS></VM>",
        v.owned.oid,
        v.owned.uid,
        v.owned.gid,
        esc(&v.uname),
        esc(&v.gname),
        esc(&v.name),
        perms::permissions_xml(v.owned.perms),
        v.state,
        v.lcm_state,
        v.prev_state,
        v.prev_lcm_state,
        v.stime,
        v.etime,
        template_xml(
            &v.template,
            &[
                ("VMID", v.owned.oid.to_string()),
                ("CPU", v.cpu.to_string()),
                ("MEMORY", v.memory.to_string()),
            ]
        ),
        template::Template::parse(&v.user_template)
            .unwrap_or_default()
            .to_xml_as("USER_TEMPLATE"),
    )
}

const SELECT_VMS: &str =
    "SELECT v.oid, v.uid, v.gid, v.perms, v.name, COALESCE(u.name, ''), COALESCE(g.name, ''),
            v.state, v.lcm_state, v.prev_state, v.prev_lcm_state, v.stime, v.etime, v.cpu,
            v.memory, v.template, v.user_template
     FROM vm_pool v LEFT JOIN user_pool u ON u.oid = v.uid LEFT JOIN group_pool g ON g.oid = v.gid";

fn vm_row(
    c: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<VmRow, sqlstore::rusqlite::Error> {
    let oid: i64 = r.get(0)?;
    let mut hist = c.prepare_cached(
        "SELECT seq, hid, hostname, vm_mad, stime, etime FROM history WHERE vid = ?1 ORDER BY seq",
    )?;
    let history = hist
        .query_map([oid], |h| {
            Ok((
                h.get(0)?,
                h.get(1)?,
                h.get(2)?,
                h.get(3)?,
                h.get(4)?,
                h.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(VmRow {
        owned: Owned::from_row(r)?,
        name: r.get(4)?,
        uname: r.get(5)?,
        gname: r.get(6)?,
        state: r.get(7)?,
        lcm_state: r.get(8)?,
        prev_state: r.get(9)?,
        prev_lcm_state: r.get(10)?,
        stime: r.get(11)?,
        etime: r.get(12)?,
        cpu: r.get(13)?,
        memory: r.get(14)?,
        template: r.get(15)?,
        user_template: r.get(16)?,
        history,
    })
}

fn no_vm(id: i64) -> Failure {
    fail(
        code::NO_EXISTS,
        format!("Error getting virtual machine [{id}]."),
    )
}

/// Seconds since the epoch, read on the leader and bound into the statements.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks a VM template the way oned does: MEMORY a positive integer, CPU a positive number.
pub fn capacity(t: &template::Template) -> Result<(f64, i64, Option<String>), Failure> {
    let memory = t
        .single("MEMORY")
        .and_then(|m| m.trim().parse::<i64>().ok())
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            fail(
                code::INTERNAL,
                "MEMORY attribute must be a positive integer value.",
            )
        })?;
    let cpu = t
        .single("CPU")
        .and_then(|c| c.trim().parse::<f64>().ok())
        .filter(|c| *c > 0.0 && c.is_finite())
        .ok_or_else(|| {
            fail(
                code::INTERNAL,
                "CPU attribute must be a positive float or integer value.",
            )
        })?;
    Ok((cpu, memory, t.single("NAME").map(str::to_string)))
}

/// Creates a VM owned by the caller from template text; its id. Used by `one.vm.allocate`
/// and `one.template.instantiate`.
pub async fn create(
    ctx: &Ctx,
    s: &Session,
    text: &str,
    name: Option<String>,
    hold: bool,
) -> MethodResult {
    let t = template::Template::parse(text).map_err(|e| fail(code::INTERNAL, e.to_string()))?;
    let (cpu, memory, tname) = capacity(&t)?;
    let name = name.filter(|n| !n.is_empty()).or(tname).unwrap_or_default();
    // An empty name becomes `one-<id>` in the statement below.
    if !name.is_empty() {
        super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    }
    let state = if hold { state::HOLD } else { state::PENDING };
    let insert = SqlStmt::new(
        "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                                  prev_lcm_state, stime, cpu, memory, template)
             SELECT last_oid + 1, CASE WHEN ?1 = '' THEN 'one-' || (last_oid + 1) ELSE ?1 END,
                    ?2, ?3, ?4, ?5, 0, ?5, 0, ?6, ?7, ?8, ?9
             FROM pool_control WHERE tablename = 'vm_pool' RETURNING oid",
        vec![
            SqlValue::Text(name),
            SqlValue::Int(s.uid),
            SqlValue::Int(s.gid),
            SqlValue::Int(perms::DEFAULT_PERMS),
            SqlValue::Int(state),
            SqlValue::Int(now()),
            SqlValue::Real(cpu),
            SqlValue::Int(memory),
            SqlValue::Text(t.to_text()),
        ],
    );
    super::allocate_next(ctx, "vm_pool", insert, "virtual machine", "VM", "").await
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let hold = p.opt_bool(1)?.unwrap_or(false);
    let c = caller(ctx, s).await?;
    if !c.may_create(VM) {
        return Err(not_authorized(s, "CREATE VM"));
    }
    super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    create(ctx, s, &text, None, hold).await
}

const VMS: Family<VmRow> = Family {
    kind: VM,
    acl: "VM",
    pool: "VM_POOL",
    select: SELECT_VMS,
    alias: "v",
    row: vm_row,
    owned: |v| v.owned,
    xml: vm_xml,
    missing: no_vm,
};

async fn load(ctx: &Ctx, id: i64) -> Result<VmRow, Failure> {
    VMS.get(ctx, id).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    VMS.info(ctx, s, p).await
}

/// `one.vmpool.info(filter, start, end, state)`; state -2 any, -1 any but DONE.
pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let state = match p.0.get(3) {
        Some(_) => p.int(3)? as i64,
        None => -1,
    };
    let mut only = perms::Where::default();
    match state {
        -2 => {}
        -1 => only.and("v.state <> ?", [state::DONE]),
        st => only.and("v.state = ?", [st]),
    }
    VMS.pool_info(ctx, s, p, only).await
}

/// One state change an action asks for: allowed (state, lcm) pairs and the new (state, lcm).
struct Transition {
    from: &'static [(i64, Option<i64>)],
    to: (i64, i64),
}

fn transition(action: &str) -> Option<Transition> {
    use lcm::*;
    use state::*;
    let running: &[(i64, Option<i64>)] = &[(ACTIVE, Some(RUNNING))];
    Some(match action {
        "terminate" | "terminate-hard" => Transition {
            from: running,
            to: (ACTIVE, SHUTDOWN),
        },
        "hold" => Transition {
            from: &[(PENDING, None)],
            to: (HOLD, INIT),
        },
        "release" => Transition {
            from: &[(HOLD, None)],
            to: (PENDING, INIT),
        },
        "poweroff" | "poweroff-hard" => Transition {
            from: running,
            to: (ACTIVE, SHUTDOWN_POWEROFF),
        },
        "suspend" => Transition {
            from: running,
            to: (ACTIVE, SAVE_SUSPEND),
        },
        "stop" => Transition {
            from: running,
            to: (ACTIVE, SAVE_STOP),
        },
        "undeploy" | "undeploy-hard" => Transition {
            from: running,
            to: (ACTIVE, SHUTDOWN_UNDEPLOY),
        },
        "reboot" | "reboot-hard" => Transition {
            from: running,
            to: (ACTIVE, RUNNING),
        },
        _ => return None,
    })
}

pub async fn action(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    use lcm::*;
    use state::*;
    let action = p.string(0)?.to_string();
    let id = p.int(1)? as i64;
    let vm = load(ctx, id).await?;
    let c = caller(ctx, s).await?;
    if !c.may(VM, &vm.owned, MANAGE) {
        return Err(not_authorized(s, &format!("MANAGE VM [{id}]")));
    }
    let (st, lc) = (vm.state, vm.lcm_state);
    // Terminating a VM that is not running ends it at once; resume depends on where it was.
    let to = match action.as_str() {
        "terminate" | "terminate-hard"
            if matches!(
                st,
                PENDING | HOLD | POWEROFF | SUSPENDED | STOPPED | UNDEPLOYED
            ) =>
        {
            Some((DONE, INIT))
        }
        "resume" => match st {
            POWEROFF => Some((ACTIVE, BOOT_POWEROFF)),
            SUSPENDED => Some((ACTIVE, BOOT_SUSPENDED)),
            STOPPED | UNDEPLOYED => Some((PENDING, INIT)),
            _ => None,
        },
        other => match transition(other) {
            None => {
                return Err(fail(
                    code::XML_RPC_API,
                    format!("Virtual machine action \"{other}\" is not supported"),
                ))
            }
            Some(t) => t
                .from
                .iter()
                .any(|(fs, fl)| *fs == st && fl.is_none_or(|l| l == lc))
                .then_some(t.to),
        },
    };
    let Some((new_state, new_lcm)) = to else {
        return Err(fail(
            code::ACTION,
            format!(
                "Error performing action \"{action}\": This action is not available for state {}",
                state_name(st, lc)
            ),
        ));
    };
    let leaves_host = new_state == DONE || new_state == PENDING;
    let mut stmts = vec![SqlStmt::new(
        // Guarded by the state it was checked in: a concurrent change makes it a no-op.
        &format!(
            "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = ?2,
            lcm_state = ?3, etime = CASE WHEN ?2 = {DONE} THEN ?6 ELSE etime END,
            hid = CASE WHEN ?7 THEN -1 ELSE hid END
         WHERE oid = ?1 AND state = ?4 AND lcm_state = ?5"
        ),
        vec![
            SqlValue::Int(id),
            SqlValue::Int(new_state),
            SqlValue::Int(new_lcm),
            SqlValue::Int(st),
            SqlValue::Int(lc),
            SqlValue::Int(now()),
            SqlValue::Int(leaves_host as i64),
        ],
    )
    .must_match()];
    if leaves_host {
        stmts.push(SqlStmt::new(
            "UPDATE history SET etime = ?2 WHERE vid = ?1 AND etime = 0",
            vec![SqlValue::Int(id), SqlValue::Int(now())],
        ));
        stmts.push(SqlStmt::new(&RECOUNT_HOSTS, vec![]));
    }
    match ctx.write(SqlTxn { stmts }).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::ACTION,
            format!("Error performing action \"{action}\": the VM changed state meanwhile"),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

fn state_name(st: i64, lc: i64) -> String {
    let s = wire::VmState::from_i64(st).map_or("UNKNOWN", wire::VmState::name);
    if st == state::ACTIVE {
        format!("{s}/{lc}")
    } else {
        s.to_string()
    }
}

/// The statements that place VM `id` on host `hid` (PROLOG), if both still allow it.
pub fn deploy_stmts(id: i64, hid: i64, check_capacity: bool, now: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            &format!(
                "UPDATE vm_pool SET prev_state = state, prev_lcm_state = lcm_state, state = {},
                lcm_state = {}, hid = ?2
             WHERE oid = ?1 AND state IN ({}, {})
               AND EXISTS (SELECT 1 FROM host_pool h WHERE h.oid = ?2 AND h.state IN ({}, {})
                 AND (?3 = 0 OR (h.total_cpu - h.cpu_usage >= CAST(ROUND(vm_pool.cpu * 100) AS INTEGER)
                   AND h.total_mem - h.mem_usage >= vm_pool.memory * 1024)))",
                state::ACTIVE,
                lcm::PROLOG,
                state::PENDING,
                state::HOLD,
                wire::HostState::Init.as_i64(),
                wire::HostState::Monitored.as_i64(),
            ),
            vec![
                SqlValue::Int(id),
                SqlValue::Int(hid),
                SqlValue::Int(check_capacity as i64),
            ],
        )
        .must_match(),
        SqlStmt::new(
            "INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime)
             SELECT ?1, COALESCE((SELECT MAX(seq) + 1 FROM history WHERE vid = ?1), 0),
                    h.oid, h.name, h.vm_mad, ?3
             FROM host_pool h WHERE h.oid = ?2",
            vec![SqlValue::Int(id), SqlValue::Int(hid), SqlValue::Int(now)],
        ),
        SqlStmt::new(&RECOUNT_HOSTS, vec![]),
    ]
}

/// `one.vm.deploy(id, hid [, enforce, ds])`: an administrator places a VM by hand.
pub async fn deploy(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let hid = p.int(1)? as i64;
    let enforce = p.opt_bool(2)?.unwrap_or(false);
    super::require_admin(s, &format!("ADMIN VM [{id}]"))?;
    let vm = load(ctx, id).await?;
    if vm.state != state::PENDING && vm.state != state::HOLD {
        return Err(fail(
            code::ACTION,
            format!(
                "Error deploying virtual machine. Wrong state {}",
                state_name(vm.state, vm.lcm_state)
            ),
        ));
    }
    let host_exists = ctx
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM host_pool WHERE oid = ?1",
                [hid],
                |r| r.get::<_, i64>(0),
            )
        })
        .await?;
    if host_exists == 0 {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting host [{hid}]."),
        ));
    }
    match ctx
        .write(SqlTxn {
            stmts: deploy_stmts(id, hid, enforce, now()),
        })
        .await
    {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::ACTION,
            "Error deploying virtual machine: the host is not enabled or has no capacity left",
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}
