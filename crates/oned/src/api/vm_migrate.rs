//! `one.vm.migrate(id, hid, live, enforce, ds_id, poweroff)`, as OpenNebula's
//! `VirtualMachineMigrate` and `DispatchManager::{migrate,live_migrate}`: an administrator
//! moves a RUNNING, UNKNOWN, POWEROFF or SUSPENDED VM to another host. The VM gets a new
//! history record at once (the old one closed), so the host usage moves with it when the
//! hosts are recounted; the leader's dummy driver then walks it through MIGRATE (live) or
//! SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT_MIGRATE (cold) back to where it was.

use sqlstore::objects::host::HostRow;
use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::objects::Table;
use sqlstore::{SqlStmt, SqlValue};
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::perms::ADMIN;
use super::vm::{lcm, now, state, VMS};
use super::vm_actions::number;
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!("one.vm.migrate", Write, Auth::Object, migrate)];

/// The dummy driver's only system datastore: every history record names it.
const SYSTEM_DS: i64 = 0;

/// Where a migration starts: the (state, lcm) the VM goes to, or `None` when OpenNebula
/// refuses the VM's state.
pub fn first_state(v: &VmRow, live: bool) -> Option<(i64, i64)> {
    match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) if live => Some((state::ACTIVE, lcm::MIGRATE)),
        (state::ACTIVE, lcm::RUNNING) => Some((state::ACTIVE, lcm::SAVE_MIGRATE)),
        (state::ACTIVE, lcm::UNKNOWN) => Some((state::ACTIVE, lcm::PROLOG_MIGRATE_UNKNOWN)),
        (state::POWEROFF, _) => Some((state::ACTIVE, lcm::PROLOG_MIGRATE_POWEROFF)),
        (state::SUSPENDED, _) => Some((state::ACTIVE, lcm::PROLOG_MIGRATE_SUSPEND)),
        _ => None,
    }
}

pub async fn migrate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let hid = p.int(1)? as i64;
    let live = p.opt_bool(2)?.unwrap_or(false);
    let enforce = p.opt_bool(3)?.unwrap_or(false);
    let ds_id = match p.0.get(4) {
        Some(_) => p.int(4)? as i64,
        None => -1,
    };
    // 0 save, 1 poweroff, 2 poweroff-hard: the dummy driver does all three the same way, the
    // history record tells them apart.
    let poweroff = match p.0.get(5) {
        Some(_) => p.int(5)?,
        None => 0,
    };
    let host = ctx
        .read(move |c| sqlstore::objects::host::load(c, hid))
        .await?
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting host [{hid}].")))?;
    // `get_host_information`.
    if host.state == wire::HostState::Offline.as_i64() {
        return Err(fail(
            code::ACTION,
            "Host is offline, cannot use it to deploy VM",
        ));
    }
    if ds_id != -1 {
        super::must_exist(ctx, Table::Datastore, ds_id).await?;
    }
    let v = VMS.get(ctx, id).await?;
    let right = super::vm_ops::right(ctx, s, "migrate", ADMIN).await?;
    let named_ds = (ds_id != -1).then_some(ds_id);
    super::vm::deploy_authorized(ctx, s, &v, right, hid, named_ds).await?;
    let to = first_state(&v, live).ok_or_else(|| {
        fail(
            code::ACTION,
            format!(
                "Migrate action is not available for state {}",
                state_str(&v)
            ),
        )
    })?;
    let c_hid = v.history.last().map_or(-1, |h| h.hid);
    // The system datastore the VM is on (`get_ds_id`).
    let c_ds = v.history.last().map_or(SYSTEM_DS, |h| h.ds_id);
    if c_hid == hid && (ds_id == -1 || ds_id == c_ds) {
        return Err(fail(
            code::ACTION,
            format!("VM is already running on host [{c_hid}] and datastore [{c_ds}]"),
        ));
    }
    if enforce {
        fits(ctx, &v, hid).await?;
    }
    let ds_id = target_ds(ctx, &v, &host, ds_id, c_ds, live).await?;
    check_clusters(ctx, &v, &host, ds_id).await?;
    let mut stmts = rows::move_stmts(&Move {
        oid: id,
        from: (v.state, v.lcm_state),
        to,
        now: now(),
        leaves_host: false,
    });
    // The record it leaves says how and who moved it (`trigger_migrate` and its kin).
    let action = match (live, poweroff) {
        (true, _) => number::LIVE_MIGRATE,
        (false, 1) => number::POFF_MIGRATE,
        (false, 2) => number::POFF_HARD_MIGRATE,
        _ => number::MIGRATE,
    };
    stmts.push(rows::set_action(
        id,
        rows::Record::Open,
        rows::Asked {
            action,
            uid: s.uid,
            gid: s.gid,
        },
    ));
    stmts.extend(new_host_stmts(id, c_hid, hid, Some(ds_id), now()));
    // `set_volatile_disk_info` on the system datastore it moves to; the snapshots then go
    // from that template.
    let mut edited = v.clone();
    if let Some((stmt, new)) = super::vm_volatile::on_datastore(ctx, id, &v.template, ds_id).await?
    {
        stmts.push(stmt);
        edited.template = new;
    }
    stmts.extend(super::vm::drop_snapshots(ctx, &edited));
    // A VM not running starts copying its disks to the new host at once
    // (`start_prolog_migrate`); a running one after its save (a driver step).
    if to.1 != lcm::MIGRATE && to.1 != lcm::SAVE_MIGRATE {
        stmts.push(rows::stamp(id, rows::Record::Open, &["pstime"], now()));
    }
    if enforce {
        stmts.push(rows::host_fits(id));
    }
    // The LCM's `set_resched(false)` of a migration.
    stmts.push(rows::clear_resched(id));
    // Into another cluster, the VM counts whole for that cluster's VM quota.
    let running = sqlstore::objects::quota::counts_as_running(v.state);
    let placed = super::quota::Ask::placed(&ctx.config.raw, &v, host.cluster_id, running);
    let charge = placed.as_ref().map(|ask| super::quota::Charge {
        asks: std::slice::from_ref(ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: super::quota::Wording::Caller(s.uid),
    });
    super::quota::commit_charged(ctx, stmts, charge, |r| {
        r.missing(fail(
            code::ACTION,
            "Cannot migrate the VM: it or its hosts changed meanwhile, try again",
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// VM `vid`, still on `from`, moves to host `to` and system datastore `ds` (`None`: the one
/// it is on): its open history record is closed, a new one opened, and both hosts' usage
/// recounted.
pub fn new_host_stmts(vid: i64, from: i64, to: i64, ds: Option<i64>, now: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "UPDATE vm_pool SET hid = ?2 WHERE oid = ?1 AND hid = ?3",
            vec![SqlValue::Int(vid), SqlValue::Int(to), SqlValue::Int(from)],
        )
        .must_match(),
        // The record it leaves ends, and its running time with it if the VM ran there.
        SqlStmt::new(
            "UPDATE history SET etime = ?2,
                 retime = CASE WHEN retime = 0 AND rstime > 0 THEN ?2 ELSE retime END
             WHERE vid = ?1 AND etime = 0",
            vec![SqlValue::Int(vid), SqlValue::Int(now)],
        ),
        // In the new host's cluster, on the system datastore named or the one it was on.
        SqlStmt::new(
            "INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime, cid, ds_id)
             SELECT ?1, COALESCE((SELECT MAX(seq) + 1 FROM history WHERE vid = ?1), 0),
                    h.oid, h.name, h.vm_mad, ?3, h.cluster_id,
                    CASE WHEN ?4 >= 0 THEN ?4 ELSE
                    COALESCE((SELECT o.ds_id FROM history o WHERE o.vid = ?1
                              ORDER BY o.seq DESC LIMIT 1), 0) END
             FROM host_pool h WHERE h.oid = ?2",
            vec![
                SqlValue::Int(vid),
                SqlValue::Int(to),
                SqlValue::Int(now),
                SqlValue::Int(ds.unwrap_or(-1)),
            ],
        )
        .must_match(),
        rows::recount_host_ids(&[from, to]),
    ]
}

/// `RequestManagerVirtualMachine::check_host` with `enforce`: the whole VM fits in what the
/// new host has free.
pub(super) async fn fits(ctx: &Ctx, v: &VmRow, hid: i64) -> Result<(), Failure> {
    let free = ctx
        .read(move |c| sqlstore::objects::host::free_capacity(c, hid))
        .await?;
    let Some((free_cpu, free_mem)) = free else {
        return Err(fail(code::ACTION, "Host no longer exists"));
    };
    let (want_cpu, want_mem) = ((v.cpu * 100.0).round() as i64, v.memory * 1024);
    let why = if want_cpu > free_cpu {
        format!("Not enough CPU: {want_cpu}/{free_cpu}")
    } else if want_mem > free_mem {
        format!("Not enough memory: {want_mem}/{free_mem}")
    } else {
        return Ok(());
    };
    Err(fail(
        code::ACTION,
        format!(
            "virtual machine [{}] does not fit in host [{hid}]. {why}",
            v.head.owned.oid
        ),
    ))
}

/// The system datastore a VM deployed on `host` uses, checked as `VirtualMachineDeploy` checks
/// it: `ds_id`, a system datastore in the host's cluster, or with -1 the cluster's default
/// (`get_default_system_ds_information`), with OpenNebula's codes and words.
pub(super) async fn system_ds_for(ctx: &Ctx, host: &HostRow, ds_id: i64) -> Result<i64, Failure> {
    let (hid, cid) = (host.oid, host.cluster_id);
    if ds_id == -1 {
        let found = ctx
            .read(move |c| sqlstore::objects::cluster::default_system_ds(c, cid))
            .await?;
        return match found {
            None => Err(fail(
                code::NO_EXISTS,
                format!("Error getting cluster [{cid}]."),
            )),
            Some(None) => Err(fail(
                code::ACTION,
                format!("cluster [{cid}] does not have any datastore of type SYSTEM_DS."),
            )),
            Some(Some(ds)) => Ok(ds),
        };
    }
    let ds = super::storage::DATASTORES.get(ctx, ds_id).await?;
    if ds.kind != 1 {
        return Err(fail(
            code::INTERNAL,
            format!(
                "Trying to use datastore [{ds_id}] to deploy the VM, but it is not of type \
                 system datastore."
            ),
        ));
    }
    if !ds.clusters.contains(&cid) {
        return Err(fail(
            code::ACTION,
            format!("datastore [{ds_id}] and host [{hid}] are not in the same cluster [{cid}]."),
        ));
    }
    Ok(ds_id)
}

/// The system datastore a migration ends on, as `VirtualMachineMigrate` checks a change of it:
/// `ds_id` when named and not the current `c_ds`, if the host's VM driver moves disks live
/// (DS_LIVE_MIGRATION, which no shipped driver says) or the migration is cold, and the
/// datastore is a system one saying DS_MIGRATE on the same transfer driver; else `c_ds`.
async fn target_ds(
    ctx: &Ctx,
    v: &VmRow,
    host: &HostRow,
    ds_id: i64,
    c_ds: i64,
    live: bool,
) -> Result<i64, Failure> {
    if ds_id == -1 || ds_id == c_ds {
        return Ok(c_ds);
    }
    let raw = &ctx.config.raw;
    let live_ok = raw.get("VM_MAD").is_some()
        && super::ds_conf::vm_mad_says(raw, &host.vm_mad, "DS_LIVE_MIGRATION");
    if live && !live_ok {
        return Err(fail(
            code::ACTION,
            "A migration to a different system datastore cannot be performed live.",
        ));
    }
    let ds = super::storage::DATASTORES.get(ctx, ds_id).await?;
    if ds.kind != super::images::SYSTEM_DS {
        return Err(fail(
            code::INTERNAL,
            format!(
                "Trying to use datastore [{ds_id}] to deploy the VM, but it is not of type \
                 system datastore."
            ),
        ));
    }
    let migrates = template::Template::parse(&ds.template)
        .ok()
        .and_then(|t| {
            t.single("DS_MIGRATE")
                .map(|m| m.trim().eq_ignore_ascii_case("yes"))
        })
        .unwrap_or(false);
    if !migrates {
        return Err(fail(
            code::ACTION,
            "System datastore migration not supported by driver",
        ));
    }
    let c_tm_mad = v.history.last().map_or("", |h| h.tm_mad.as_str());
    if c_tm_mad != ds.tm_mad {
        return Err(fail(
            code::ACTION,
            "Cannot migrate to a system datastore with a different driver",
        ));
    }
    Ok(ds_id)
}

/// The new host must be in a cluster the VM's images and networks allow, and that holds the
/// system datastore `ds`.
async fn check_clusters(ctx: &Ctx, v: &VmRow, host: &HostRow, ds: i64) -> Result<(), Failure> {
    use sqlstore::objects::cluster::{allowed_for, clusters_of, Member};
    let (vid, hid, cid) = (v.head.owned.oid, host.oid, host.cluster_id);
    let template = v.template.clone();
    let (allowed, ds_clusters) = ctx
        .read(move |c| {
            let t = template::Template::parse(&template).unwrap_or_default();
            let ids = |attr: &str, key: &str| -> Vec<i64> {
                t.get_all(attr)
                    .filter_map(|a| a.vector_get(key))
                    .filter_map(|v| v.trim().parse().ok())
                    .collect()
            };
            let allowed = allowed_for(c, &ids("DISK", "IMAGE_ID"), &ids("NIC", "NETWORK_ID"))?;
            Ok((allowed, clusters_of(c, Member::Datastore, ds)?))
        })
        .await?;
    let join = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    if let Some(allowed) = allowed.filter(|a| !a.is_empty() && !a.contains(&cid)) {
        return Err(fail(
            code::ACTION,
            format!(
                "Cannot migrate  VM [{vid}] to host [{hid}]. Host is in cluster [{cid}], and VM \
                 requires to be placed on cluster [{}]",
                join(&allowed)
            ),
        ));
    }
    if !ds_clusters.is_empty() && !ds_clusters.contains(&cid) {
        return Err(fail(
            code::ACTION,
            format!(
                "Cannot migrate VM [{vid}] to host [{hid}] and system datastore [{ds}]. Host is \
                 in cluster [{cid}], and the datastore is in cluster [{}]",
                join(&ds_clusters)
            ),
        ));
    }
    Ok(())
}
