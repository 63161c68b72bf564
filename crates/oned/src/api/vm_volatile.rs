//! `set_volatile_disk_info`: when a VM is deployed, migrated or given a volatile disk, its
//! volatile disks (no image) take what their system datastore gives a disk
//! (`VirtualMachineDisks::volatile_info`, `Datastore::disk_attribute`): its name and id, its
//! transfer driver, its clusters, CLONE_TARGET and LN_TARGET where the disk has none, what
//! INHERIT_DATASTORE_ATTR names, and its DISK_TYPE.

use sqlstore::objects::datastore::DatastoreRow;
use sqlstore::SqlStmt;
use template::{Template, Value};

use super::{Ctx, Failure};

/// A disk without an image (`VirtualMachineDisk::is_volatile`).
pub(super) fn is_volatile(disk: &[(String, String)]) -> bool {
    template::vector_get(disk, "IMAGE_ID").is_none_or(str::is_empty)
}

/// Whether template text `text` may hold a volatile disk (the cheap test before a parse).
pub fn may_have(text: &str) -> bool {
    text.contains("DISK")
}

/// `Datastore::disk_attribute` of system datastore `ds` on every volatile disk of `t`, with
/// INHERIT_DATASTORE_ATTR `inherit`; whether `t` has any.
pub fn fill(t: &mut Template, ds: &DatastoreRow, inherit: &[String]) -> bool {
    let dst = Template::parse(&ds.template).unwrap_or_default();
    let clusters: Vec<String> = ds.clusters.iter().map(i64::to_string).collect();
    let mut found = false;
    for a in t.attrs.iter_mut().filter(|a| a.name == "DISK") {
        let Value::Vector(disk) = &mut a.value else {
            continue;
        };
        if !is_volatile(disk) {
            continue;
        }
        found = true;
        let id = ds.head.owned.oid;
        super::vm_disks::datastore_attribute(disk, (&ds.head.name, id, &ds.tm_mad), &dst, inherit);
        template::vector_set(disk, "CLUSTER_ID", clusters.join(","));
        if template::vector_get(disk, "DISK_TYPE").is_none_or(str::is_empty) {
            // `Datastore::get_disk_type`: its DISK_TYPE, FILE unless it names one.
            let kind = dst.single("DISK_TYPE").filter(|k| !k.is_empty());
            template::vector_set(disk, "DISK_TYPE", kind.unwrap_or("FILE").to_uppercase());
        }
        disk.sort_by(|a, b| a.0.cmp(&b.0));
    }
    found
}

/// [`fill`] with system datastore `ds_id` as stored now; nothing when it is gone
/// (`DatastorePool::disk_attribute` leaves the disks as they are).
pub async fn fill_on(ctx: &Ctx, t: &mut Template, ds_id: i64) -> Result<bool, Failure> {
    if !t
        .get_all("DISK")
        .any(|a| a.value.as_vector().is_some_and(is_volatile))
    {
        return Ok(false);
    }
    let ds = match super::storage::DATASTORES.get(ctx, ds_id).await {
        Ok(ds) => ds,
        Err(Failure::Api { code, .. }) if code == super::code::NO_EXISTS => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(fill(t, &ds, &super::inherit::datastore(ctx)))
}

/// VM `vid`'s template `text` with its volatile disks on system datastore `ds_id`, and the
/// statement that writes it over `text`; `None` when nothing changes.
pub async fn on_datastore(
    ctx: &Ctx,
    vid: i64,
    text: &str,
    ds_id: i64,
) -> Result<Option<(SqlStmt, String)>, Failure> {
    if !may_have(text) {
        return Ok(None);
    }
    let Ok(mut t) = Template::parse(text) else {
        return Ok(None);
    };
    if !fill_on(ctx, &mut t, ds_id).await? {
        return Ok(None);
    }
    let new = t.to_text();
    let stmt = sqlstore::objects::replace_template(
        sqlstore::objects::vm::TABLE,
        "template",
        vid,
        new.clone(),
        text.to_string(),
    );
    Ok(Some((stmt, new)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlstore::objects::{Head, Owned};

    #[test]
    fn volatile_disks_take_their_system_datastore() {
        let ds = DatastoreRow {
            head: Head {
                owned: Owned {
                    oid: 0,
                    uid: 0,
                    gid: 0,
                    perms: 0,
                },
                name: "system".into(),
                uname: "oneadmin".into(),
                gname: "oneadmin".into(),
            },
            kind: 1,
            ds_mad: "-".into(),
            tm_mad: "local".into(),
            state: 0,
            template: "CLONE_TARGET = SYSTEM\nLN_TARGET = SYSTEM\nDISK_TYPE = FILE".into(),
            images: Vec::new(),
            clusters: vec![0, 2],
        };
        let mut t = Template::parse(
            "DISK = [ DISK_ID = 0, IMAGE_ID = 3, DATASTORE_ID = 1 ]\n\
             DISK = [ DISK_ID = 1, TYPE = fs, SIZE = 16, LN_TARGET = NONE ]",
        )
        .unwrap();
        assert!(fill(&mut t, &ds, &["DRIVER".to_string()]));
        let disks: Vec<_> = t.get_all("DISK").collect();
        assert_eq!(disks[0].vector_get("DATASTORE_ID"), Some("1"));
        let v = disks[1];
        assert_eq!(v.vector_get("DATASTORE"), Some("system"));
        assert_eq!(v.vector_get("DATASTORE_ID"), Some("0"));
        assert_eq!(v.vector_get("TM_MAD"), Some("local"));
        assert_eq!(v.vector_get("CLUSTER_ID"), Some("0,2"));
        assert_eq!(v.vector_get("CLONE_TARGET"), Some("SYSTEM"));
        assert_eq!(v.vector_get("LN_TARGET"), Some("NONE"));
        assert_eq!(v.vector_get("DISK_TYPE"), Some("FILE"));
    }
}
