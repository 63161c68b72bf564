//! `one.vm.recover(id, operation)`, as OpenNebula's `VirtualMachineRecover`: an administrator
//! ends an operation the driver left hanging by hand (0 failure, 1 success), starts it again
//! (2 retry) or gets rid of the VM (3 delete, 4 delete-recreate, 5 delete-db). Each is one
//! guarded state change; a VM reaching DONE gives back its leases, images and groups through
//! the statements that end VMs.

use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::SqlStmt;
use wire::LcmState as L;
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::perms::ADMIN;
use super::quota::{Ask, Charge, Wording};
use super::vm::{lcm, now, state, VMS};
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!("one.vm.recover", Write, Auth::Object, recover)];

const A: i64 = state::ACTIVE;

/// Where a recovered ACTIVE VM goes: (success, failure) as the driver's `*_success` and
/// `*_failure` callbacks of `LifeCycleManager` move it. A state not listed stays as it is.
fn outcomes(lcm_state: i64) -> Option<((i64, i64), (i64, i64))> {
    let l = |s: L| (A, s.as_i64());
    let running = l(L::Running);
    let poweroff = (state::POWEROFF, lcm::INIT);
    let suspended = (state::SUSPENDED, lcm::INIT);
    let st = L::from_i64(lcm_state)?;
    Some(match st {
        L::Prolog | L::PrologFailure => (l(L::Boot), l(L::PrologFailure)),
        L::PrologResume | L::PrologResumeFailure => (l(L::BootStopped), l(L::PrologResumeFailure)),
        L::PrologUndeploy | L::PrologUndeployFailure => {
            (l(L::BootUndeploy), l(L::PrologUndeployFailure))
        }
        L::PrologMigrate | L::PrologMigrateFailure => {
            (l(L::BootMigrate), l(L::PrologMigrateFailure))
        }
        L::PrologMigrateUnknown | L::PrologMigrateUnknownFailure => {
            (l(L::BootMigrate), l(L::PrologMigrateUnknownFailure))
        }
        L::PrologMigratePoweroff | L::PrologMigratePoweroffFailure => {
            (poweroff, l(L::PrologMigratePoweroffFailure))
        }
        L::PrologMigrateSuspend | L::PrologMigrateSuspendFailure => {
            (suspended, l(L::PrologMigrateSuspendFailure))
        }
        L::Boot | L::BootFailure => (running, l(L::BootFailure)),
        L::BootMigrate | L::BootMigrateFailure => (running, l(L::BootMigrateFailure)),
        L::BootStopped | L::BootStoppedFailure => (running, l(L::BootStoppedFailure)),
        L::BootUndeploy | L::BootUndeployFailure => (running, l(L::BootUndeployFailure)),
        L::BootPoweroff => (running, poweroff),
        L::BootSuspended => (running, suspended),
        L::BootUnknown => (running, l(L::Unknown)),
        L::Migrate => (running, running),
        L::SaveMigrate => (l(L::PrologMigrate), running),
        L::SaveStop => (l(L::EpilogStop), running),
        L::SaveSuspend => (suspended, running),
        L::Shutdown => (l(L::Epilog), running),
        L::ShutdownPoweroff => (poweroff, running),
        L::ShutdownUndeploy => (l(L::EpilogUndeploy), running),
        L::Epilog | L::EpilogFailure => ((state::DONE, lcm::INIT), l(L::EpilogFailure)),
        L::EpilogStop | L::EpilogStopFailure => {
            ((state::STOPPED, lcm::INIT), l(L::EpilogStopFailure))
        }
        L::EpilogUndeploy | L::EpilogUndeployFailure => {
            ((state::UNDEPLOYED, lcm::INIT), l(L::EpilogUndeployFailure))
        }
        L::Hotplug | L::HotplugNic | L::HotplugResize => (running, running),
        L::HotplugPrologPoweroff | L::HotplugEpilogPoweroff => (poweroff, poweroff),
        L::Unknown => (running, running),
        _ => return None,
    })
}

/// What `LifeCycleManager::retry` starts again from a failure state.
fn retried(lcm_state: i64) -> Option<i64> {
    let st = L::from_i64(lcm_state)?;
    Some(
        match st {
            L::BootFailure => L::Boot,
            L::BootMigrateFailure => L::BootMigrate,
            L::PrologFailure => L::Prolog,
            L::PrologResumeFailure => L::PrologResume,
            L::PrologUndeployFailure => L::PrologUndeploy,
            L::BootStoppedFailure => L::BootStopped,
            L::BootUndeployFailure => L::BootUndeploy,
            L::PrologMigrateFailure => L::PrologMigrate,
            L::PrologMigratePoweroffFailure => L::PrologMigratePoweroff,
            L::PrologMigrateSuspendFailure => L::PrologMigrateSuspend,
            L::PrologMigrateUnknownFailure => L::PrologMigrateUnknown,
            L::EpilogFailure => L::Epilog,
            L::EpilogStopFailure => L::EpilogStop,
            L::EpilogUndeployFailure => L::EpilogUndeploy,
            _ => return None,
        }
        .as_i64(),
    )
}

/// Whether reaching `to` takes the VM off its host (its history closed, usage recounted).
fn leaves_host(to: (i64, i64)) -> bool {
    matches!(
        to.0,
        state::DONE | state::STOPPED | state::UNDEPLOYED | state::PENDING
    )
}

pub async fn recover(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let op = p.int(1)?;
    if !(0..=5).contains(&op) {
        return Err(fail(code::ACTION, "Wrong recovery operation code"));
    }
    // `VirtualMachineRecover`: the operation decides the action authorized.
    let action = match op {
        0 | 1 => "recover",
        2 => "retry",
        4 => "delete-recreate",
        _ => "delete",
    };
    let right = super::vm_ops::right(ctx, s, action, ADMIN).await?;
    let v = VMS.authorized(ctx, s, id, right).await?;
    let (st, lc) = (v.state, v.lcm_state);
    let to = match op {
        0 | 1 => match st {
            A => outcomes(lc).map(|(ok, ko)| if op == 1 { ok } else { ko }),
            state::CLONING_FAILURE if op == 1 => Some((state::PENDING, lcm::INIT)),
            state::CLONING_FAILURE => None,
            _ => {
                return Err(fail(
                    code::ACTION,
                    format!(
                        "Could not perform a recover operation on VM {id}, wrong state {}.",
                        state_str(&v)
                    ),
                ))
            }
        },
        2 => match st {
            A => retried(lc).map(|l| (A, l)),
            _ => {
                return Err(fail(
                    code::ACTION,
                    format!(
                        "Could not perform a retry on VM {id}, wrong state {}.",
                        state_str(&v)
                    ),
                ))
            }
        },
        4 => match st {
            state::DONE => {
                return Err(fail(
                    code::ACTION,
                    "Cannot delete-recreate a VM already in DONE state",
                ))
            }
            state::VM_INIT | state::PENDING | state::CLONING | state::CLONING_FAILURE => None,
            _ => Some((state::PENDING, lcm::INIT)),
        },
        // 3 delete, 5 delete-db: both end the VM (the dummy driver has no disks to clean).
        _ => (st != state::DONE).then_some((state::DONE, lcm::INIT)),
    };
    let Some(to) = to else {
        return Ok(Value::Int(id as i32));
    };
    if to == (st, lc) {
        return Ok(Value::Int(id as i32));
    }
    let mut stmts = stmts_for(&v, to, op == 0)?;
    // `LifeCycleManager::clean_up_vm`, for a delete of an ACTIVE VM (`trigger_delete`) and a
    // delete-recreate of an ACTIVE, POWEROFF or SUSPENDED one (`trigger_delete_recreate`): no
    // rescheduling, no VM snapshots unless the driver keeps them, and none at all after a
    // recreate. The other states end or restart without the LCM, which leaves both.
    match (op, st) {
        (3, state::ACTIVE) => {
            stmts.push(sqlstore::objects::vm::clear_resched(id));
            stmts.extend(super::vm::drop_snapshots(ctx, &v));
        }
        (4, state::ACTIVE | state::POWEROFF | state::SUSPENDED) => {
            stmts.push(sqlstore::objects::vm::clear_resched(id));
            stmts.extend(super::vm::erase_snapshots(&v));
        }
        _ => {}
    }
    // `DispatchManager::delete_recreate` records itself on the VM's last record: a STOPPED VM
    // recreated is then deployed anew, not resumed (`DeployFrom::prolog`).
    if let (4, Some(last)) = (op, v.history.last()) {
        let asked = rows::Asked {
            action: super::vm_actions::number::DELETE_RECREATE,
            uid: s.uid,
            gid: s.gid,
        };
        stmts.insert(0, rows::set_action(id, rows::Record::Seq(last.seq), asked));
    }
    // A STOPPED or UNDEPLOYED VM recreated counts for its owner's RUNNING_* quotas again
    // (`DispatchManager::delete_recreate` checks them; a POWEROFF or SUSPENDED one is added
    // unchecked by `clean_up_vm`).
    let running = sqlstore::objects::quota::counts_as_running;
    let ask = Ask::running_vm(v.cpu, v.memory as f64).within(super::quota::cluster_of(&v));
    let checked = matches!(st, state::STOPPED | state::UNDEPLOYED);
    let charge = (checked && !running(st) && running(to.0)).then_some(Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: Wording::Recreate,
    });
    super::quota::commit_charged(ctx, stmts, charge, |r| {
        r.missing(fail(
            code::ACTION,
            "Could not perform a recover operation: the VM changed state meanwhile",
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// The guarded move to `to`; a migration recovered as failed (`failed`) also puts the VM back
/// on the host it came from (`revert_migrate_after_failure` copies the previous history
/// record); one recovered as done stays where it went (`trigger_deploy_success`).
fn stmts_for(v: &VmRow, to: (i64, i64), failed: bool) -> Result<Vec<SqlStmt>, Failure> {
    let id = v.head.owned.oid;
    let from = (v.state, v.lcm_state);
    let mut stmts = rows::move_stmts(&Move {
        oid: id,
        from,
        to,
        now: now(),
        leaves_host: leaves_host(to),
    });
    // Into EPILOG too: the driver step that ends EPILOG VMs hands back only those it read
    // before, and this VM may enter EPILOG in between (a second hand-back is the same).
    if to.0 == state::DONE && from.0 == A && from.1 != lcm::EPILOG {
        stmts.splice(0..0, sqlstore::objects::image::fail_used_by(id, now()));
    }
    if to.0 == state::DONE || to == (A, lcm::EPILOG) {
        stmts.splice(0..0, super::image_snaps::hand_back(&v.template, id, None));
    }
    let migrating = matches!(from.1, lcm::MIGRATE | lcm::SAVE_MIGRATE) && from.0 == A;
    if failed && migrating && to == (A, lcm::RUNNING) && v.history.len() >= 2 {
        let n = v.history.len();
        let (cur, prev) = (v.history[n - 1].hid, v.history[n - 2].hid);
        stmts.extend(super::vm_migrate::new_host_stmts(
            id,
            cur,
            prev,
            None,
            now(),
        ));
    }
    Ok(stmts)
}
