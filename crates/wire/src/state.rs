//! OpenNebula 7.0's object states, with the numbers stored in `state` columns and shown in
//! `<STATE>`, the names its XML-RPC errors and `onevm show` use, and the short names of the
//! `list` commands' STAT column (Ruby OCA: `SHORT_VM_STATES`, `SHORT_LCM_STATES`, ...).
//!
//! Values commented out in OpenNebula's headers (VM `FAILED` 7, LCM `CANCEL` 13, `FAILURE` 14,
//! ...) are not states any server sets, so they have no variant here.

use std::fmt;

/// Declares a state enum: variant = number, full name, short name.
macro_rules! states {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident = $value:literal, $name:literal, $short:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i64)]
        pub enum $ty {
            $($variant = $value,)*
        }

        impl $ty {
            /// Every state, in number order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            pub const fn as_i64(self) -> i64 {
                self as i64
            }

            /// `None` for a number OpenNebula gives no state.
            pub const fn from_i64(value: i64) -> Option<$ty> {
                match value {
                    $($value => Some($ty::$variant),)*
                    _ => None,
                }
            }

            /// OpenNebula's name (`state_to_str`).
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// The `list` commands' STAT column; empty where OpenNebula's CLI has none.
            pub const fn short_name(self) -> &'static str {
                match self {
                    $($ty::$variant => $short,)*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

states! {
    /// `VirtualMachine::VmState` (`include/VirtualMachine.h`): the Dispatch Manager's state.
    VmState {
        Init = 0, "INIT", "init";
        Pending = 1, "PENDING", "pend";
        Hold = 2, "HOLD", "hold";
        Active = 3, "ACTIVE", "actv";
        Stopped = 4, "STOPPED", "stop";
        Suspended = 5, "SUSPENDED", "susp";
        Done = 6, "DONE", "done";
        Poweroff = 8, "POWEROFF", "poff";
        Undeployed = 9, "UNDEPLOYED", "unde";
        Cloning = 10, "CLONING", "clon";
        CloningFailure = 11, "CLONING_FAILURE", "fail";
    }
}

states! {
    /// `VirtualMachine::LcmState` (`include/VirtualMachine.h`): the Life-cycle Manager's state,
    /// meaningful while the VM is [`VmState::Active`].
    LcmState {
        LcmInit = 0, "LCM_INIT", "";
        Prolog = 1, "PROLOG", "prol";
        Boot = 2, "BOOT", "boot";
        Running = 3, "RUNNING", "runn";
        Migrate = 4, "MIGRATE", "migr";
        SaveStop = 5, "SAVE_STOP", "save";
        SaveSuspend = 6, "SAVE_SUSPEND", "save";
        SaveMigrate = 7, "SAVE_MIGRATE", "save";
        PrologMigrate = 8, "PROLOG_MIGRATE", "migr";
        PrologResume = 9, "PROLOG_RESUME", "prol";
        EpilogStop = 10, "EPILOG_STOP", "epil";
        Epilog = 11, "EPILOG", "epil";
        Shutdown = 12, "SHUTDOWN", "shut";
        CleanupResubmit = 15, "CLEANUP_RESUBMIT", "clea";
        Unknown = 16, "UNKNOWN", "unkn";
        Hotplug = 17, "HOTPLUG", "hotp";
        ShutdownPoweroff = 18, "SHUTDOWN_POWEROFF", "shut";
        BootUnknown = 19, "BOOT_UNKNOWN", "boot";
        BootPoweroff = 20, "BOOT_POWEROFF", "boot";
        BootSuspended = 21, "BOOT_SUSPENDED", "boot";
        BootStopped = 22, "BOOT_STOPPED", "boot";
        CleanupDelete = 23, "CLEANUP_DELETE", "clea";
        HotplugSnapshot = 24, "HOTPLUG_SNAPSHOT", "snap";
        HotplugNic = 25, "HOTPLUG_NIC", "hotp";
        HotplugSaveas = 26, "HOTPLUG_SAVEAS", "hotp";
        HotplugSaveasPoweroff = 27, "HOTPLUG_SAVEAS_POWEROFF", "hotp";
        HotplugSaveasSuspended = 28, "HOTPLUG_SAVEAS_SUSPENDED", "hotp";
        ShutdownUndeploy = 29, "SHUTDOWN_UNDEPLOY", "shut";
        EpilogUndeploy = 30, "EPILOG_UNDEPLOY", "epil";
        PrologUndeploy = 31, "PROLOG_UNDEPLOY", "prol";
        BootUndeploy = 32, "BOOT_UNDEPLOY", "boot";
        HotplugPrologPoweroff = 33, "HOTPLUG_PROLOG_POWEROFF", "hotp";
        HotplugEpilogPoweroff = 34, "HOTPLUG_EPILOG_POWEROFF", "hotp";
        BootMigrate = 35, "BOOT_MIGRATE", "boot";
        BootFailure = 36, "BOOT_FAILURE", "fail";
        BootMigrateFailure = 37, "BOOT_MIGRATE_FAILURE", "fail";
        PrologMigrateFailure = 38, "PROLOG_MIGRATE_FAILURE", "fail";
        PrologFailure = 39, "PROLOG_FAILURE", "fail";
        EpilogFailure = 40, "EPILOG_FAILURE", "fail";
        EpilogStopFailure = 41, "EPILOG_STOP_FAILURE", "fail";
        EpilogUndeployFailure = 42, "EPILOG_UNDEPLOY_FAILURE", "fail";
        PrologMigratePoweroff = 43, "PROLOG_MIGRATE_POWEROFF", "migr";
        PrologMigratePoweroffFailure = 44, "PROLOG_MIGRATE_POWEROFF_FAILURE", "fail";
        PrologMigrateSuspend = 45, "PROLOG_MIGRATE_SUSPEND", "migr";
        PrologMigrateSuspendFailure = 46, "PROLOG_MIGRATE_SUSPEND_FAILURE", "fail";
        BootUndeployFailure = 47, "BOOT_UNDEPLOY_FAILURE", "fail";
        BootStoppedFailure = 48, "BOOT_STOPPED_FAILURE", "fail";
        PrologResumeFailure = 49, "PROLOG_RESUME_FAILURE", "fail";
        PrologUndeployFailure = 50, "PROLOG_UNDEPLOY_FAILURE", "fail";
        DiskSnapshotPoweroff = 51, "DISK_SNAPSHOT_POWEROFF", "snap";
        DiskSnapshotRevertPoweroff = 52, "DISK_SNAPSHOT_REVERT_POWEROFF", "snap";
        DiskSnapshotDeletePoweroff = 53, "DISK_SNAPSHOT_DELETE_POWEROFF", "snap";
        DiskSnapshotSuspended = 54, "DISK_SNAPSHOT_SUSPENDED", "snap";
        DiskSnapshotDeleteSuspended = 56, "DISK_SNAPSHOT_DELETE_SUSPENDED", "snap";
        DiskSnapshot = 57, "DISK_SNAPSHOT", "snap";
        DiskSnapshotDelete = 59, "DISK_SNAPSHOT_DELETE", "snap";
        PrologMigrateUnknown = 60, "PROLOG_MIGRATE_UNKNOWN", "migr";
        PrologMigrateUnknownFailure = 61, "PROLOG_MIGRATE_UNKNOWN_FAILURE", "fail";
        DiskResize = 62, "DISK_RESIZE", "drsz";
        DiskResizePoweroff = 63, "DISK_RESIZE_POWEROFF", "drsz";
        DiskResizeUndeployed = 64, "DISK_RESIZE_UNDEPLOYED", "drsz";
        HotplugNicPoweroff = 65, "HOTPLUG_NIC_POWEROFF", "hotp";
        HotplugResize = 66, "HOTPLUG_RESIZE", "hotp";
        HotplugSaveasUndeployed = 67, "HOTPLUG_SAVEAS_UNDEPLOYED", "hotp";
        HotplugSaveasStopped = 68, "HOTPLUG_SAVEAS_STOPPED", "hotp";
        Backup = 69, "BACKUP", "back";
        BackupPoweroff = 70, "BACKUP_POWEROFF", "back";
        Restore = 71, "RESTORE", "rest";
    }
}

states! {
    /// `Host::HostState` (`include/Host.h`).
    HostState {
        Init = 0, "INIT", "init";
        Monitored = 2, "MONITORED", "on";
        Error = 3, "ERROR", "err";
        Disabled = 4, "DISABLED", "dsbl";
        Offline = 8, "OFFLINE", "off";
    }
}

states! {
    /// `Image::ImageState` (`include/Image.h`).
    ImageState {
        Init = 0, "INIT", "init";
        Ready = 1, "READY", "rdy";
        Used = 2, "USED", "used";
        Disabled = 3, "DISABLED", "disa";
        Locked = 4, "LOCKED", "lock";
        Error = 5, "ERROR", "err";
        Clone = 6, "CLONE", "clon";
        Delete = 7, "DELETE", "dele";
        UsedPers = 8, "USED_PERS", "used";
        LockedUsed = 9, "LOCKED_USED", "lock";
        LockedUsedPers = 10, "LOCKED_USED_PERS", "lock";
    }
}

states! {
    /// `Datastore::DatastoreState` (`include/Datastore.h`).
    DatastoreState {
        Ready = 0, "READY", "on";
        Disabled = 1, "DISABLED", "off";
    }
}

states! {
    /// `VirtualNetwork::VirtualNetworkState` (`include/VirtualNetwork.h`).
    VnetState {
        Init = 0, "INIT", "init";
        Ready = 1, "READY", "rdy";
        LockCreate = 2, "LOCK_CREATE", "lock";
        LockDelete = 3, "LOCK_DELETE", "lock";
        Done = 4, "DONE", "done";
        Error = 5, "ERROR", "err";
        UpdateFailure = 6, "UPDATE_FAILURE", "fail";
    }
}

states! {
    /// `Zone::ZoneState` (`include/Zone.h`).
    ZoneState {
        Enabled = 0, "ENABLED", "on";
        Disabled = 1, "DISABLED", "off";
    }
}

/// A VM's STAT in `onevm list`, as the Ruby OCA's `VirtualMachine#status`: the short name of
/// its state, or of its LCM state while ACTIVE; `unkn` for numbers OpenNebula has no state for.
pub fn vm_short_name(state: i64, lcm_state: i64) -> &'static str {
    match VmState::from_i64(state) {
        Some(VmState::Active) => match LcmState::from_i64(lcm_state).map(LcmState::short_name) {
            Some(short) if !short.is_empty() => short,
            _ => VmState::Active.short_name(),
        },
        Some(s) => s.short_name(),
        None => "unkn",
    }
}

/// A state list for SQL, `3, 5, 8`: the numbers stay in one place, the statement stays literal
/// SQL (no bound parameters to keep in step).
pub fn sql_list<S: Copy>(states: &[S], number: fn(S) -> i64) -> String {
    states
        .iter()
        .map(|s| number(*s).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
