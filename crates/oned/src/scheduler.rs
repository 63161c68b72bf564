//! Leader-only duties for virtual machines, as OpenNebula's scheduler and the `dummy` driver:
//!
//! - the scheduler places PENDING VMs on MONITORED hosts with free capacity, lowest id first,
//!   among the hosts whose cluster holds the datastores of the VM's images and its networks
//!   and that meet its AUTOMATIC_REQUIREMENTS and SCHED_REQUIREMENTS (`crate::sched_expr`):
//!   the best by its SCHED_RANK, else the least loaded (OpenNebula's default striping policy);
//! - the driver moves VMs through the transient states an action or a deployment left
//!   (PROLOG -> BOOT -> RUNNING, SHUTDOWN -> EPILOG -> DONE...), one step per period.
//!
//! Every change is a replicated write whose statements re-check the state they expect, so a new
//! leader carries on where the old one stopped and no VM is ever deployed twice.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use consensus::WriteError;
use sqlstore::objects::host::HostRoom;
use sqlstore::objects::vm;
use sqlstore::Conn;
use sqlstore::{ReadPool, SqlTxn};
use tracing::debug;

use crate::api::vm::{deploy_stmts, lcm, now, state};
use crate::api::vm_auto_nics::AutoNic;
use crate::api::Ctx;
use crate::cluster::{Cluster, LeaderTicks};
use crate::sched_expr::{Matched, VmAsk};
use crate::sched_nets::{Net, NicChoice, Picked, Room};
use crate::sweep::Sweep;
use crate::tasks::TaskCtx;

const PERIOD: Duration = Duration::from_millis(300);
/// PENDING VMs considered per period, in a [`Sweep`]: VMs no host can take, however many, hold
/// back a later VM by a few periods at most, never for good (only the 16 oldest were read, and
/// 16 VMs too large for any host stopped every placement in the zone).
const SCAN: usize = 256;

/// (STATE, LCM_STATE) of a VM.
type VmStates = (i64, i64);

/// Driver steps, latest stage first so a VM moves one step per period: (state, lcm) -> (state,
/// lcm), and whether the VM leaves its host.
const STEPS: &[(VmStates, VmStates, bool)] = &[
    (
        (state::ACTIVE, lcm::BOOT),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_POWEROFF),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_SUSPENDED),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_UNKNOWN),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_STOPPED),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_UNDEPLOY),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG),
        (state::ACTIVE, lcm::BOOT),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_RESUME),
        (state::ACTIVE, lcm::BOOT_STOPPED),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_UNDEPLOY),
        (state::ACTIVE, lcm::BOOT_UNDEPLOY),
        false,
    ),
    ((state::ACTIVE, lcm::EPILOG), (state::DONE, lcm::INIT), true),
    (
        (state::ACTIVE, lcm::SHUTDOWN),
        (state::ACTIVE, lcm::EPILOG),
        false,
    ),
    (
        (state::ACTIVE, lcm::SHUTDOWN_POWEROFF),
        (state::POWEROFF, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::SAVE_SUSPEND),
        (state::SUSPENDED, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::EPILOG_STOP),
        (state::STOPPED, lcm::INIT),
        true,
    ),
    (
        (state::ACTIVE, lcm::SAVE_STOP),
        (state::ACTIVE, lcm::EPILOG_STOP),
        false,
    ),
    (
        (state::ACTIVE, lcm::EPILOG_UNDEPLOY),
        (state::UNDEPLOYED, lcm::INIT),
        true,
    ),
    (
        (state::ACTIVE, lcm::SHUTDOWN_UNDEPLOY),
        (state::ACTIVE, lcm::EPILOG_UNDEPLOY),
        false,
    ),
    (
        (state::ACTIVE, lcm::HOTPLUG_NIC),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::HOTPLUG_RESIZE),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::HOTPLUG),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::HOTPLUG_PROLOG_POWEROFF),
        (state::POWEROFF, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::HOTPLUG_EPILOG_POWEROFF),
        (state::POWEROFF, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::MIGRATE),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::BOOT_MIGRATE),
        (state::ACTIVE, lcm::RUNNING),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_MIGRATE),
        (state::ACTIVE, lcm::BOOT_MIGRATE),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_MIGRATE_UNKNOWN),
        (state::ACTIVE, lcm::BOOT_MIGRATE),
        false,
    ),
    (
        (state::ACTIVE, lcm::SAVE_MIGRATE),
        (state::ACTIVE, lcm::PROLOG_MIGRATE),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_MIGRATE_POWEROFF),
        (state::POWEROFF, lcm::INIT),
        false,
    ),
    (
        (state::ACTIVE, lcm::PROLOG_MIGRATE_SUSPEND),
        (state::SUSPENDED, lcm::INIT),
        false,
    ),
];

/// Only the steps that unplace VMs change host usage, and `step_all` recounts their hosts.
fn driver_txn(now: i64) -> SqlTxn {
    let mut stmts = Vec::new();
    for &(from, to, leaves_host) in STEPS {
        stmts.extend(vm::step_all(from, to, leaves_host, now));
    }
    SqlTxn { stmts }
}

/// Pending VMs in id order, monitored hosts with their room, and whether a driver step has
/// VMs to move.
struct Plan {
    vms: Vec<Pending>,
    /// The read's sweep, advanced past the VMs it read.
    sweep: Sweep,
    hosts: Vec<HostRoom>,
    moving: bool,
    /// Where the VM group peers of pending VMs are.
    host_of: BTreeMap<i64, i64>,
    /// VMs that are DONE or gone leaving their VM groups.
    leavers: Vec<sqlstore::SqlStmt>,
    /// The groups' sweep, advanced past the groups read (unmoved if none were).
    groups: Sweep,
    /// The host bodies the requirements were evaluated against (empty if none was needed).
    bodies: Bodies,
    /// The networks, read only when a pending VM has a NIC in auto mode (empty otherwise).
    nets: Nets,
}

/// MONITORED hosts' bodies, shared between periods.
type Bodies = std::sync::Arc<Vec<(i64, crate::sched_expr::Resource)>>;

/// The networks NICs in auto mode choose from, shared between periods.
type Nets = std::sync::Arc<Vec<Net>>;

/// A pending VM and the clusters it may run in (`None`: any).
struct Pending {
    vm: vm::PendingVm,
    clusters: Option<Vec<i64>>,
    /// Its VM group's rules, if it is in one.
    rules: Option<crate::affinity::Rules>,
    /// The hosts its requirements keep with its ranks, or why they do not parse (`None`:
    /// every host, the default policy).
    matched: Option<Result<Matched, String>>,
    /// Its NICs in auto mode.
    auto_nics: Vec<AutoNic>,
    /// The networks each of them may take, best first, or its SCHED_MESSAGE (`None` while
    /// they were not matched: the VM waits).
    nics: Option<Result<Vec<NicChoice>, String>>,
}

/// The ids a VM's `DISK`s (`IMAGE_ID`) and `NIC`s (`NETWORK_ID`) name.
pub(crate) fn images_and_networks(template: &str) -> (Vec<i64>, Vec<i64>) {
    template::Template::parse(template)
        .map_or_else(|_| (Vec::new(), Vec::new()), |t| images_and_networks_of(&t))
}

/// [`images_and_networks`] of a parsed template.
pub(crate) fn images_and_networks_of(t: &template::Template) -> (Vec<i64>, Vec<i64>) {
    let ids = |attr: &str, key: &str| -> Vec<i64> {
        t.get_all(attr)
            .filter_map(|a| a.vector_get(key))
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    };
    (ids("DISK", "IMAGE_ID"), ids("NIC", "NETWORK_ID"))
}

/// `groups`: the groups to look at for VMs leaving them, if any (see [`LeaverWatch`]).
/// `bodies`, `nets`: the host bodies and networks of an earlier read if the database has not
/// changed since. `sweep`: which PENDING VMs to read.
fn read_plan(
    c: &Conn,
    groups: Option<Sweep>,
    (bodies, nets): (Option<Bodies>, Option<Nets>),
    mut sweep: Sweep,
) -> Result<Plan, sqlstore::SqlError> {
    let mut vms = Vec::new();
    let mut host_of = BTreeMap::new();
    let (leavers, next_groups) = match groups {
        Some(g) => crate::affinity::leavers(c, g)?,
        None => (Vec::new(), Sweep::new(crate::affinity::GROUPS_PER_PASS)),
    };
    let pending = vm::pending(c, sweep.after(), sweep.limit())?;
    sweep.advance(pending.len(), pending.last().map(|v| v.oid));
    // Host bodies are built only when some VM waits for one.
    let bodies = match bodies {
        Some(b) => b,
        None if pending.is_empty() => Bodies::default(),
        None => Bodies::new(crate::sched_expr::host_resources(c)?),
    };
    let mut any_auto = false;
    for v in pending {
        let t = template::Template::parse(&v.template).unwrap_or_default();
        let (images, nets) = images_and_networks_of(&t);
        let auto_nics = match v.deploy_from().returns() {
            true => Vec::new(),
            false => crate::api::vm_auto_nics::auto_nics(&t),
        };
        any_auto |= !auto_nics.is_empty();
        let clusters = sqlstore::objects::cluster::allowed_for(c, &images, &nets)?;
        let rules = crate::affinity::read_rules(c, v.oid, &v.template, &mut host_of)?;
        let ut = sqlstore::objects::placement::user_template(c, v.oid)?.unwrap_or_default();
        let ask = VmAsk::of(&v.template, &ut);
        let matched = Some(crate::sched_expr::match_hosts(&ask, &bodies));
        vms.push(Pending {
            vm: v,
            clusters,
            rules,
            matched,
            auto_nics,
            nics: None,
        });
    }
    let nets = match (any_auto, nets) {
        (false, _) => Nets::default(),
        (true, Some(nets)) => nets,
        (true, None) => Nets::new(crate::sched_nets::read(c)?),
    };
    Ok(Plan {
        nets,
        vms,
        sweep,
        hosts: sqlstore::objects::host::with_room(c)?,
        moving: vm::any_moving(c)?,
        host_of,
        bodies,
        leavers,
        groups: next_groups,
    })
}

/// Chooses a host for each pending VM that fits somewhere in a cluster it may use, least
/// loaded first.
#[cfg(test)]
fn place(vms: &[Pending], hosts: Vec<HostRoom>) -> Vec<(i64, i64)> {
    let placed = place_all(vms, hosts, BTreeMap::new(), Room::default()).placed;
    placed.into_iter().map(|(v, h, _)| (v, h)).collect()
}

/// What one period decides: VMs placed (vm, host, the network of each auto NIC) and VMs left
/// PENDING with why.
struct Placement {
    placed: Vec<(i64, i64, Picked)>,
    unplaced: Vec<(i64, Option<String>)>,
}

/// The rank scheduler's words for a VM no host took though some had room: its NICs in auto mode
/// found no network with a free address in their clusters.
const NO_HOST_FOR_NICS: &str = "Cannot dispatch VM to any Host. Possible reasons: Not enough \
capacity in Host or System DS, dispatch limit reached, or limit of free leases reached.";

/// [`place`], keeping each VM's group rules, `host_of` being where their peers are; a VM
/// placed here counts as a peer's host for the next ones.
fn place_all(
    vms: &[Pending],
    mut hosts: Vec<HostRoom>,
    mut host_of: BTreeMap<i64, i64>,
    mut room: Room,
) -> Placement {
    let mut out = Placement {
        placed: Vec::new(),
        unplaced: Vec::new(),
    };
    for Pending {
        vm: v,
        clusters,
        rules,
        matched,
        auto_nics,
        nics,
    } in vms
    {
        let choices: &[NicChoice] = match nics {
            _ if auto_nics.is_empty() => &[],
            Some(Ok(choices)) => choices,
            Some(Err(why)) => {
                out.unplaced.push((v.oid, Some(why.clone())));
                continue;
            }
            None => continue,
        };
        let matched: Option<&Matched> = match matched {
            Some(Err(why)) => {
                out.unplaced
                    .push((v.oid, Some(format!("Cannot dispatch VM: {why}"))));
                continue;
            }
            Some(Ok(m)) => Some(m),
            None => None,
        };
        let need_cpu = (v.cpu * 100.0).round() as i64;
        let need_mem = v.memory * 1024;
        order_hosts(&mut hosts, matched);
        let meets = |h: &HostRoom| matched.is_none_or(|m| m.hosts.contains_key(&h.oid));
        let allowed =
            |h: &HostRoom| clusters.as_ref().is_none_or(|c| c.contains(&h.cluster_id)) && meets(h);
        let fits = |h: &HostRoom| h.free_cpu >= need_cpu && h.free_mem >= need_mem;
        let keeps = |h: &HostRoom| rules.as_ref().is_none_or(|r| r.allows(h.oid, &host_of));
        let found = hosts
            .iter_mut()
            .filter(|h| allowed(h) && fits(h) && keeps(h))
            .find_map(|h| room.pick(choices, h.cluster_id).map(|picked| (h, picked)));
        if let Some((h, picked)) = found {
            h.free_cpu -= need_cpu;
            h.free_mem -= need_mem;
            h.running_vms += 1;
            room.take(&picked);
            out.placed.push((v.oid, h.oid, picked));
            host_of.insert(v.oid, h.oid);
        } else if !choices.is_empty() && hosts.iter().any(|h| allowed(h) && fits(h) && keeps(h)) {
            out.unplaced
                .push((v.oid, Some(NO_HOST_FOR_NICS.to_string())));
        } else {
            let mut candidates: Vec<i64> =
                hosts.iter().filter(|h| allowed(h)).map(|h| h.oid).collect();
            candidates.sort_unstable();
            let n_fits = hosts.iter().filter(|h| allowed(h) && fits(h)).count();
            let why = match crate::affinity::why_unplaced(&candidates, n_fits) {
                // Hosts there are, but the VM's requirements keep none of them.
                None if !hosts.is_empty() && matched.is_some() => Some(format!(
                    "Cannot dispatch VM: {}",
                    crate::sched_expr::NO_HOST_MEETS
                )),
                why => why,
            };
            out.unplaced.push((v.oid, why));
        }
    }
    out
}

/// When the groups are read for VMs that left them (`affinity::leavers`, 1,024 groups a pass
/// in a sweep): a VM leaves only through a replicated write, so once a whole round of the
/// sweep, from the lowest group to the last, found nothing to do with the local database at
/// applied log index N, nothing changes until it applies past N, and the idle leader skips the
/// read. Solo servers have no index and read every period.
#[derive(Debug, Default)]
struct LeaverWatch {
    clean_at: Option<u64>,
    /// The applied index at which the current round began and has found nothing since.
    quiet_since: Option<u64>,
}

impl LeaverWatch {
    /// Whether to read the groups, the local database having applied up to `applied` (read
    /// before the database, so the database holds at least that much).
    fn due(&self, applied: Option<u64>) -> bool {
        applied.is_none() || applied != self.clean_at
    }

    /// A read at `applied` of the groups after `from` (-1: a new round) found work or not, and
    /// `to` is where the next read starts (-1: this one reached the last group).
    fn read(&mut self, applied: Option<u64>, from: i64, found: bool, to: i64) {
        if found || applied.is_none() {
            self.quiet_since = None;
            return;
        }
        if from == -1 {
            self.quiet_since = applied;
        } else if self.quiet_since != applied {
            self.quiet_since = None;
        }
        if to == -1 && self.quiet_since.is_some() {
            self.clean_at = applied;
        }
    }
}

/// What the last read built (the host bodies, the networks), valid while the local database has
/// applied nothing new: a VM that waits for a host or a network no one offers (PENDING with a
/// SCHED_MESSAGE) would otherwise have them built and read every period. Solo servers have no
/// index and build them every period.
#[derive(Debug, Default)]
struct Cached<T> {
    at: Option<u64>,
    value: T,
}

impl<T: Clone> Cached<T> {
    fn get(&self, applied: Option<u64>) -> Option<T> {
        (applied.is_some() && applied == self.at).then(|| self.value.clone())
    }

    fn keep(&mut self, applied: Option<u64>, value: T) {
        self.at = applied;
        self.value = value;
    }
}

/// Puts `hosts` in the order a VM tries them: by its SCHED_RANK, highest first, when it has
/// one, else least running VMs first; ties by id.
pub(crate) fn order_hosts(hosts: &mut [HostRoom], matched: Option<&Matched>) {
    let rank = |h: &HostRoom| {
        matched
            .and_then(|m| m.hosts.get(&h.oid).copied().flatten())
            .map(std::cmp::Reverse)
    };
    let ranked = matched.is_some_and(|m| m.hosts.values().any(Option::is_some));
    if ranked {
        hosts.sort_by_key(|h| (rank(h), h.oid));
    } else {
        hosts.sort_by_key(|h| (h.running_vms, h.oid));
    }
}

/// The scheduler task: every period, on the leader (or solo), moves VMs one driver step and
/// places pending ones. A failed read or write is logged, counted and tried again next period.
pub async fn run(
    ctx: TaskCtx,
    cluster: Cluster,
    pool: ReadPool,
    live_rescheds: bool,
    vnc: crate::api::vm_vnc::VncPorts,
    api: crate::run::ApiCtx,
) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    let mut watch = LeaverWatch::default();
    let mut groups_sweep = Sweep::new(crate::affinity::GROUPS_PER_PASS);
    let mut hosts = Cached::<Bodies>::default();
    let mut networks = Cached::<Nets>::default();
    let mut sweep = Sweep::new(SCAN);
    let mut flagged = Sweep::new(crate::resched::BATCH);
    loop {
        ticks.next().await;
        let applied = cluster.last_applied();
        let groups = watch.due(applied).then_some(groups_sweep);
        let cached = (hosts.get(applied), networks.get(applied));
        let read = move |c: &Conn| read_plan(c, groups, cached, sweep);
        let mut plan = match crate::db::read(&pool, read).await {
            Ok(plan) => plan,
            Err(e) => {
                ctx.warn("reading pending VMs and hosts failed", &e);
                continue;
            }
        };
        sweep = plan.sweep;
        if let Some(read) = groups {
            groups_sweep = plan.groups;
            let found = !plan.leavers.is_empty();
            watch.read(applied, read.after(), found, groups_sweep.after());
        }
        if !plan.bodies.is_empty() {
            hosts.keep(applied, plan.bodies.clone());
        }
        if !plan.nets.is_empty() {
            networks.keep(applied, plan.nets.clone());
        }
        if plan.moving {
            let mut txn = driver_txn(now());
            let epilog = (state::ACTIVE, lcm::EPILOG);
            let handed = crate::api::image_snaps::epilog_hand_back(&pool, epilog).await;
            txn.stmts.splice(0..0, handed);
            if let Err(e) = cluster.write(txn).await {
                write_failed(&ctx, "driver step failed; retried next period", &e);
            }
        }
        if plan.moving {
            crate::api::vm_snap_driver::pass(&ctx, &cluster, &pool).await;
            crate::api::vm_backup::pass(&ctx, &cluster, &pool).await;
        }
        crate::drs::pass(&ctx, &cluster, &pool, live_rescheds).await;
        crate::resched::pass(&ctx, &cluster, &pool, live_rescheds, &mut flagged).await;
        if !plan.leavers.is_empty() {
            // Each statement matches nothing if its group changed (a refusal, read again next
            // period); a write that failed is logged.
            for stmt in plan.leavers {
                if let Err(e) = cluster.write(SqlTxn { stmts: vec![stmt] }).await {
                    write_failed(&ctx, "a DONE VM leaving its group failed", &e);
                }
            }
        }
        // Until the API serves, VMs with NICs in auto mode wait.
        if let Some(api) = api.get() {
            match_auto_nics(&ctx, api, &mut plan.vms, &plan.nets).await;
        }
        let room = Room::of(&plan.nets);
        let maxes: BTreeMap<i64, (i64, i64)> = plan.hosts.iter().map(|h| (h.oid, h.max)).collect();
        let clusters: BTreeMap<i64, i64> =
            (plan.hosts.iter()).map(|h| (h.oid, h.cluster_id)).collect();
        let texts: BTreeMap<i64, String> = (plan.vms.iter())
            .filter(|p| p.vm.template.contains("GRAPHICS"))
            .map(|p| (p.vm.oid, p.vm.template.clone()))
            .collect();
        // Those that may hold volatile disks, which take their system datastore's attributes.
        let disked: BTreeMap<i64, String> = (plan.vms.iter())
            .filter(|p| crate::api::vm_volatile::may_have(&p.vm.template))
            .map(|p| (p.vm.oid, p.vm.template.clone()))
            .collect();
        let from: BTreeMap<i64, vm::DeployFrom> = (plan.vms.iter())
            .map(|p| (p.vm.oid, p.vm.deploy_from()))
            .collect();
        let placement = place_all(&plan.vms, plan.hosts, plan.host_of, room);
        sched_messages(&ctx, &cluster, &pool, placement.unplaced).await;
        let mut refused = Vec::new();
        // Per-cluster VM quotas weigh a placement only where some are set.
        let per_cluster = match (placement.placed.is_empty(), api.get()) {
            (false, Some(_)) => crate::api::quota::any_per_cluster(&pool).await,
            _ => Ok(false),
        }
        .unwrap_or_else(|e| {
            let e = crate::api::vm_backup::message(&e);
            ctx.warn("reading the per-cluster quotas failed", &e);
            true
        });
        // The period's placement plan: its deploy actions numbered in order (`Plan::from_xml`).
        for (action, (vid, hid, picked)) in placement.placed.into_iter().enumerate() {
            // Each placement re-checks the VM is still pending and the host still has room; a
            // SCHED_MESSAGE left by an earlier period goes, as OpenNebula clears it on deploy.
            let mut stmts = clear_message(&ctx, &pool, vid).await;
            // A host that is no longer MONITORED is refused by the statement itself.
            let room = maxes.get(&hid).copied().unwrap_or_default();
            let Some(&from) = from.get(&vid) else {
                continue;
            };
            stmts.extend(deploy_stmts(&vm::Deploy {
                oid: vid,
                hid,
                from,
                room: Some(room),
                by_hand: false,
                ds_id: -1,
                plan_action: Some(action as i64),
                now: now(),
            }));
            // GRAPHICS takes its port in the same write (`set_vnc_port`); the auto NICs' leases
            // then edit the template with the port in it.
            let mut with_port = None;
            if let (Some(text), Some(&cid)) = (texts.get(&vid), clusters.get(&hid)) {
                let from_stop = from.last_action == Some(wire::vm_action::STOP);
                match take_port(&pool, &vnc, (vid, hid, cid), text, from_stop).await {
                    Ok((port, text)) => {
                        stmts.extend(port);
                        with_port = text;
                    }
                    Err(why) => {
                        refused.push((vid, Some(why)));
                        continue;
                    }
                }
            }
            // `set_volatile_disk_info` on the cluster's default system datastore, after the port.
            if let (Some(api), Some(text), Some(&cid)) =
                (api.get(), disked.get(&vid), clusters.get(&hid))
            {
                let text = with_port.clone().unwrap_or_else(|| text.clone());
                match volatile_disks(api, vid, &text, cid).await {
                    Ok(Some((stmt, new))) => {
                        stmts.push(stmt);
                        with_port = Some(new);
                    }
                    Ok(None) => {}
                    Err(why) => {
                        refused.push((vid, Some(format!("Cannot dispatch VM: {why}"))));
                        continue;
                    }
                }
            }
            // Placed in a cluster it was not in, it counts whole for its owner's quota there.
            if let (true, Some(api), Some(&cid)) = (per_cluster, api.get(), clusters.get(&hid)) {
                match crate::api::quota::placed_guard(api, vid, cid).await {
                    Ok(guard) => stmts.extend(guard),
                    Err(why) => {
                        refused.push((vid, Some(format!("Cannot dispatch VM: {why}"))));
                        continue;
                    }
                }
            }
            // Only a VM whose NICs were matched, so through the API, picked networks.
            if let (false, Some(api)) = (picked.is_empty(), api.get()) {
                match lease_picked(api, vid, &picked, with_port).await {
                    Ok(leased) => stmts.extend(leased),
                    Err(f) => {
                        let why = crate::api::vm_backup::message(&f);
                        refused.push((vid, Some(format!("Cannot dispatch VM: {why}"))));
                        continue;
                    }
                }
            }
            let txn = SqlTxn { stmts };
            if let Err(e) = cluster.write(txn).await {
                let what = format!("placing VM {vid} on host {hid} failed; retried next period");
                write_failed(&ctx, &what, &e);
            }
        }
        sched_messages(&ctx, &cluster, &pool, refused).await;
    }
}

/// `match_networks` for the pending VMs with NICs in auto mode, by their owners' rights (a VM
/// whose owner is gone keeps waiting, as OpenNebula's match stops for it).
async fn match_auto_nics(ctx: &TaskCtx, api: &Ctx, vms: &mut [Pending], nets: &[Net]) {
    let mut owners: Vec<i64> = (vms.iter())
        .filter(|p| !p.auto_nics.is_empty())
        .map(|p| p.vm.uid)
        .collect();
    owners.sort_unstable();
    owners.dedup();
    for uid in owners {
        let user = match api.read(move |c| sqlstore::load_user(c, uid)).await {
            Ok(Some(u)) => u,
            Ok(None) => continue,
            Err(e) => {
                let e = crate::api::vm_backup::message(&e);
                ctx.warn(
                    "reading the owner of a VM with NICs in auto mode failed",
                    &e,
                );
                continue;
            }
        };
        let session = crate::auth::Session::of(&user);
        let caller = match crate::api::perms::caller(api, &session).await {
            Ok(c) => c,
            Err(e) => {
                let e = crate::api::vm_backup::message(&e);
                ctx.warn("reading the ACL rules of a VM's owner failed", &e);
                continue;
            }
        };
        let may_use = |o: &sqlstore::Owned| caller.may(wire::acl::NET, o, crate::api::perms::USE);
        for p in vms.iter_mut() {
            if p.vm.uid == uid && !p.auto_nics.is_empty() {
                p.nics = Some(crate::sched_nets::match_nics(&p.auto_nics, nets, may_use));
            }
        }
    }
}

/// The statements that lease the addresses of a placed VM's NICs in auto mode on the networks
/// chosen, as `one.vm.deploy` with its NIC template does (by oneadmin's rights, under the
/// owner's NETWORK quotas), or why they cannot be leased.
async fn lease_picked(
    api: &Ctx,
    vid: i64,
    picked: &[(i64, i64)],
    with_port: Option<String>,
) -> Result<Vec<sqlstore::SqlStmt>, crate::api::Failure> {
    let mut v = crate::api::vm::VMS.get(api, vid).await?;
    if let Some(text) = with_port {
        v.template = text;
    }
    let chosen: Vec<(i64, String)> = (picked.iter())
        .map(|&(nic, net)| (nic, net.to_string()))
        .collect();
    let oneadmin = crate::auth::Session::oneadmin();
    let wording = crate::api::quota::Wording::Action;
    crate::api::vm_auto_nics::lease(api, &oneadmin, &v, &chosen, wording).await
}

/// VM `vid`'s template `text` with its volatile disks on cluster `cid`'s default system
/// datastore (the one its placement's history record names) and the statement writing it.
async fn volatile_disks(
    api: &crate::api::Ctx,
    vid: i64,
    text: &str,
    cid: i64,
) -> Result<Option<(sqlstore::SqlStmt, String)>, String> {
    let ds = api
        .read(move |c| sqlstore::objects::cluster::default_system_ds(c, cid))
        .await
        .map_err(|f| crate::api::vm_backup::message(&f))?;
    let ds = ds.flatten().unwrap_or(0);
    crate::api::vm_volatile::on_datastore(api, vid, text, ds)
        .await
        .map_err(|f| crate::api::vm_backup::message(&f))
}

/// VM `vid`'s GRAPHICS port as it is deployed on host `hid` of cluster `cid`
/// (`crate::api::vm_vnc`): the statements and the template with the port; or why not.
async fn take_port(
    pool: &ReadPool,
    vnc: &crate::api::vm_vnc::VncPorts,
    (vid, hid, cid): (i64, i64, i64),
    text: &str,
    from_stop: bool,
) -> Result<(Vec<sqlstore::SqlStmt>, Option<String>), String> {
    let taken = crate::db::read(pool, move |c| {
        crate::api::vm_vnc::taken_by_others(c, cid, vid)
    })
    .await
    .map_err(|e| format!("Cannot read the cluster's ports: {e}"))?;
    crate::api::vm_vnc::at_deploy(vnc, vid, hid, text, from_stop, &taken)
}

/// Writes the SCHED_MESSAGE of VMs left PENDING where it changed, in as few writes as
/// [`MESSAGE_BYTES`] allows (a VM with a message to write is often one of hundreds left PENDING
/// together); a failed write is tried again next period. Each statement is guarded on the user
/// template it was computed from, so a VM changed meanwhile is left for the next period, the
/// others written.
async fn sched_messages(
    ctx: &TaskCtx,
    cluster: &Cluster,
    pool: &ReadPool,
    unplaced: Vec<(i64, Option<String>)>,
) {
    let wanted: Vec<(i64, String)> = unplaced
        .into_iter()
        .filter_map(|(vid, why)| Some((vid, why?)))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let at = now();
    let read = crate::db::read(pool, move |c| {
        let mut stmts = Vec::new();
        for (vid, why) in &wanted {
            // Gone meanwhile: nothing to tell.
            if let Some(ut) = sqlstore::objects::placement::user_template(c, *vid)? {
                stmts.extend(crate::affinity::sched_message(*vid, &ut, Some(why), at));
            }
        }
        Ok(stmts)
    })
    .await;
    let stmts = match read {
        Ok(stmts) => stmts,
        Err(e) => {
            ctx.warn("reading pending VMs' user templates failed", &e);
            return;
        }
    };
    for stmts in by_size(stmts, MESSAGE_BYTES) {
        if let Err(e) = cluster.write(SqlTxn { stmts }).await {
            write_failed(ctx, "writing SCHED_MESSAGEs failed", &e);
        }
    }
}

/// The text a write of SCHED_MESSAGEs carries at most (each statement holds a VM's user
/// template twice, and a user decides how large it is); a larger statement goes alone.
const MESSAGE_BYTES: usize = 256 << 10;

/// `stmts` in order, in groups weighing at most `cap` bytes in a log entry (or of one
/// statement).
fn by_size(stmts: Vec<sqlstore::SqlStmt>, cap: usize) -> Vec<Vec<sqlstore::SqlStmt>> {
    let mut groups: Vec<Vec<sqlstore::SqlStmt>> = Vec::new();
    let mut bytes = 0;
    for s in stmts {
        let n = s.approx_bytes();
        match groups.last_mut() {
            Some(g) if bytes + n <= cap => {
                bytes += n;
                g.push(s);
            }
            _ => {
                bytes = n;
                groups.push(vec![s]);
            }
        }
    }
    groups
}

/// The statement clearing VM `vid`'s SCHED_MESSAGE, if it has one.
async fn clear_message(ctx: &TaskCtx, pool: &ReadPool, vid: i64) -> Vec<sqlstore::SqlStmt> {
    let read = crate::db::read(pool, move |c| {
        sqlstore::objects::placement::user_template(c, vid)
    })
    .await;
    match read {
        Ok(Some(ut)) => crate::affinity::sched_message(vid, &ut, None, now())
            .into_iter()
            .collect(),
        Ok(None) => Vec::new(),
        // The VM is placed anyway; a message left behind is cleared at its next placement.
        Err(e) => {
            ctx.warn(
                "reading a VM's user template to clear its SCHED_MESSAGE failed",
                &e,
            );
            Vec::new()
        }
    }
}

/// A write refused because leadership moved is expected (the new leader carries on); any other
/// failure is a warning.
fn write_failed(ctx: &TaskCtx, what: &str, e: &WriteError) {
    match e {
        WriteError::NotLeader => debug!(error = %e, "{what}: not the leader any more"),
        _ => ctx.warn(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(oid: i64, cpu: f64, memory: i64, clusters: Option<Vec<i64>>) -> Pending {
        Pending {
            vm: vm::PendingVm {
                oid,
                cpu,
                memory,
                template: String::new(),
                uid: 0,
                last_action: None,
            },
            clusters,
            rules: None,
            matched: None,
            auto_nics: Vec::new(),
            nics: None,
        }
    }

    #[test]
    fn pending_vms_go_to_the_least_loaded_host_that_fits() {
        let vm = |oid, cpu, memory| pending(oid, cpu, memory, None);
        let vms = [
            vm(0, 1.0, 1024),
            vm(1, 4.0, 1024),
            vm(2, 8.0, 1024),
            vm(3, 0.5, 512),
        ];
        let host = |oid, free_cpu| HostRoom {
            oid,
            free_cpu,
            free_mem: 16 << 20,
            running_vms: 0,
            cluster_id: 0,
            max: (800, 16 << 20),
        };
        let hosts = vec![host(0, 800), host(1, 300)];
        assert_eq!(place(&vms, hosts), vec![(0, 0), (1, 0), (3, 1)]);
    }

    #[test]
    fn a_vm_runs_only_in_a_cluster_that_holds_its_datastores_and_networks() {
        let host = |oid, cluster_id, running_vms| HostRoom {
            oid,
            free_cpu: 800,
            free_mem: 16 << 20,
            running_vms,
            cluster_id,
            max: (800, 16 << 20),
        };
        // Host 0 is the least loaded but in cluster 0; the VMs need cluster 100 or nothing.
        let hosts = vec![host(0, 0, 0), host(1, 100, 5)];
        let vms = [
            pending(7, 1.0, 64, Some(vec![100])),
            pending(8, 1.0, 64, Some(vec![])),
            pending(9, 1.0, 64, None),
        ];
        assert_eq!(place(&vms, hosts), vec![(7, 1), (9, 0)]);
    }

    #[test]
    fn groups_are_read_again_only_after_a_new_write() {
        let mut w = LeaverWatch::default();
        assert!(w.due(Some(7)));
        w.read(Some(7), -1, false, 1023);
        assert!(w.due(Some(7)), "a round not finished");
        w.read(Some(7), 1023, false, -1);
        assert!(!w.due(Some(7)), "nothing applied since a clean round");
        assert!(w.due(Some(8)));
        w.read(Some(8), -1, false, 1023);
        w.read(Some(9), 1023, false, -1);
        assert!(w.due(Some(9)), "a write during the round: another round");
        w.read(Some(9), -1, true, -1);
        assert!(w.due(Some(9)), "work found");
        w.read(Some(9), -1, false, -1);
        assert!(!w.due(Some(9)), "a round of one read");
        assert!(w.due(None), "solo: no index, read every period");
        let mut cache = Cached::<Bodies>::default();
        assert!(cache.get(Some(3)).is_none());
        let bodies = Bodies::new(vec![(0, crate::sched_expr::Resource::default())]);
        cache.keep(Some(3), bodies);
        assert_eq!(cache.get(Some(3)).map(|b| b.len()), Some(1));
        assert!(cache.get(Some(4)).is_none() && cache.get(None).is_none());
    }

    #[test]
    fn a_vm_with_a_rank_goes_to_its_best_host_and_requirements_filter() {
        let host = |oid, running_vms| HostRoom {
            oid,
            free_cpu: 800,
            free_mem: 16 << 20,
            running_vms,
            cluster_id: 0,
            max: (800, 16 << 20),
        };
        let hosts = vec![host(0, 0), host(1, 5), host(2, 9)];
        let ranked = |oid, ranks: &[(i64, i64)]| {
            let mut p = pending(oid, 1.0, 64, None);
            p.matched = Some(Ok(Matched {
                hosts: ranks.iter().map(|&(h, r)| (h, Some(r))).collect(),
            }));
            p
        };
        let mut only_2 = pending(12, 1.0, 64, None);
        only_2.matched = Some(Ok(Matched {
            hosts: [(2, None)].into_iter().collect(),
        }));
        let mut none = pending(13, 1.0, 64, None);
        none.matched = Some(Ok(Matched::default()));
        let mut bad = pending(14, 1.0, 64, None);
        bad.matched = Some(Err("Error in SCHED_REQUIREMENTS: 'x', error: e".into()));
        let vms = [
            ranked(10, &[(0, 1), (1, 50), (2, 3)]),
            ranked(11, &[(0, 5), (2, 5)]),
            only_2,
            none,
            bad,
        ];
        let out = place_all(&vms, hosts, BTreeMap::new(), Room::default());
        let placed: Vec<(i64, i64)> = out.placed.iter().map(|(v, h, _)| (*v, *h)).collect();
        assert_eq!(placed, vec![(10, 1), (11, 0), (12, 2)]);
        assert_eq!(
            out.unplaced,
            vec![
                (
                    13,
                    Some("Cannot dispatch VM: No host meets SCHED_REQUIREMENTS".into())
                ),
                (
                    14,
                    Some("Cannot dispatch VM: Error in SCHED_REQUIREMENTS: 'x', error: e".into())
                ),
            ]
        );
    }

    #[test]
    fn disks_and_nics_name_their_images_and_networks_by_id() {
        let t = "DISK = [ IMAGE_ID = \"3\" ]\nDISK = [ IMAGE = \"by-name\" ]\nNIC = [ NETWORK_ID = \"5\" ]\nCPU = \"1\"";
        assert_eq!(images_and_networks(t), (vec![3], vec![5]));
        assert_eq!(images_and_networks("not a template ["), (vec![], vec![]));
    }

    #[test]
    fn messages_are_written_in_groups_of_at_most_the_cap_and_a_large_one_alone() {
        let stmt =
            |n: usize| sqlstore::SqlStmt::new("", vec![sqlstore::SqlValue::Text("x".repeat(n))]);
        let sizes =
            |g: Vec<Vec<sqlstore::SqlStmt>>| -> Vec<usize> { g.iter().map(Vec::len).collect() };
        let cap = 3 * stmt(10).approx_bytes();
        assert_eq!(sizes(by_size(vec![stmt(10); 7], cap)), [3, 3, 1]);
        assert_eq!(
            sizes(by_size(vec![stmt(10), stmt(100), stmt(10), stmt(10)], cap)),
            [1, 1, 2]
        );
        assert!(by_size(Vec::new(), cap).is_empty());
    }
}
