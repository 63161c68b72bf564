//! What a new datastore's template holds besides what it was given, as `Datastore::insert`
//! writes it: its transfer driver's settings from oned.conf's `TM_MAD_CONF` (`set_tm_mad`), its
//! DISK_TYPE (`set_ds_disk_type`) and the default SAFE_DIRS and RESTRICTED_DIRS.

use template::{Template, Value};

/// The `TM_MAD_CONF` vectors of the shipped oned.conf, used when oned.conf has none.
const SHIPPED: &[(&str, &[(&str, &str)])] = &[
    (
        "dummy",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "YES"),
            ("DS_MIGRATE", "YES"),
        ],
    ),
    (
        "lvm",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SELF"),
            ("SHARED", "YES"),
            ("DRIVER", "raw"),
        ],
    ),
    (
        "shared",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "YES"),
            ("DS_MIGRATE", "YES"),
            ("TM_MAD_SYSTEM", "ssh"),
            ("LN_TARGET_SSH", "SYSTEM"),
            ("CLONE_TARGET_SSH", "SYSTEM"),
            ("DISK_TYPE_SSH", "FILE"),
            ("ALLOW_ORPHANS", "FORMAT"),
        ],
    ),
    (
        "fs_lvm",
        &[
            ("LN_TARGET", "SYSTEM"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "YES"),
            ("DRIVER", "raw"),
            ("DISK_TYPE", "BLOCK"),
        ],
    ),
    (
        "fs_lvm_ssh",
        &[
            ("LN_TARGET", "SYSTEM"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "YES"),
            ("DRIVER", "raw"),
            ("DISK_TYPE", "BLOCK"),
            ("PERSISTENT_SNAPSHOTS", "NO"),
            ("ALLOW_ORPHANS", "YES"),
        ],
    ),
    (
        "qcow2",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "YES"),
            ("DS_MIGRATE", "YES"),
            ("TM_MAD_SYSTEM", "ssh"),
            ("LN_TARGET_SSH", "SYSTEM"),
            ("CLONE_TARGET_SSH", "SYSTEM"),
            ("DISK_TYPE_SSH", "FILE"),
            ("DRIVER", "qcow2"),
            ("ALLOW_ORPHANS", "FORMAT"),
        ],
    ),
    (
        "ssh",
        &[
            ("LN_TARGET", "SYSTEM"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "NO"),
            ("DS_MIGRATE", "YES"),
            ("ALLOW_ORPHANS", "YES"),
        ],
    ),
    (
        "local",
        &[
            ("LN_TARGET", "SYSTEM"),
            ("CLONE_TARGET", "SYSTEM"),
            ("SHARED", "NO"),
            ("DS_MIGRATE", "YES"),
            ("ALLOW_ORPHANS", "FORMAT"),
        ],
    ),
    (
        "ceph",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SELF"),
            ("SHARED", "YES"),
            ("DS_MIGRATE", "NO"),
            ("DRIVER", "raw"),
            ("ALLOW_ORPHANS", "mixed"),
            ("TM_MAD_SYSTEM", "ssh,shared"),
            ("LN_TARGET_SSH", "SYSTEM"),
            ("CLONE_TARGET_SSH", "SYSTEM"),
            ("DISK_TYPE_SSH", "FILE"),
            ("LN_TARGET_SHARED", "NONE"),
            ("CLONE_TARGET_SHARED", "SELF"),
            ("DISK_TYPE_SHARED", "RBD"),
        ],
    ),
    (
        "iscsi_libvirt",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SELF"),
            ("SHARED", "YES"),
            ("DS_MIGRATE", "NO"),
            ("DRIVER", "raw"),
        ],
    ),
    (
        "dev",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "NONE"),
            ("SHARED", "YES"),
            ("TM_MAD_SYSTEM", "ssh,shared"),
            ("LN_TARGET_SSH", "SYSTEM"),
            ("LN_TARGET_SHARED", "NONE"),
            ("DISK_TYPE_SSH", "FILE"),
            ("DISK_TYPE_SHARED", "FILE"),
            ("CLONE_TARGET_SSH", "SYSTEM"),
            ("CLONE_TARGET_SHARED", "SELF"),
            ("DRIVER", "raw"),
        ],
    ),
    (
        "netapp",
        &[
            ("LN_TARGET", "NONE"),
            ("CLONE_TARGET", "SELF"),
            ("SHARED", "YES"),
            ("DRIVER", "raw"),
            ("DISK_TYPE", "BLOCK"),
            ("ALLOW_ORPHANS", "LINEAR"),
        ],
    ),
];

/// oned.conf's `name` vectors (`TM_MAD_CONF`, `DS_MAD_CONF`, `VN_MAD_CONF`), one per driver;
/// none means the shipped ones apply.
pub fn vectors<'a>(conf: &'a Template, name: &'a str) -> Vec<&'a [(String, String)]> {
    (conf.get_all(name))
        .filter_map(|a| a.value.as_vector())
        .collect()
}

/// The transfer drivers oned.conf defines (`TM_MAD_CONF` NAMEs), or the shipped ones.
pub fn tm_names(conf: &Template) -> Vec<String> {
    let configured = configured(conf);
    if configured.is_empty() {
        return SHIPPED.iter().map(|(n, _)| n.to_string()).collect();
    }
    (configured.iter())
        .filter_map(|v| template::vector_get(v, "NAME").map(str::to_string))
        .collect()
}

fn configured(conf: &Template) -> Vec<&[(String, String)]> {
    vectors(conf, "TM_MAD_CONF")
}

/// `tm_mad`'s `TM_MAD_CONF` settings, upper-case keys.
fn settings(conf: &Template, tm_mad: &str) -> Vec<(String, String)> {
    let configured = configured(conf);
    if configured.is_empty() {
        return SHIPPED
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(tm_mad))
            .map(|(_, pairs)| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
    }
    configured
        .into_iter()
        .find(|v| template::vector_get(v, "NAME").is_some_and(|n| n.eq_ignore_ascii_case(tm_mad)))
        .map(|v| {
            v.iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `Datastore::insert`'s additions to a new datastore's template `t` of type `kind` (0 image,
/// 1 system, 2 file, backup) whose transfer driver is `tm_mad`, or why its DISK_TYPE is refused.
/// A capability of VM driver `vm_mad` (`LIVE_RESIZE`, `KEEP_SNAPSHOTS`): YES in its oned.conf
/// VM_MAD, or, when oned.conf defines none, as OpenNebula ships them (kvm and qemu have both,
/// no other driver has either).
pub fn vm_mad_says(conf: &Template, vm_mad: &str, capability: &str) -> bool {
    let drivers = vectors(conf, "VM_MAD");
    if drivers.is_empty() {
        return matches!(vm_mad, "kvm" | "qemu");
    }
    drivers
        .iter()
        .find(|v| template::vector_get(v, "NAME") == Some(vm_mad))
        .and_then(|v| template::vector_get(v, capability))
        .is_some_and(|l| l.trim().eq_ignore_ascii_case("yes"))
}

/// The templates `Datastore::insert` gives OpenNebula's first datastores (`DatastorePool`'s
/// bootstrap): system, default and files, all on TM_MAD local.
pub fn bootstrap_templates(conf: &Template) -> [String; 3] {
    [
        (1, "TYPE = SYSTEM_DS\nTM_MAD = local"),
        (0, "TYPE = IMAGE_DS\nDS_MAD = fs\nTM_MAD = local"),
        (2, "TYPE = FILE_DS\nDS_MAD = fs\nTM_MAD = local"),
    ]
    .map(|(kind, text)| {
        let mut t = Template::parse(text).unwrap_or_default();
        if let Err(e) = at_allocate(conf, &mut t, kind, "local") {
            tracing::warn!(error = %e, "bootstrap datastore template");
        }
        t.to_text()
    })
}

pub fn at_allocate(
    conf: &Template,
    t: &mut Template,
    kind: i64,
    tm_mad: &str,
) -> Result<(), String> {
    if kind != super::vm_backup::BACKUP_DS {
        set_tm_mad(conf, t, kind, tm_mad);
    }
    t.remove("BASE_PATH");
    let given = t.single("DISK_TYPE").unwrap_or("").to_string();
    t.remove("DISK_TYPE");
    set_disk_type(t, kind, &given)?;
    let has = |t: &Template, k: &str| t.single(k).is_some_and(|v| !v.is_empty());
    if !has(t, "SAFE_DIRS") && !has(t, "RESTRICTED_DIRS") {
        t.set("SAFE_DIRS", Value::Single("/var/tmp".into()));
        t.set("RESTRICTED_DIRS", Value::Single("/".into()));
    }
    Ok(())
}

/// `Datastore::set_tm_mad` for a datastore that is not a backup one: what `tm_mad`'s TM_MAD_CONF
/// says of its datastores, written into `t`.
pub fn set_tm_mad(conf: &Template, t: &mut Template, kind: i64, tm_mad: &str) {
    let conf = settings(conf, tm_mad);
    let get = |k: &str| template::vector_get(&conf, k).unwrap_or("").to_string();
    let yes = |k: &str, default: bool| match get(k) {
        v if v.is_empty() => default,
        v => v.eq_ignore_ascii_case("yes"),
    };
    let yes_no = |on: bool| if on { "YES" } else { "NO" }.to_string();
    let put = |t: &mut Template, k: &str, v: String| t.set(k, Value::Single(v));
    if kind == 1 {
        put(t, "SHARED", yes_no(yes("SHARED", false)));
        put(t, "DS_MIGRATE", yes_no(yes("DS_MIGRATE", true)));
        t.remove("LN_TARGET");
        t.remove("CLONE_TARGET");
    } else {
        let system = get("TM_MAD_SYSTEM");
        if !system.is_empty() {
            put(t, "TM_MAD_SYSTEM", system.clone());
            for mode in system.split(',').map(|m| m.trim().to_ascii_uppercase()) {
                for key in ["LN_TARGET", "CLONE_TARGET", "DISK_TYPE"] {
                    let k = format!("{key}_{mode}");
                    put(t, &k, get(&k));
                }
            }
        }
        put(t, "LN_TARGET", get("LN_TARGET"));
        put(t, "CLONE_TARGET", get("CLONE_TARGET"));
        for k in ["DRIVER", "DISK_TYPE"] {
            if !get(k).is_empty() {
                put(t, k, get(k));
            }
        }
        t.remove("SHARED");
    }
    let orphans = match get("ALLOW_ORPHANS") {
        o if o.is_empty() => "NO".to_string(),
        o => o,
    };
    put(t, "ALLOW_ORPHANS", orphans);
    put(
        t,
        "PERSISTENT_SNAPSHOTS",
        yes_no(yes("PERSISTENT_SNAPSHOTS", true)),
    );
}

/// `Image::DiskType` by name, as `disk_type_to_str` writes them (their index is the number).
pub(super) const DISK_TYPES: &[&str] = &[
    "FILE",
    "CDROM",
    "BLOCK",
    "RBD",
    "RBD_CDROM",
    "GLUSTER",
    "GLUSTER_CDROM",
    "SHEEPDOG",
    "SHEEPDOG_CDROM",
    "ISCSI",
];

/// `Datastore::set_ds_disk_type`: `given` (FILE when empty) checked against the datastore's
/// type and, for image and system datastores, written as DISK_TYPE (taken out of `t` by the
/// caller, as `erase_template_attribute` does).
pub fn set_disk_type(t: &mut Template, kind: i64, given: &str) -> Result<(), String> {
    let name = match given.trim().to_ascii_uppercase() {
        n if n.is_empty() => "FILE".to_string(),
        n => n,
    };
    let known = DISK_TYPES.contains(&name.as_str());
    match kind {
        0 | 1 if !known => return Err("Unknown DISK_TYPE in template.".into()),
        0 if name.ends_with("CDROM") => {
            return Err("Invalid DISK_TYPE for an Image Datastore.".into())
        }
        1 if !matches!(name.as_str(), "FILE" | "RBD" | "BLOCK") => {
            return Err("Invalid DISK_TYPE for a System Datastore.".into())
        }
        0 | 1 => t.set("DISK_TYPE", Value::Single(name)),
        _ => {}
    }
    Ok(())
}

/// The DATASTORE element's DISK_TYPE number: its template's (FILE, 0, for files and backups).
pub fn disk_type_number(t: &str, kind: i64) -> usize {
    if kind != 0 && kind != 1 {
        return 0;
    }
    let t = Template::parse(t).unwrap_or_default();
    let name = t
        .single("DISK_TYPE")
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    DISK_TYPES.iter().position(|d| *d == name).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_datastores_hold_what_their_driver_writes() {
        let [system, default, files] = bootstrap_templates(&Template::default());
        let get =
            |text: &str, k: &str| Template::parse(text).unwrap().single(k).map(str::to_string);
        assert_eq!(get(&system, "SHARED").as_deref(), Some("NO"));
        assert_eq!(get(&system, "DISK_TYPE").as_deref(), Some("FILE"));
        assert_eq!(get(&default, "CLONE_TARGET").as_deref(), Some("SYSTEM"));
        assert_eq!(get(&default, "DS_MAD").as_deref(), Some("fs"));
        assert_eq!(get(&files, "DISK_TYPE"), None);
    }
}
