//! Each enum against a table copied from OpenNebula 7.0.2's headers (uncommented values) and
//! the Ruby OCA's short names, so a typo in `state.rs` cannot pass unnoticed.

use super::*;

/// `include/VirtualMachine.h`, `enum VmState`.
const VM_STATE: &[(i64, &str)] = &[
    (0, "INIT"),
    (1, "PENDING"),
    (2, "HOLD"),
    (3, "ACTIVE"),
    (4, "STOPPED"),
    (5, "SUSPENDED"),
    (6, "DONE"),
    (8, "POWEROFF"),
    (9, "UNDEPLOYED"),
    (10, "CLONING"),
    (11, "CLONING_FAILURE"),
];

/// `include/VirtualMachine.h`, `enum LcmState`.
const LCM_STATE: &[(i64, &str)] = &[
    (0, "LCM_INIT"),
    (1, "PROLOG"),
    (2, "BOOT"),
    (3, "RUNNING"),
    (4, "MIGRATE"),
    (5, "SAVE_STOP"),
    (6, "SAVE_SUSPEND"),
    (7, "SAVE_MIGRATE"),
    (8, "PROLOG_MIGRATE"),
    (9, "PROLOG_RESUME"),
    (10, "EPILOG_STOP"),
    (11, "EPILOG"),
    (12, "SHUTDOWN"),
    (15, "CLEANUP_RESUBMIT"),
    (16, "UNKNOWN"),
    (17, "HOTPLUG"),
    (18, "SHUTDOWN_POWEROFF"),
    (19, "BOOT_UNKNOWN"),
    (20, "BOOT_POWEROFF"),
    (21, "BOOT_SUSPENDED"),
    (22, "BOOT_STOPPED"),
    (23, "CLEANUP_DELETE"),
    (24, "HOTPLUG_SNAPSHOT"),
    (25, "HOTPLUG_NIC"),
    (26, "HOTPLUG_SAVEAS"),
    (27, "HOTPLUG_SAVEAS_POWEROFF"),
    (28, "HOTPLUG_SAVEAS_SUSPENDED"),
    (29, "SHUTDOWN_UNDEPLOY"),
    (30, "EPILOG_UNDEPLOY"),
    (31, "PROLOG_UNDEPLOY"),
    (32, "BOOT_UNDEPLOY"),
    (33, "HOTPLUG_PROLOG_POWEROFF"),
    (34, "HOTPLUG_EPILOG_POWEROFF"),
    (35, "BOOT_MIGRATE"),
    (36, "BOOT_FAILURE"),
    (37, "BOOT_MIGRATE_FAILURE"),
    (38, "PROLOG_MIGRATE_FAILURE"),
    (39, "PROLOG_FAILURE"),
    (40, "EPILOG_FAILURE"),
    (41, "EPILOG_STOP_FAILURE"),
    (42, "EPILOG_UNDEPLOY_FAILURE"),
    (43, "PROLOG_MIGRATE_POWEROFF"),
    (44, "PROLOG_MIGRATE_POWEROFF_FAILURE"),
    (45, "PROLOG_MIGRATE_SUSPEND"),
    (46, "PROLOG_MIGRATE_SUSPEND_FAILURE"),
    (47, "BOOT_UNDEPLOY_FAILURE"),
    (48, "BOOT_STOPPED_FAILURE"),
    (49, "PROLOG_RESUME_FAILURE"),
    (50, "PROLOG_UNDEPLOY_FAILURE"),
    (51, "DISK_SNAPSHOT_POWEROFF"),
    (52, "DISK_SNAPSHOT_REVERT_POWEROFF"),
    (53, "DISK_SNAPSHOT_DELETE_POWEROFF"),
    (54, "DISK_SNAPSHOT_SUSPENDED"),
    (56, "DISK_SNAPSHOT_DELETE_SUSPENDED"),
    (57, "DISK_SNAPSHOT"),
    (59, "DISK_SNAPSHOT_DELETE"),
    (60, "PROLOG_MIGRATE_UNKNOWN"),
    (61, "PROLOG_MIGRATE_UNKNOWN_FAILURE"),
    (62, "DISK_RESIZE"),
    (63, "DISK_RESIZE_POWEROFF"),
    (64, "DISK_RESIZE_UNDEPLOYED"),
    (65, "HOTPLUG_NIC_POWEROFF"),
    (66, "HOTPLUG_RESIZE"),
    (67, "HOTPLUG_SAVEAS_UNDEPLOYED"),
    (68, "HOTPLUG_SAVEAS_STOPPED"),
    (69, "BACKUP"),
    (70, "BACKUP_POWEROFF"),
    (71, "RESTORE"),
];

/// `include/Host.h`, `enum HostState`.
const HOST_STATE: &[(i64, &str)] = &[
    (0, "INIT"),
    (2, "MONITORED"),
    (3, "ERROR"),
    (4, "DISABLED"),
    (8, "OFFLINE"),
];

/// `include/Image.h`, `enum ImageState`.
const IMAGE_STATE: &[(i64, &str)] = &[
    (0, "INIT"),
    (1, "READY"),
    (2, "USED"),
    (3, "DISABLED"),
    (4, "LOCKED"),
    (5, "ERROR"),
    (6, "CLONE"),
    (7, "DELETE"),
    (8, "USED_PERS"),
    (9, "LOCKED_USED"),
    (10, "LOCKED_USED_PERS"),
];

/// `include/Datastore.h`, `enum DatastoreState`.
const DATASTORE_STATE: &[(i64, &str)] = &[(0, "READY"), (1, "DISABLED")];

/// `include/VirtualNetwork.h`, `enum VirtualNetworkState`.
const VNET_STATE: &[(i64, &str)] = &[
    (0, "INIT"),
    (1, "READY"),
    (2, "LOCK_CREATE"),
    (3, "LOCK_DELETE"),
    (4, "DONE"),
    (5, "ERROR"),
    (6, "UPDATE_FAILURE"),
];

/// `include/Zone.h`, `enum ZoneState`.
const ZONE_STATE: &[(i64, &str)] = &[(0, "ENABLED"), (1, "DISABLED")];

/// The Ruby OCA's short names (`src/oca/ruby/opennebula/*.rb`, `SHORT_*_STATES`), by full name.
const SHORT: &[(&str, &[(&str, &str)])] = &[
    (
        "VmState",
        &[
            ("INIT", "init"),
            ("PENDING", "pend"),
            ("HOLD", "hold"),
            ("ACTIVE", "actv"),
            ("STOPPED", "stop"),
            ("SUSPENDED", "susp"),
            ("DONE", "done"),
            ("FAILED", "fail"),
            ("POWEROFF", "poff"),
            ("UNDEPLOYED", "unde"),
            ("CLONING", "clon"),
            ("CLONING_FAILURE", "fail"),
        ],
    ),
    (
        "LcmState",
        &[
            ("PROLOG", "prol"),
            ("BOOT", "boot"),
            ("RUNNING", "runn"),
            ("MIGRATE", "migr"),
            ("SAVE_STOP", "save"),
            ("SAVE_SUSPEND", "save"),
            ("SAVE_MIGRATE", "save"),
            ("PROLOG_MIGRATE", "migr"),
            ("PROLOG_RESUME", "prol"),
            ("EPILOG_STOP", "epil"),
            ("EPILOG", "epil"),
            ("SHUTDOWN", "shut"),
            ("CANCEL", "shut"),
            ("FAILURE", "fail"),
            ("CLEANUP_RESUBMIT", "clea"),
            ("UNKNOWN", "unkn"),
            ("HOTPLUG", "hotp"),
            ("SHUTDOWN_POWEROFF", "shut"),
            ("BOOT_UNKNOWN", "boot"),
            ("BOOT_POWEROFF", "boot"),
            ("BOOT_SUSPENDED", "boot"),
            ("BOOT_STOPPED", "boot"),
            ("CLEANUP_DELETE", "clea"),
            ("HOTPLUG_SNAPSHOT", "snap"),
            ("HOTPLUG_NIC", "hotp"),
            ("HOTPLUG_SAVEAS", "hotp"),
            ("HOTPLUG_SAVEAS_POWEROFF", "hotp"),
            ("HOTPLUG_SAVEAS_SUSPENDED", "hotp"),
            ("SHUTDOWN_UNDEPLOY", "shut"),
            ("EPILOG_UNDEPLOY", "epil"),
            ("PROLOG_UNDEPLOY", "prol"),
            ("BOOT_UNDEPLOY", "boot"),
            ("HOTPLUG_PROLOG_POWEROFF", "hotp"),
            ("HOTPLUG_EPILOG_POWEROFF", "hotp"),
            ("BOOT_MIGRATE", "boot"),
            ("BOOT_FAILURE", "fail"),
            ("BOOT_MIGRATE_FAILURE", "fail"),
            ("PROLOG_MIGRATE_FAILURE", "fail"),
            ("PROLOG_FAILURE", "fail"),
            ("EPILOG_FAILURE", "fail"),
            ("EPILOG_STOP_FAILURE", "fail"),
            ("EPILOG_UNDEPLOY_FAILURE", "fail"),
            ("PROLOG_MIGRATE_POWEROFF", "migr"),
            ("PROLOG_MIGRATE_POWEROFF_FAILURE", "fail"),
            ("PROLOG_MIGRATE_SUSPEND", "migr"),
            ("PROLOG_MIGRATE_SUSPEND_FAILURE", "fail"),
            ("BOOT_UNDEPLOY_FAILURE", "fail"),
            ("BOOT_STOPPED_FAILURE", "fail"),
            ("PROLOG_RESUME_FAILURE", "fail"),
            ("PROLOG_UNDEPLOY_FAILURE", "fail"),
            ("DISK_SNAPSHOT_POWEROFF", "snap"),
            ("DISK_SNAPSHOT_REVERT_POWEROFF", "snap"),
            ("DISK_SNAPSHOT_DELETE_POWEROFF", "snap"),
            ("DISK_SNAPSHOT_SUSPENDED", "snap"),
            ("DISK_SNAPSHOT_REVERT_SUSPENDED", "snap"),
            ("DISK_SNAPSHOT_DELETE_SUSPENDED", "snap"),
            ("DISK_SNAPSHOT", "snap"),
            ("DISK_SNAPSHOT_DELETE", "snap"),
            ("PROLOG_MIGRATE_UNKNOWN", "migr"),
            ("PROLOG_MIGRATE_UNKNOWN_FAILURE", "fail"),
            ("DISK_RESIZE", "drsz"),
            ("DISK_RESIZE_POWEROFF", "drsz"),
            ("DISK_RESIZE_UNDEPLOYED", "drsz"),
            ("HOTPLUG_NIC_POWEROFF", "hotp"),
            ("HOTPLUG_RESIZE", "hotp"),
            ("HOTPLUG_SAVEAS_UNDEPLOYED", "hotp"),
            ("HOTPLUG_SAVEAS_STOPPED", "hotp"),
            ("BACKUP", "back"),
            ("BACKUP_POWEROFF", "back"),
            ("RESTORE", "rest"),
        ],
    ),
    (
        "HostState",
        &[
            ("INIT", "init"),
            ("MONITORING_MONITORED", "update"),
            ("MONITORED", "on"),
            ("ERROR", "err"),
            ("DISABLED", "dsbl"),
            ("MONITORING_ERROR", "retry"),
            ("MONITORING_INIT", "init"),
            ("MONITORING_DISABLED", "dsbl"),
            ("OFFLINE", "off"),
        ],
    ),
    (
        "ImageState",
        &[
            ("INIT", "init"),
            ("READY", "rdy"),
            ("USED", "used"),
            ("DISABLED", "disa"),
            ("LOCKED", "lock"),
            ("ERROR", "err"),
            ("CLONE", "clon"),
            ("DELETE", "dele"),
            ("USED_PERS", "used"),
            ("LOCKED_USED", "lock"),
            ("LOCKED_USED_PERS", "lock"),
        ],
    ),
    ("DatastoreState", &[("READY", "on"), ("DISABLED", "off")]),
    (
        "VnetState",
        &[
            ("INIT", "init"),
            ("READY", "rdy"),
            ("LOCK_CREATE", "lock"),
            ("LOCK_DELETE", "lock"),
            ("DONE", "done"),
            ("ERROR", "err"),
            ("UPDATE_FAILURE", "fail"),
        ],
    ),
    ("ZoneState", &[("ENABLED", "on"), ("DISABLED", "off")]),
];

fn short_of(kind: &str, name: &str) -> &'static str {
    SHORT
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, table)| table.iter().find(|(n, _)| *n == name))
        .map_or("", |(_, s)| *s)
}

/// Checks one enum against OpenNebula's table: the same numbers, names and short names, and
/// nothing else; a number in no table is no state.
macro_rules! check {
    ($ty:ident, $table:expr) => {{
        let ours: Vec<(i64, &str, &str)> = $ty::ALL
            .iter()
            .map(|s| (s.as_i64(), s.name(), s.short_name()))
            .collect();
        let theirs: Vec<(i64, &str, &str)> = $table
            .iter()
            .map(|(v, n)| (*v, *n, short_of(stringify!($ty), n)))
            .collect();
        assert_eq!(ours, theirs, stringify!($ty));
        for (value, name) in $table {
            assert_eq!($ty::from_i64(*value).map($ty::name), Some(*name));
        }
        for gap in (-1..100).filter(|v| $table.iter().all(|(t, _)| t != v)) {
            assert_eq!($ty::from_i64(gap), None, "{} {gap}", stringify!($ty));
        }
    }};
}

#[test]
fn states_are_opennebulas() {
    check!(VmState, VM_STATE);
    check!(LcmState, LCM_STATE);
    check!(HostState, HOST_STATE);
    check!(ImageState, IMAGE_STATE);
    check!(DatastoreState, DATASTORE_STATE);
    check!(VnetState, VNET_STATE);
    check!(ZoneState, ZONE_STATE);
}

#[test]
fn vm_short_names_are_onevm_lists() {
    assert_eq!(vm_short_name(3, 3), "runn");
    assert_eq!(vm_short_name(1, 0), "pend");
    assert_eq!(vm_short_name(8, 0), "poff");
    assert_eq!(vm_short_name(3, 8), "migr");
    assert_eq!(vm_short_name(3, 0), "actv");
    assert_eq!(vm_short_name(3, 13), "actv");
    assert_eq!(vm_short_name(7, 0), "unkn");
    assert_eq!(VmState::Active.to_string(), "ACTIVE");
}

#[test]
fn sql_lists_are_numbers() {
    let on_host = [VmState::Active, VmState::Suspended, VmState::Poweroff];
    assert_eq!(sql_list(&on_host, VmState::as_i64), "3, 5, 8");
    assert_eq!(sql_list::<HostState>(&[], HostState::as_i64), "");
}
