//! A persistent image's snapshots follow it between VMs, as OpenNebula's
//! `ImageManager::set_image_snapshots` and `ImagePool::acquire_disk` move them: a VM that
//! releases the image (it is DONE, or the disk is detached) leaves its disk's snapshots in the
//! image, in the same replicated write; a VM that takes an image with snapshots starts its
//! disk with them. The image keeps them as the text of its `SNAPSHOTS` element, the VM per
//! disk as `DiskSnaps`.

use sqlstore::objects::image::{self as rows, ImageRow};
use sqlstore::{ReadPool, SqlStmt};
use template::{Template, Value};

use super::vm_disk_snaps::DiskSnaps;

/// The fields an image's SNAPSHOT keeps (`image.xsd`).
const FIELDS: [&str; 7] = ["CHILDREN", "ACTIVE", "DATE", "ID", "NAME", "PARENT", "SIZE"];

/// At most this many VMs finishing in one driver step hand their images' snapshots back; the
/// scheduler's steps and placements keep far fewer in EPILOG at once.
const EPILOG_BATCH: i64 = 4096;

/// Disk snapshots as an image's `SNAPSHOTS` text (`Snapshots(-1, DENY)` with them), as a VM
/// hands them back. Empty: the image has none.
pub fn image_text(s: &DiskSnaps) -> String {
    if s.snaps.is_empty() {
        return String::new();
    }
    set_text(s)
}

/// A set as an image keeps it: ALLOW_ORPHANS (`Image::set_snapshots` copies a disk's mode too),
/// CURRENT_BASE, NEXT_SNAPSHOT, then each SNAPSHOT; a set emptied by deletions keeps its head.
pub fn set_text(s: &DiskSnaps) -> String {
    let mut t = Template::default();
    t.push("ALLOW_ORPHANS", Value::Single(s.mode.as_str().into()));
    t.push("CURRENT_BASE", Value::Single(s.current_base.to_string()));
    t.push("NEXT_SNAPSHOT", Value::Single(s.next.to_string()));
    for snap in &s.snaps {
        let v = FIELDS
            .iter()
            .filter_map(|k| {
                template::vector_get(snap, k).map(|v| ((*k).to_string(), v.trim().to_string()))
            })
            .collect();
        t.push("SNAPSHOT", Value::Vector(v));
    }
    t.to_text()
}

/// An image's `SNAPSHOTS` text (as [`super::images::snapshots_text`] answers it) as a set
/// (disk -1), the snapshots by id.
pub fn parse_set(text: &str) -> DiskSnaps {
    set_of(&Template::parse(text).unwrap_or_default())
}

fn set_of(t: &Template) -> DiskSnaps {
    let num = |k: &str, default: i64| {
        t.single(k)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let mut snaps: Vec<Vec<(String, String)>> = t
        .get_all("SNAPSHOT")
        .filter_map(|a| a.value.as_vector())
        .map(|v| {
            let mut v = v.to_vec();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        })
        .collect();
    snaps.sort_by_key(|v| {
        template::vector_get(v, "ID")
            .and_then(|id| id.trim().parse::<i64>().ok())
            .unwrap_or(i64::MAX)
    });
    DiskSnaps {
        disk_id: -1,
        mode: super::vm_disk_snaps::Orphans::parse(t.single("ALLOW_ORPHANS").unwrap_or("")),
        next: num("NEXT_SNAPSHOT", 0),
        current_base: num("CURRENT_BASE", -1),
        snaps,
    }
}

/// Image `i`'s snapshots.
pub fn of_image(i: &ImageRow) -> DiskSnaps {
    parse_set(&super::images::snapshots_text(&i.snapshots))
}

/// The snapshots image `i` gives disk `disk_id` of a VM that takes it, if it has any (only OS
/// and DATABLOCK images keep them).
pub fn for_disk(i: &ImageRow, disk_id: i64) -> Option<DiskSnaps> {
    from_text(i.kind, &i.snapshots, disk_id)
}

fn from_text(kind: i64, snapshots: &str, disk_id: i64) -> Option<DiskSnaps> {
    if !matches!(kind, 0 | 2) || snapshots.trim().is_empty() {
        return None;
    }
    let set = set_of(&Template::parse(snapshots).ok()?);
    (!set.snaps.is_empty()).then_some(DiskSnaps { disk_id, ..set })
}

/// `VirtualMachineDisk::persistent_snapshots`: unless the disk says PERSISTENT_SNAPSHOTS=NO.
fn persistent_snapshots(disk: &[(String, String)]) -> bool {
    !template::vector_get(disk, "PERSISTENT_SNAPSHOTS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("NO"))
}

/// What releasing `disk` (a DISK of VM `vid`, whose template is `t`) does to its image
/// (`VirtualMachineDisks::release_images`): the disk's snapshots, or none, and the disk's size
/// if it grew. Nothing for a disk with no image. Placed before the statements that release the image.
pub fn hand_back_disk(
    t: &Template,
    disk: &[(String, String)],
    vid: i64,
    vm_in: Option<(i64, i64)>,
) -> Option<SqlStmt> {
    let image: i64 = template::vector_get(disk, "IMAGE_ID")?
        .trim()
        .parse()
        .ok()?;
    let disk_id: i64 = template::vector_get(disk, "DISK_ID")?.trim().parse().ok()?;
    let text = match DiskSnaps::load(t, disk_id) {
        Some(s) if persistent_snapshots(disk) && !s.snaps.is_empty() => image_text(&s),
        _ => super::images::CLEARED.to_string(),
    };
    let num = |k: &str| {
        template::vector_get(disk, k)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let grown = (num("SIZE") > num("ORIGINAL_SIZE")).then(|| num("SIZE"));
    Some(rows::set_snapshots_from_vm(image, vid, &text, grown, vm_in))
}

/// [`hand_back_disk`] for every disk of VM `vid` (template text `template`), as it ends.
pub fn hand_back(template: &str, vid: i64, vm_in: Option<(i64, i64)>) -> Vec<SqlStmt> {
    let Ok(t) = Template::parse(template) else {
        return Vec::new();
    };
    t.get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .filter_map(|d| hand_back_disk(&t, d, vid, vm_in))
        .collect()
}

/// For the driver step that ends every VM in `epilog`: each one's hand-back, guarded by the VM
/// still being there. A failed read hands nothing back (logged by the caller's write).
pub async fn epilog_hand_back(pool: &ReadPool, epilog: (i64, i64)) -> Vec<SqlStmt> {
    let vms = crate::db::read(pool, move |c| rows::vms_in(c, epilog, EPILOG_BATCH)).await;
    match vms {
        Ok(vms) => vms
            .iter()
            .flat_map(|(vid, template)| hand_back(template, *vid, Some(epilog)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the VMs in EPILOG failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::vm_disk_snaps::Orphans;

    #[test]
    fn disk_snapshots_become_an_image_s_in_the_xsd_order_and_come_back() {
        let mut s = DiskSnaps::new(1, Orphans::Deny);
        s.create("first", 10, 5);
        s.activate(0, false);
        s.create("", 20, 6);
        let text = image_text(&s);
        assert!(
            text.starts_with("ALLOW_ORPHANS=\"NO\"") || text.starts_with("ALLOW_ORPHANS = \"NO\""),
            "{text}"
        );
        let xml = Template::parse(&text).unwrap().to_xml_as("SNAPSHOTS");
        let order = [
            "<ALLOW_ORPHANS>",
            "<CURRENT_BASE>",
            "<NEXT_SNAPSHOT>",
            "<SNAPSHOT>",
        ];
        let at: Vec<usize> = order.iter().map(|k| xml.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{xml}");
        // A vector's fields print by name, as OpenNebula's `VectorAttribute` map prints them.
        assert!(xml.contains("<SNAPSHOT><ACTIVE>"), "{xml}");
        let back = from_text(0, &text, 1).unwrap();
        assert_eq!(back, s);
        assert!(from_text(1, &text, 1).is_none(), "CDROMs keep none");
    }
}
