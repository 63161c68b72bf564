//! What each `one.vm.action` does to a VM in a given state, as OpenNebula 7.0's
//! `DispatchManager` (terminate, undeploy, poweroff, hold, release, stop, suspend, resume,
//! reboot) and the `LifeCycleManager` triggers it calls choose the next state; shared by the
//! API call and the leader's scheduled-action runner, so both refuse and move alike.

use sqlstore::objects::vm::{self as rows, Asked, Record};
use sqlstore::SqlStmt;
use wire::LcmState as L;

use super::vm::{lcm, state};

/// An action's effect on a VM in (state, lcm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The VM moves to (state, lcm).
    Move((i64, i64)),
    /// Accepted with nothing to write: a DONE VM terminated, a hard action over the same soft
    /// one in progress, a reboot (the dummy driver reboots in place).
    Nothing,
    /// Refused with the text that follows `Error performing action "<action>": `.
    Refused(String),
    /// Not a VM action: `Action "<action>" is not supported`.
    Unsupported,
}

pub use wire::vm_action as number;

/// The number `one.vm.action`'s `action` records on the VM's open history record
/// (`LifeCycleManager`'s `set_action`), if it records one.
fn recorded(action: &str) -> Option<i64> {
    use number::*;
    Some(match action {
        "undeploy" => UNDEPLOY,
        "undeploy-hard" => UNDEPLOY_HARD,
        "stop" => STOP,
        "suspend" => SUSPEND,
        "poweroff" => POWEROFF,
        "poweroff-hard" => POWEROFF_HARD,
        "terminate" => TERMINATE,
        "terminate-hard" => TERMINATE_HARD,
        _ => return None,
    })
}

/// The history statements of `action` moving VM `vid` to `to`, asked by (`uid`, `gid`): a
/// resume that boots the VM on its host closes its record and opens a copy with RESUME
/// (`trigger_restore`, `trigger_restart`); terminate, undeploy, poweroff, stop and suspend
/// record themselves on the VM's last record, `last` (its SEQ) if the caller read it, else the
/// open one.
pub fn history(
    action: &str,
    vid: i64,
    last: Option<i64>,
    from: (i64, i64),
    to: (i64, i64),
    by: (i64, i64),
    now: i64,
) -> Vec<SqlStmt> {
    let asked = |action| Asked {
        action,
        uid: by.0,
        gid: by.1,
    };
    if action == "resume" && to.0 == state::ACTIVE {
        return rows::close_cp_history(vid, None, Some(asked(number::RESUME)), now);
    }
    let Some(mut n) = recorded(action) else {
        return Vec::new();
    };
    // A VM that never left for a host ends as it is: no record says so (`free_vm_resources`);
    // one in a failure state is deleted (`trigger_delete`: DELETE).
    if to.0 == state::DONE {
        if from.0 != state::ACTIVE {
            return Vec::new();
        }
        n = number::DELETE;
    }
    // Off its host, a hard terminate or undeploy is the soft one (`trigger_shutdown(vid,
    // false)`, `trigger_undeploy`'s POWEROFF branch).
    if to == (state::ACTIVE, lcm::EPILOG) && n == number::TERMINATE_HARD {
        n = number::TERMINATE;
    }
    if to == (state::ACTIVE, lcm::EPILOG_UNDEPLOY) && n == number::UNDEPLOY_HARD {
        n = number::UNDEPLOY;
    }
    let record = last.map_or(Record::Open, Record::Seq);
    let mut stmts = vec![rows::set_action(vid, record, asked(n))];
    // A VM that was not running goes straight to its epilog (`trigger_shutdown`,
    // `trigger_undeploy`, `trigger_stop`): it starts now.
    let epilog = [lcm::EPILOG, lcm::EPILOG_UNDEPLOY, lcm::EPILOG_STOP];
    if let (Some(seq), true) = (last, to.0 == state::ACTIVE && epilog.contains(&to.1)) {
        stmts.push(rows::stamp(vid, Record::Seq(seq), &["estime"], now));
    }
    stmts
}

/// `DispatchManager::close_cp_history` of an operation `action` the caller `s` did on VM
/// `vid`: its open record closed with it, a copy opened (nothing for a VM off its host).
pub fn closed_by(s: &crate::auth::Session, vid: i64, action: i64) -> Vec<SqlStmt> {
    let asked = Asked {
        action,
        uid: s.uid,
        gid: s.gid,
    };
    rows::close_cp_history(vid, Some(asked), None, super::vm::now())
}

/// The failure states `DispatchManager::terminate` ends at once (`trigger_delete`).
fn is_failure(lc: i64) -> bool {
    matches!(
        L::from_i64(lc),
        Some(
            L::BootFailure
                | L::BootMigrateFailure
                | L::PrologMigrateFailure
                | L::PrologFailure
                | L::EpilogFailure
                | L::EpilogStopFailure
                | L::EpilogUndeployFailure
                | L::PrologMigratePoweroffFailure
                | L::PrologMigrateSuspendFailure
                | L::BootUndeployFailure
                | L::BootStoppedFailure
                | L::PrologResumeFailure
                | L::PrologUndeployFailure
                | L::PrologMigrateUnknownFailure
        )
    )
}

/// What `action` does to VM `vid` in (`st`, `lc`) (resched and unresched are
/// `vm_resched`'s).
pub fn outcome(action: &str, vid: i64, st: i64, lc: i64) -> Outcome {
    use lcm::*;
    use state::*;
    use Outcome::{Move, Nothing};
    let hard = action.ends_with("-hard");
    let active = |l: i64| st == ACTIVE && lc == l;
    let up = active(RUNNING) || active(UNKNOWN);
    let name = super::vm::state_name(st, lc);
    let unavailable = || Outcome::Refused(format!("This action is not available for state {name}"));
    match action {
        "terminate" | "terminate-hard" => match st {
            SUSPENDED | POWEROFF | STOPPED | UNDEPLOYED => Move((ACTIVE, EPILOG)),
            VM_INIT | PENDING | HOLD | CLONING | CLONING_FAILURE => Move((DONE, INIT)),
            DONE => Nothing,
            ACTIVE if up => Move((ACTIVE, SHUTDOWN)),
            ACTIVE if is_failure(lc) => Move((DONE, INIT)),
            ACTIVE if hard && lc == SHUTDOWN => Nothing,
            _ => Outcome::Refused(format!("Could not terminate VM {vid}, wrong state {name}.")),
        },
        "undeploy" | "undeploy-hard" if st == POWEROFF => Move((ACTIVE, EPILOG_UNDEPLOY)),
        "undeploy" | "undeploy-hard" if up => Move((ACTIVE, SHUTDOWN_UNDEPLOY)),
        "undeploy-hard" if active(SHUTDOWN_UNDEPLOY) => Nothing,
        "poweroff" | "poweroff-hard" if up => Move((ACTIVE, SHUTDOWN_POWEROFF)),
        "poweroff-hard" if active(SHUTDOWN_POWEROFF) => Nothing,
        "hold" if st == PENDING => Move((HOLD, INIT)),
        "release" if st == HOLD => Move((PENDING, INIT)),
        "stop" if active(RUNNING) => Move((ACTIVE, SAVE_STOP)),
        "stop" if st == SUSPENDED => Move((ACTIVE, EPILOG_STOP)),
        "suspend" if active(RUNNING) => Move((ACTIVE, SAVE_SUSPEND)),
        "reboot" | "reboot-hard" if active(RUNNING) => Nothing,
        "resume" => match st {
            STOPPED | UNDEPLOYED => Move((PENDING, INIT)),
            SUSPENDED => Move((ACTIVE, BOOT_SUSPENDED)),
            POWEROFF => Move((ACTIVE, BOOT_POWEROFF)),
            ACTIVE if lc == UNKNOWN => Move((ACTIVE, BOOT_UNKNOWN)),
            _ => unavailable(),
        },
        "undeploy" | "undeploy-hard" | "poweroff" | "poweroff-hard" | "hold" | "release"
        | "stop" | "suspend" | "reboot" | "reboot-hard" => unavailable(),
        _ => Outcome::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lcm::*;
    use state::*;
    use Outcome::*;

    #[test]
    fn actions_move_vms_as_the_dispatch_manager_does() {
        let cases: &[(&str, (i64, i64), Outcome)] = &[
            ("terminate", (ACTIVE, RUNNING), Move((ACTIVE, SHUTDOWN))),
            ("terminate", (ACTIVE, UNKNOWN), Move((ACTIVE, SHUTDOWN))),
            ("terminate", (POWEROFF, INIT), Move((ACTIVE, EPILOG))),
            ("terminate-hard", (STOPPED, INIT), Move((ACTIVE, EPILOG))),
            ("terminate", (HOLD, INIT), Move((DONE, INIT))),
            ("terminate", (CLONING, INIT), Move((DONE, INIT))),
            ("terminate", (DONE, INIT), Nothing),
            (
                "terminate",
                (ACTIVE, L::PrologResumeFailure.as_i64()),
                Move((DONE, INIT)),
            ),
            ("terminate-hard", (ACTIVE, SHUTDOWN), Nothing),
            (
                "terminate",
                (ACTIVE, SHUTDOWN),
                Refused("Could not terminate VM 7, wrong state SHUTDOWN.".into()),
            ),
            (
                "undeploy",
                (POWEROFF, INIT),
                Move((ACTIVE, EPILOG_UNDEPLOY)),
            ),
            ("undeploy-hard", (ACTIVE, SHUTDOWN_UNDEPLOY), Nothing),
            (
                "poweroff",
                (ACTIVE, UNKNOWN),
                Move((ACTIVE, SHUTDOWN_POWEROFF)),
            ),
            (
                "poweroff",
                (ACTIVE, SHUTDOWN_POWEROFF),
                Refused("This action is not available for state SHUTDOWN_POWEROFF".into()),
            ),
            ("stop", (SUSPENDED, INIT), Move((ACTIVE, EPILOG_STOP))),
            (
                "suspend",
                (SUSPENDED, INIT),
                Refused("This action is not available for state SUSPENDED".into()),
            ),
            ("reboot", (ACTIVE, RUNNING), Nothing),
            ("resume", (ACTIVE, UNKNOWN), Move((ACTIVE, BOOT_UNKNOWN))),
            ("resume", (UNDEPLOYED, INIT), Move((PENDING, INIT))),
            (
                "release",
                (PENDING, INIT),
                Refused("This action is not available for state PENDING".into()),
            ),
            ("delete", (ACTIVE, RUNNING), Unsupported),
        ];
        for (action, (st, lc), want) in cases {
            assert_eq!(&outcome(action, 7, *st, *lc), want, "{action} in {st}/{lc}");
        }
    }
}
