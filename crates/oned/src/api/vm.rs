//! `one.vm.*` and `one.vmpool.*`: virtual machines with OpenNebula's STATE and LCM_STATE numbers
//! and the `dummy` virtualization driver. An action only records the transient state; the
//! leader's driver task (`crate::scheduler`) moves VMs on, so every step is a replicated write.

use sqlstore::objects::quota as quota_rows;
use sqlstore::objects::vm::{self as rows, Move, NewVm, VmRow};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{self, MANAGE, VM};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};

pub use sqlstore::objects::vm::deploy_stmts;

pub static VMS: Family<VmRow> = Family {
    table: rows::TABLE,
    kind: VM,
    acl: "VM",
    what: "virtual machine",
    pool: "VM_POOL",
    template: "user_template",
    rows: &rows::ROWS,
    xml: vm_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!(wire::method::VM_ALLOCATE, Write, Auth::Object, allocate),
    method!(
        wire::method::VM_INFO,
        Read,
        Auth::Object,
        super::owned::info,
        &VMS
    ),
    method!(wire::method::VM_ACTION, Write, Auth::Object, action),
    // The handler authorizes: the VM, the host and the system datastore at once.
    method!(wire::method::VM_DEPLOY, Write, Auth::Object, deploy),
    method!(
        wire::method::VMPOOL_INFO,
        Read,
        Auth::Object,
        super::vm_body::pool_info
    ),
    method!(
        "one.vmpool.infoextended",
        Read,
        Auth::Object,
        super::vm_body::pool_info_extended
    ),
];

/// The owned-object calls: chmod, lock, unlock (chown, rename and update: `vm_ops::METHODS`).
pub const OWNED: &[Method] = &owned_methods!(@each "one.vm", &VMS, [chmod, lock, unlock]);

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
    pub const VM_INIT: i64 = VmState::Init.as_i64();
    pub const CLONING: i64 = VmState::Cloning.as_i64();
    pub const CLONING_FAILURE: i64 = VmState::CloningFailure.as_i64();
}

pub mod lcm {
    use wire::LcmState;
    pub const INIT: i64 = LcmState::LcmInit.as_i64();
    pub const PROLOG: i64 = LcmState::Prolog.as_i64();
    pub const PROLOG_RESUME: i64 = LcmState::PrologResume.as_i64();
    pub const PROLOG_UNDEPLOY: i64 = LcmState::PrologUndeploy.as_i64();
    pub const BOOT_STOPPED: i64 = LcmState::BootStopped.as_i64();
    pub const BOOT_UNDEPLOY: i64 = LcmState::BootUndeploy.as_i64();
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
    pub const HOTPLUG_NIC: i64 = LcmState::HotplugNic.as_i64();
    pub const HOTPLUG: i64 = LcmState::Hotplug.as_i64();
    pub const HOTPLUG_PROLOG_POWEROFF: i64 = LcmState::HotplugPrologPoweroff.as_i64();
    pub const HOTPLUG_EPILOG_POWEROFF: i64 = LcmState::HotplugEpilogPoweroff.as_i64();
    pub const HOTPLUG_RESIZE: i64 = LcmState::HotplugResize.as_i64();
    pub const MIGRATE: i64 = LcmState::Migrate.as_i64();
    pub const SAVE_MIGRATE: i64 = LcmState::SaveMigrate.as_i64();
    pub const PROLOG_MIGRATE: i64 = LcmState::PrologMigrate.as_i64();
    pub const BOOT_MIGRATE: i64 = LcmState::BootMigrate.as_i64();
    pub const PROLOG_MIGRATE_POWEROFF: i64 = LcmState::PrologMigratePoweroff.as_i64();
    pub const PROLOG_MIGRATE_SUSPEND: i64 = LcmState::PrologMigrateSuspend.as_i64();
    pub const PROLOG_MIGRATE_UNKNOWN: i64 = LcmState::PrologMigrateUnknown.as_i64();
    pub const UNKNOWN: i64 = LcmState::Unknown.as_i64();
    pub const BOOT_UNKNOWN: i64 = LcmState::BootUnknown.as_i64();
    pub const BACKUP: i64 = LcmState::Backup.as_i64();
    pub const BACKUP_POWEROFF: i64 = LcmState::BackupPoweroff.as_i64();
}

pub(super) fn vm_xml(v: &VmRow, out: &mut String) {
    body_xml(v, out, super::vm_body::Body::Info)
}

/// The full body: `one.vm.info`'s, or the one pool calls print (`vm_body::Body`).
pub(super) fn body_xml(v: &VmRow, out: &mut String, which: super::vm_body::Body) {
    let skip = super::vm_body::history_skipped(v, which);
    let deploy_id = super::vm_body::deploy_id(v);
    let parts = if which == super::vm_body::Body::Info {
        super::vm_body_parts::info_parts(v, || body_parts(v, true))
    } else {
        std::sync::Arc::new(body_parts(v, false))
    };
    Xml::new(out).elem("VM", |x| {
        xml::owned_head(x, &v.head, None);
        let last_poll = v.monitoring.as_ref().map_or(0, |m| m.timestamp);
        x.num("LAST_POLL", last_poll)
            .num("STATE", v.state)
            .num("LCM_STATE", v.lcm_state)
            // `VirtualMachinePool::update` sets the previous state to the current one before
            // each write: a stored VM always shows them equal (the hook messages, made
            // before, carry the real ones).
            .num("PREV_STATE", v.state)
            .num("PREV_LCM_STATE", v.lcm_state)
            .num("RESCHED", i64::from(v.resched))
            .num("STIME", v.stime)
            .num("ETIME", v.etime)
            .text("DEPLOY_ID", &deploy_id);
        xml::lock(x, &v.lock);
        super::monitoring::last_vm_xml(x, v.monitoring.as_ref());
        x.raw(&parts.sched_ids)
            .raw(&parts.template)
            .raw(&parts.user_template)
            .elem("HISTORY_RECORDS", |x| {
                for h in v.history.iter().skip(skip) {
                    history_xml(x, v, h);
                }
            })
            .raw(&parts.disk_snapshots)
            .raw(&parts.backups);
    });
}

/// What the body prints from the VM's stored templates, its id, CPU, MEMORY and whether it is
/// DONE, and nothing else (`vm_body_parts` keeps it on that promise). `info`: the scheduled
/// actions inside TEMPLATE too, as `one.vm.info` prints them, unless the VM is DONE
/// (`free_vm_resources` drops them; the ids stay in SCHED_ACTIONS).
fn body_parts(v: &VmRow, info: bool) -> super::vm_body_parts::Parts {
    let oid = v.head.owned.oid;
    let mut t = match template::Template::parse(&v.template) {
        Ok(t) => t,
        Err(e) => {
            xml::corrupt_template(&e);
            template::Template::default()
        }
    };
    t.remove(super::vm_body::IMPORTED_DEPLOY_ID);
    let disk_snapshots = super::vm_disk_snaps::take_xml(&mut t);
    let sched = super::vm_sched::take_xml(&mut t, oid);
    let backups = super::vm_backup::take_xml(&mut t);
    // A leased NIC's (or alias's) TARGET names the VM, whose id its lease was taken before
    // knowing.
    for a in t
        .attrs
        .iter_mut()
        .filter(|a| a.name == "NIC" || a.name == "NIC_ALIAS")
    {
        if let template::Value::Vector(pairs) = &mut a.value {
            let has = |k: &str| pairs.iter().any(|(n, _)| n == k);
            if has("NETWORK_ID") && !has("TARGET") {
                let nic_id = template::vector_get(pairs, "NIC_ID")
                    .unwrap_or("0")
                    .to_string();
                pairs.push(("TARGET".into(), format!("one-{oid}-{nic_id}")));
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
    }
    for (k, val) in [
        ("VMID", oid.to_string()),
        ("CPU", v.cpu.to_string()),
        ("MEMORY", v.memory.to_string()),
    ] {
        t.set(k, template::Value::Single(val));
    }
    super::vm_body_parts::Parts {
        template: if info && v.state != state::DONE {
            sched.template(&t)
        } else {
            t.to_xml()
        },
        sched_ids: sched.ids,
        user_template: xml::template(&v.user_template, "USER_TEMPLATE"),
        disk_snapshots,
        backups,
    }
}

pub(super) fn history_xml(x: &mut Xml<'_>, v: &VmRow, h: &rows::History) {
    x.elem("HISTORY", |x| {
        x.num("OID", v.head.owned.oid)
            .num("SEQ", h.seq)
            .text("HOSTNAME", &h.hostname)
            .num("HID", h.hid)
            .num("CID", h.cid)
            .num("STIME", h.stime)
            .num("ETIME", h.etime)
            .text("VM_MAD", &h.vm_mad)
            .text("TM_MAD", &h.tm_mad)
            .num("DS_ID", h.ds_id)
            .num("PLAN_ID", h.plan_id)
            .num("ACTION_ID", h.action_id)
            .num("PSTIME", h.times.pstime)
            .num("PETIME", h.times.petime)
            .num("RSTIME", h.times.rstime)
            .num("RETIME", h.times.retime)
            .num("ESTIME", h.times.estime)
            .num("EETIME", h.times.eetime)
            .num("ACTION", h.action)
            .num("UID", h.uid)
            .num("GID", h.gid)
            .num("REQUEST_ID", -1);
    });
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

/// `QuotaVirtualMachine::check`, which the request runs before `VirtualMachine::insert` for a
/// caller whose quotas count (`Request::quota_authorization`: not oneadmin, or not group
/// oneadmin): a negative MEMORY or CPU is the quota's refusal, AUTHORIZATION, worded for the
/// user's quota, else the group's.
fn negative_capacity(s: &Session, t: &template::Template) -> Result<(), Failure> {
    let whose = if s.uid != 0 {
        format!("user [{}]", s.uid)
    } else if s.gid != 0 {
        format!("group [{}]", s.gid)
    } else {
        return Ok(());
    };
    // `Template::get(name, int&)` / `get(name, float&)`: the number the value starts with.
    let leading = |name: &str, float: bool| -> Option<f64> {
        let v = t.single(name)?.trim_start();
        let sign = usize::from(v.starts_with(['-', '+']));
        let mut end = sign + v[sign..].bytes().take_while(u8::is_ascii_digit).count();
        if float && v[end..].starts_with('.') {
            end += 1 + v[end + 1..].bytes().take_while(u8::is_ascii_digit).count();
        }
        v[..end].parse().ok()
    };
    let why = if leading("MEMORY", false).is_some_and(|m| m < 0.0) {
        "MEMORY attribute must be a positive integer value"
    } else if leading("CPU", true).is_some_and(|c| c < 0.0) {
        "CPU attribute must be a positive float or integer value"
    } else {
        return Ok(());
    };
    Err(fail(
        code::AUTHORIZATION,
        format!("User [{}] : {whose} {why}.", s.uid),
    ))
}

/// The refusal of a VM whose images, leases or template `VirtualMachine::insert` refused
/// (`failed`): `allocate_authorization` weighs the VM quota before that, so an exceeded VM
/// entry is the refusal instead; but not before the images' and networks' authorization, whose
/// refusal stands. Only read when the creation fails, to cost nothing when it does not.
async fn quota_first(
    ctx: &Ctx,
    s: &Session,
    base: &template::Template,
    (cpu, memory): (f64, i64),
    failed: Failure,
    reword: Reword,
) -> Failure {
    if matches!(&failed, Failure::Api { code, .. } if *code == code::AUTHORIZATION) {
        return reword(failed);
    }
    let ask = super::quota::Ask::new_vm(cpu, memory as f64)
        .with_system_disk(quota_rows::system_disk_size_of(base))
        .with_generic(&ctx.config.raw, base);
    for (uid, gid) in [(s.uid, -1), (-1, s.gid)] {
        match super::quota::check(ctx, uid, gid, &ask).await {
            Ok(Err(e)) => return super::quota::refused(s, e),
            Ok(Ok(_)) => {}
            Err(f) => return f,
        }
    }
    reword(failed)
}

/// How a request words `VirtualMachine::insert`'s refusals (INTERNAL, in its own words, for
/// `one.vm.allocate`): `VMTemplateInstantiate` and `VirtualRouterInstantiate` answer ALLOCATE,
/// after their own object. Refusals of the write itself (its size, a lost race) are not insert's.
pub type Reword = fn(Failure) -> Failure;

/// Creates a VM owned by the caller from its template; its id. Used by `one.vm.allocate`,
/// `one.template.instantiate` and `one.vrouter.instantiate`, each wording the template's
/// refusals with `reword`.
pub async fn create(
    ctx: &Ctx,
    s: &Session,
    base: template::Template,
    name: Option<String>,
    hold: bool,
    reword: Reword,
) -> MethodResult {
    let checked = |base: &template::Template| -> Result<_, Failure> {
        crate::limits::vm_vectors(base).map_err(|e| fail(code::INTERNAL, e))?;
        let (cpu, memory, tname) = capacity(base)?;
        let name = name
            .clone()
            .filter(|n| !n.is_empty())
            .or(tname)
            .unwrap_or_default();
        if !name.is_empty() {
            super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
        }
        Ok((cpu, memory, name))
    };
    negative_capacity(s, &base)?;
    let (cpu, memory, name) = checked(&base).map_err(reword)?;
    // `insert` moves CPU and MEMORY as the numbers it read (`add("CPU", float)`): 0.50 is 0.5.
    let mut base = base;
    base.set(
        "CPU",
        template::Value::Single(super::quota::float_g(f64::from(cpu as f32))),
    );
    base.set("MEMORY", template::Value::Single(memory.to_string()));
    // An empty name becomes `<TEMPLATE_NAME>-<id>` (`one-<id>` without one) in the statement
    // below, as `VirtualMachine::insert` names it.
    let prefix = base
        .single("TEMPLATE_NAME")
        .filter(|p| !p.is_empty())
        .unwrap_or("one")
        .to_string();
    // `VirtualMachinePool::allocate`: held when asked or when oned.conf's VM_SUBMIT_ON_HOLD
    // says so, and then SUBMIT_ON_HOLD = YES in its template.
    let hold = hold
        || ctx
            .config
            .raw
            .single("VM_SUBMIT_ON_HOLD")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
    if hold {
        base.set("SUBMIT_ON_HOLD", template::Value::Single("YES".into()));
    }
    let state = if hold { state::HOLD } else { state::PENDING };
    // Its images and the addresses of its NICs are taken as they are now; a concurrent change
    // of one refuses the write, and they are taken again.
    for _ in 0..LEASE_RETRIES {
        let built = async {
            let mut t = base.clone();
            super::vm_disk_snaps::strip(&mut t);
            super::vm_sched::from_allocate(&mut t, now())?;
            let disks = super::vm_disks::take_disks(ctx, s, &mut t).await?;
            let leases = super::vnet_leases::lease_nics(ctx, s, &mut t).await?;
            let join = super::vmgroup::join::for_new_vm(ctx, s, &mut t).await?;
            super::vm_body::boot_order(&mut t).map_err(|e| fail(code::INTERNAL, e))?;
            let (mut system, mut user) = super::vm_body::split(&t)?;
            super::vm_context::at_allocate(ctx, s, &mut system, &mut user, &name).await?;
            super::vm_backup::parse_at_allocate(&mut system);
            crate::sched_expr::at_allocate(ctx, &mut system).await?;
            Ok::<_, Failure>((t, disks, leases, join, system, user))
        };
        let (t, disks, leases, join, mut system, mut user) = match built.await {
            Ok(b) => b,
            Err(f) => return Err(quota_first(ctx, s, &base, (cpu, memory), f, reword).await),
        };
        // `VirtualMachine::insert`: a VM with an image still being copied waits in CLONING
        // (`vm_cloning` moves it on), whether held or not.
        let (state, prev_state) = if super::vm_cloning::has_cloning_disks(&system) {
            (state::CLONING, state)
        } else {
            (state, state)
        };
        // `VirtualMachine::insert` ends with `encrypt()`, on both templates.
        super::encrypted::seal_in(ctx, rows::TABLE, &mut system);
        super::encrypted::seal_in(ctx, rows::TABLE, &mut user);
        let insert = rows::insert(NewVm {
            name: name.clone(),
            prefix: prefix.clone(),
            uid: s.uid,
            gid: s.gid,
            perms: super::umask::new_object(ctx, s),
            state,
            prev_state,
            stime: now(),
            cpu,
            memory,
            template: system.to_text(),
            user_template: user.to_text(),
            disk_size: quota_rows::system_disk_size_of(&system),
        });
        // `Quotas::quota_check(VIRTUALMACHINE)`: the networks, the VM, then the images.
        let mut asks: Vec<super::quota::Ask> = leases
            .per_network
            .iter()
            .map(|(vid, n)| super::quota::Ask::leases(*vid, *n))
            .collect();
        asks.push(
            super::quota::Ask::new_vm(cpu, memory as f64)
                .with_system_disk(quota_rows::system_disk_size_of(&t))
                .with_generic(&ctx.config.raw, &t),
        );
        asks.extend(disks.asks);
        let mut with = disks.stmts;
        with.extend(leases.stmts);
        with.extend(join);
        match super::quota::allocate_all(
            ctx,
            s,
            &asks,
            rows::TABLE,
            insert,
            with,
            "virtual machine",
            "VM",
        )
        .await
        {
            Err(super::quota::Allocation::Raced) => continue,
            Err(super::quota::Allocation::Failed(f)) => return Err(f),
            Ok(v) => return Ok(v),
        }
    }
    Err(fail(
        code::INTERNAL,
        "The leases of the new virtual machine's networks kept changing, try again",
    ))
}

/// How often a new VM's leases and images are picked again after a concurrent change of them.
const LEASE_RETRIES: usize = 10;

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let hold = p.opt_bool(1)?.unwrap_or(false);
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    // `VirtualMachineAllocate::allocate_authorization`: the restricted attributes, one request
    // for CREATE and what the template names (`set_auth_request`), then the topology
    // (ALLOCATE).
    vm_template_restricted(ctx, s, &t)?;
    let c = super::perms::caller(ctx, s).await?;
    let mut why: Vec<String> = (!c.may_create(VMS.kind))
        .then(|| VMS.create_refusal())
        .into_iter()
        .collect();
    why.extend(super::vm_auth::refusals(ctx, s, &c, &t, super::perms::USE).await?);
    super::granted_unless(s, &why)?;
    super::vm_topology::parse(&mut t).map_err(|e| {
        fail(
            code::ALLOCATE,
            format!("Error allocating a new virtual machine. {e}"),
        )
    })?;
    // `VirtualMachine::insert`'s RAW check.
    super::vmtemplate::raw_checked(ctx, &t).map_err(|e| fail(code::INTERNAL, e))?;
    create(ctx, s, t, None, hold, std::convert::identity).await
}

/// A non-administrator's VM template holding an attribute of `VM_RESTRICTED_ATTR`: refused as
/// `VirtualMachineAllocate` and `TemplateAllocate` refuse it.
pub(super) fn vm_template_restricted(
    ctx: &Ctx,
    s: &Session,
    t: &template::Template,
) -> Result<(), Failure> {
    if s.is_admin() {
        return Ok(());
    }
    match super::restricted::in_new(&super::restricted::vm(ctx), t) {
        Some(name) => Err(super::unauthorized(
            s,
            &format!("VM Template includes a restricted attribute {name}"),
        )),
        None => Ok(()),
    }
}

pub async fn action(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    use super::vm_actions::Outcome;
    let action = p.string(0)?.to_string();
    let id = p.int(1)? as i64;
    if matches!(action.as_str(), "resched" | "unresched") {
        return super::vm_resched::resched(ctx, s, id, action == "resched").await;
    }
    let vm = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, &action, MANAGE).await?,
        )
        .await?;
    let (st, lc) = (vm.state, vm.lcm_state);
    // A VM resumed counts for its owner's RUNNING_* quotas once more: checked as OpenNebula's
    // resume checks them, before `DispatchManager::resume` weighs the state (ACTION, no final
    // period), and guarded where applied. Other actions that make a VM ACTIVE again on its way
    // out (terminate, undeploy, stop) add it unchecked, as `LifeCycleManager` does.
    let ask = super::quota::Ask::running_vm(vm.cpu, vm.memory as f64)
        .within(super::quota::cluster_of(&vm));
    let charge = || super::quota::Charge {
        asks: std::slice::from_ref(&ask),
        uid: vm.head.owned.uid,
        gid: vm.head.owned.gid,
        wording: super::quota::Wording::Action,
    };
    let guard = match action.as_str() {
        "resume" => charge().guard(ctx).await?,
        _ => None,
    };
    // After the authorization and the VM's existence, as `VirtualMachineAction`.
    // `set_resched(false)` of `DispatchManager::reboot` and of the LCM's moves.
    // Terminate and undeploy clear it only on a VM that runs (`trigger_shutdown`'s and
    // `trigger_undeploy`'s RUNNING/UNKNOWN branches; their POWEROFF bypasses keep it).
    let ends_running = st == state::ACTIVE;
    let clears_resched = vm.resched
        && match action.as_str() {
            "reboot" | "reboot-hard" | "poweroff" | "poweroff-hard" | "suspend" | "stop" => true,
            "undeploy" | "undeploy-hard" | "terminate" | "terminate-hard" => ends_running,
            _ => false,
        };
    let (new_state, new_lcm) = match super::vm_actions::outcome(&action, id, st, lc) {
        Outcome::Move(to) => to,
        Outcome::Nothing if clears_resched => {
            let stmts = vec![rows::clear_resched(id)];
            ctx.commit(sqlstore::SqlTxn { stmts }, |r| r.internal())
                .await?;
            return Ok(Value::Int(id as i32));
        }
        Outcome::Nothing => return Ok(Value::Int(id as i32)),
        Outcome::Refused(why) => {
            return Err(fail(
                code::ACTION,
                format!("Error performing action \"{action}\": {why}"),
            ))
        }
        Outcome::Unsupported => {
            return Err(fail(
                code::ACTION,
                format!("Action \"{action}\" is not supported"),
            ))
        }
    };
    let mut stmts = action_move(&vm.template, id, (st, lc), (new_state, new_lcm), now());
    stmts.extend(snapshots_dropped(ctx, &vm, (new_state, new_lcm)));
    if clears_resched {
        stmts.push(rows::clear_resched(id));
    }
    // `trigger_shutdown` records the VM's owner (its `uid`/`gid` shadow the caller's).
    let by = match action.starts_with("terminate") {
        true => (vm.head.owned.uid, vm.head.owned.gid),
        false => (s.uid, s.gid),
    };
    let last = vm.history.last().map(|h| h.seq);
    let to = (new_state, new_lcm);
    let history = super::vm_actions::history(&action, id, last, (st, lc), to, by, now());
    stmts.extend(history);
    let running = sqlstore::objects::quota::counts_as_running;
    let resumes = action == "resume" && !running(st) && running(new_state);
    let (charge, guard) = match resumes {
        true => (Some(charge()), guard),
        false => (None, None),
    };
    super::quota::commit_guarded(ctx, stmts, charge, guard, |r| {
        r.missing(fail(
            code::ACTION,
            format!("Error performing action \"{action}\": the VM changed state meanwhile"),
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `VirtualMachine::delete_snapshots` on the way to POWEROFF, SUSPENDED, STOPPED, UNDEPLOYED,
/// another host or DONE (the save and shutdown steps `LifeCycleStates` ends with it), unless
/// the VM's driver has KEEP_SNAPSHOTS: the write that takes the VM's SNAPSHOT vectors out.
fn snapshots_dropped(ctx: &Ctx, vm: &VmRow, to: (i64, i64)) -> Option<sqlstore::SqlStmt> {
    let drops = to.0 == state::ACTIVE
        && matches!(
            to.1,
            lcm::SHUTDOWN
                | lcm::SHUTDOWN_POWEROFF
                | lcm::SHUTDOWN_UNDEPLOY
                | lcm::SAVE_SUSPEND
                | lcm::SAVE_STOP
                | lcm::SAVE_MIGRATE
        );
    if !drops {
        return None;
    }
    drop_snapshots(ctx, vm)
}

/// The write that takes VM `vm`'s SNAPSHOT vectors out, unless it has none or its driver keeps
/// them (KEEP_SNAPSHOTS): every migration ends with it too (`trigger_migrate`,
/// `trigger_deploy_success`, `trigger_prolog_success`).
pub(super) fn drop_snapshots(ctx: &Ctx, vm: &VmRow) -> Option<sqlstore::SqlStmt> {
    let vm_mad = vm.history.last().map_or("", |h| h.vm_mad.as_str());
    if super::ds_conf::vm_mad_says(&ctx.config.raw, vm_mad, "KEEP_SNAPSHOTS") {
        return None;
    }
    erase_snapshots(vm)
}

/// `VirtualMachine::delete_snapshots` whatever the driver: the write that takes VM `vm`'s
/// SNAPSHOT vectors out, unless it has none.
pub(super) fn erase_snapshots(vm: &VmRow) -> Option<sqlstore::SqlStmt> {
    if !vm.template.contains("SNAPSHOT") {
        return None;
    }
    let mut t = template::Template::parse(&vm.template).ok()?;
    t.get("SNAPSHOT")?;
    t.remove("SNAPSHOT");
    Some(sqlstore::objects::replace_template(
        rows::TABLE,
        "template",
        vm.head.owned.oid,
        t.to_text(),
        vm.template.clone(),
    ))
}

/// The write of an action's move of VM `id` (whose template is `template`) from `from` to
/// `to`, by `one.vm.action` or a scheduled action. Into EPILOG too (a terminated POWEROFF or
/// STOPPED VM), the VM's images are handed back: the driver step that ends EPILOG VMs hands
/// back only those it read before this one entered (a second hand-back is the same).
pub fn action_move(
    template: &str,
    id: i64,
    from: (i64, i64),
    to: (i64, i64),
    now: i64,
) -> Vec<sqlstore::SqlStmt> {
    let mut stmts = rows::move_stmts(&Move {
        oid: id,
        from,
        to,
        now,
        leaves_host: to.0 == state::DONE || to.0 == state::PENDING,
    });
    // Ended while ACTIVE outside its epilog (a failure state terminated), its persistent
    // images are left in ERROR, once their snapshots are handed back.
    if to.0 == state::DONE && from.0 == state::ACTIVE && from.1 != lcm::EPILOG {
        stmts.splice(0..0, sqlstore::objects::image::fail_used_by(id, now));
    }
    if to.0 == state::DONE || to == (state::ACTIVE, lcm::EPILOG) {
        stmts.splice(0..0, super::image_snaps::hand_back(template, id, None));
    }
    stmts
}

/// `vm_authorization_no_response` of `VirtualMachineDeploy` and `VirtualMachineMigrate`: `right`
/// on VM `v`, MANAGE on host `hid`, USE on system datastore `ds_id` if one is named, every
/// refusal said at once.
pub(super) async fn deploy_authorized(
    ctx: &Ctx,
    s: &Session,
    v: &VmRow,
    right: u64,
    hid: i64,
    ds_id: Option<i64>,
) -> Result<(), Failure> {
    use super::method::Need;
    use sqlstore::objects::HasOwner;
    let c = perms::caller(ctx, s).await?;
    let mut why: Vec<String> = VMS.refusal(&c, v, right).into_iter().collect();
    if !s.is_admin() {
        let mut needs = vec![Need::on(wire::acl::HOST, hid, MANAGE)];
        if let Some(ds_id) = ds_id {
            let ds = super::storage::DATASTORES.get(ctx, ds_id).await?;
            needs.push(Need::owned(wire::acl::DATASTORE, ds.owner(), perms::USE));
        }
        why.extend(needs.iter().filter(|n| !n.granted(&c)).map(Need::refusal));
    }
    super::granted_unless(s, &why)
}

/// `VirtualMachine::state_str`: an ACTIVE VM is named by its LCM state.
pub(super) fn state_name(st: i64, lc: i64) -> String {
    if st == state::ACTIVE {
        wire::LcmState::from_i64(lc).map_or("UNKNOWN", wire::LcmState::name)
    } else {
        wire::VmState::from_i64(st).map_or("UNKNOWN", wire::VmState::name)
    }
    .to_string()
}

/// `one.vm.deploy(id, hid [, enforce, ds_id, nic_template])`: an administrator places a VM
/// by hand, as `VirtualMachineDeploy`: a PENDING or HOLD VM, or a STOPPED or UNDEPLOYED one
/// (whose disks come back, PROLOG_RESUME or PROLOG_UNDEPLOY), on any host but an OFFLINE one.
/// The checks come in oned's order: the template, the host, the VM, the system datastore, the
/// authorization, the state, the host's capacity when `enforce`, the owner's RUNNING quotas
/// for a VM that runs again.
pub async fn deploy(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let hid = p.int(1)? as i64;
    let enforce = p.opt_bool(2)?.unwrap_or(false);
    let ds_id = match p.0.get(3) {
        Some(_) => p.int(3)? as i64,
        None => -1,
    };
    // The networks chosen for the VM's `NETWORK_MODE = auto` NICs (the scheduler's plan).
    let nic_tmpl = match p.0.get(4).map(|_| p.string(4)).transpose()? {
        Some(text) if !text.is_empty() => {
            Some(super::validate::template(text).map_err(|e| fail(code::INTERNAL, e))?)
        }
        _ => None,
    };
    let host = ctx
        .read(move |c| sqlstore::objects::host::load(c, hid))
        .await?
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting host [{hid}].")))?;
    if host.state == wire::HostState::Offline.as_i64() {
        return Err(fail(
            code::ACTION,
            "Host is offline, cannot use it to deploy VM",
        ));
    }
    let before = VMS.get(ctx, id).await?;
    let from = sqlstore::objects::vm::DeployFrom {
        state: before.state,
        last_action: before.history.last().map(|h| h.action),
    };
    let nic_tmpl = nic_tmpl.filter(|_| !from.returns());
    let ds_id = super::vm_migrate::system_ds_for(ctx, &host, ds_id).await?;
    if let Some(t) = &nic_tmpl {
        super::vm_auto_nics::authorize(ctx, s, &before, t).await?;
    }
    let right = super::vm_ops::right(ctx, s, "deploy", perms::ADMIN).await?;
    deploy_authorized(ctx, s, &before, right, hid, Some(ds_id)).await?;
    let vm = before;
    if ![
        state::PENDING,
        state::HOLD,
        state::STOPPED,
        state::UNDEPLOYED,
    ]
    .contains(&vm.state)
    {
        return Err(fail(
            code::ACTION,
            format!(
                "Deploy action is not available for state {}",
                state_name(vm.state, vm.lcm_state)
            ),
        ));
    }
    if enforce {
        super::vm_migrate::fits(ctx, &vm, hid).await?;
    }
    // `set_vnc_port`: GRAPHICS takes its port in the write that deploys the VM; the auto NICs'
    // leases then edit the template with the port in it.
    let (cid, vid) = (host.cluster_id, id);
    // Only a VM with GRAPHICS reads its cluster's ports.
    let taken = if vm.template.contains("GRAPHICS") {
        ctx.read(move |c| super::vm_vnc::taken_by_others(c, cid, vid))
            .await?
    } else {
        Default::default()
    };
    let conf = super::vm_vnc::vnc_ports(&ctx.config.raw);
    let from_stop = vm.history.last().map(|h| h.action) == Some(wire::vm_action::STOP);
    let (port, with_port) =
        super::vm_vnc::at_deploy(&conf, id, hid, &vm.template, from_stop, &taken)
            .map_err(|e| fail(code::ACTION, e))?;
    // `set_volatile_disk_info` on the template with its port.
    let text = with_port.unwrap_or_else(|| vm.template.clone());
    let volatile = super::vm_volatile::on_datastore(ctx, id, &text, ds_id).await?;
    let (volatile, edited) = match volatile {
        Some((stmt, new)) => (Some(stmt), new),
        None => (None, text),
    };
    let leased = match &nic_tmpl {
        Some(t) => {
            let chosen = super::vm_auto_nics::chosen(t);
            let wording = super::quota::Wording::Caller(s.uid);
            let mut vm = vm.clone();
            vm.template = edited;
            super::vm_auto_nics::lease(ctx, s, &vm, &chosen, wording).await?
        }
        None => Vec::new(),
    };
    let mut stmts = deploy_stmts(&sqlstore::objects::vm::Deploy {
        oid: id,
        hid,
        from: sqlstore::objects::vm::DeployFrom {
            state: vm.state,
            last_action: vm.history.last().map(|h| h.action),
        },
        room: enforce.then_some((host.max_cpu, host.max_mem)),
        by_hand: true,
        plan_action: None,
        ds_id,
        now: now(),
    });
    stmts.extend(port);
    stmts.extend(volatile);
    stmts.extend(leased);
    // A STOPPED or UNDEPLOYED VM counts for its owner's RUNNING_* quotas again, refused as
    // oned refuses it (AUTHORIZATION, the caller named).
    // Then, placed in a cluster it was not in, it counts whole for that cluster's VM quota
    // (`SKIP_GLOBAL_QUOTA`).
    let running = sqlstore::objects::quota::counts_as_running;
    let ask = super::quota::Ask::running_vm(vm.cpu, vm.memory as f64).within(Some(cid));
    let (uid, gid) = (vm.head.owned.uid, vm.head.owned.gid);
    let wording = super::quota::Wording::Caller(s.uid);
    let charge = (!running(vm.state)).then_some(super::quota::Charge {
        asks: std::slice::from_ref(&ask),
        uid,
        gid,
        wording,
    });
    let guard = match &charge {
        Some(c) => c.guard(ctx).await?,
        None => None,
    };
    if let Some(placed) = super::quota::Ask::placed(&ctx.config.raw, &vm, cid, true) {
        let charge = super::quota::Charge {
            asks: std::slice::from_ref(&placed),
            uid,
            gid,
            wording,
        };
        stmts.extend(charge.guard(ctx).await?);
    }
    super::quota::commit_guarded(ctx, stmts, charge, guard, |r| {
        r.missing(fail(
            code::ACTION,
            "Error deploying virtual machine: it, or the host's capacity, changed meanwhile",
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}
