//! The snapshots of a VM's disks, as OpenNebula's `Snapshots` class keeps them, in the disk's
//! orphan mode (`VirtualMachineDisk::allow_orphans`: a chain under the active snapshot, a tree
//! under the current base, or no parents at all). They live in the VM's template as
//! attributes no client writes (`ONEHA_SNAPSHOTS` per disk, `ONEHA_DISK_SNAPSHOT` per
//! snapshot), and `vm_xml` shows them as OpenNebula does: one `<SNAPSHOTS>` per disk after
//! `HISTORY_RECORDS`.

use template::{vector_put_sorted as put, Template, Value};

/// Per disk: DISK_ID, NEXT_SNAPSHOT, CURRENT_BASE, ALLOW_ORPHANS.
const HEAD: &str = "ONEHA_SNAPSHOTS";
/// Per snapshot: DISK_ID and the snapshot's own fields.
const SNAP: &str = "ONEHA_DISK_SNAPSHOT";

type Pairs = Vec<(String, String)>;

/// `Snapshots::AllowOrphansMode`: how snapshots relate (ALLOW_ORPHANS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Orphans {
    /// NO: each snapshot is a child of the active one; a chain is deleted in line.
    #[default]
    Deny,
    /// YES: no parents; any snapshot may go.
    Allow,
    /// MIXED: children of the current base (the last reverted to).
    Mixed,
    /// LINEAR: no parents; a revert drops the younger ones.
    Linear,
}

impl Orphans {
    /// `str_to_allow_orphans_mode` of a stored mode (anything unknown denies).
    pub fn parse(text: &str) -> Orphans {
        match text.trim().to_ascii_uppercase().as_str() {
            "YES" => Orphans::Allow,
            "MIXED" => Orphans::Mixed,
            "LINEAR" => Orphans::Linear,
            _ => Orphans::Deny,
        }
    }

    /// `VirtualMachineDisk::allow_orphans`: the disk's ALLOW_ORPHANS (inherited from its
    /// datastore), FORMAT meaning YES for raw disks and NO otherwise.
    pub fn of_disk(disk: &[(String, String)]) -> Orphans {
        let mode = get(disk, "ALLOW_ORPHANS");
        if mode.eq_ignore_ascii_case("FORMAT") {
            return if get(disk, "FORMAT").eq_ignore_ascii_case("raw") {
                Orphans::Allow
            } else {
                Orphans::Deny
            };
        }
        Orphans::parse(&mode)
    }

    /// `allow_orphans_mode_to_str`.
    pub fn as_str(self) -> &'static str {
        match self {
            Orphans::Allow => "YES",
            Orphans::Deny => "NO",
            Orphans::Mixed => "MIXED",
            Orphans::Linear => "LINEAR",
        }
    }
}

/// One disk's snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskSnaps {
    pub disk_id: i64,
    pub mode: Orphans,
    pub next: i64,
    pub current_base: i64,
    /// Each SNAPSHOT's fields: ACTIVE, CHILDREN, DATE, ID, NAME, PARENT, SIZE.
    pub snaps: Vec<Pairs>,
}

fn get(v: &[(String, String)], k: &str) -> String {
    template::vector_get(v, k).unwrap_or("").trim().to_string()
}

fn num(v: &[(String, String)], k: &str) -> Option<i64> {
    get(v, k).parse().ok()
}

fn children(v: &[(String, String)]) -> Vec<i64> {
    get(v, "CHILDREN")
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect()
}

fn set_children(v: &mut Pairs, mut ids: Vec<i64>) {
    ids.sort_unstable();
    ids.dedup();
    let text = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    put(v, "CHILDREN", (!text.is_empty()).then_some(text));
}

impl DiskSnaps {
    /// Disk `disk_id`'s snapshots as stored in `t`, `None` when it has none.
    pub fn load(t: &Template, disk_id: i64) -> Option<DiskSnaps> {
        let head = t
            .get_all(HEAD)
            .filter_map(|a| a.value.as_vector())
            .find(|v| num(v, "DISK_ID") == Some(disk_id))?;
        let snaps = t
            .get_all(SNAP)
            .filter_map(|a| a.value.as_vector())
            .filter(|v| num(v, "DISK_ID") == Some(disk_id))
            .map(|v| v.iter().filter(|(k, _)| k != "DISK_ID").cloned().collect())
            .collect();
        Some(DiskSnaps {
            disk_id,
            mode: Orphans::parse(&get(head, "ALLOW_ORPHANS")),
            next: num(head, "NEXT_SNAPSHOT").unwrap_or(0),
            current_base: num(head, "CURRENT_BASE").unwrap_or(-1),
            snaps,
        })
    }

    pub fn new(disk_id: i64, mode: Orphans) -> DiskSnaps {
        DiskSnaps {
            disk_id,
            mode,
            next: 0,
            current_base: -1,
            snaps: Vec::new(),
        }
    }

    /// Takes disk `disk_id`'s snapshots out of `t` (the disk is gone).
    pub fn clear(t: &mut Template, disk_id: i64) {
        let id = disk_id.to_string();
        t.attrs.retain(|a| {
            !((a.name == HEAD || a.name == SNAP)
                && a.vector_get("DISK_ID").map(str::trim) == Some(&id))
        });
    }

    /// Writes these snapshots into `t` in place of the disk's stored ones. A set whose last
    /// snapshot was deleted stays, empty, with its NEXT_SNAPSHOT (`VirtualMachineDisk` keeps
    /// its `Snapshots`).
    pub fn store(&self, t: &mut Template) {
        let id = self.disk_id;
        DiskSnaps::clear(t, id);
        t.push(
            HEAD,
            Value::Vector(vec![
                ("ALLOW_ORPHANS".into(), self.mode.as_str().into()),
                ("CURRENT_BASE".into(), self.current_base.to_string()),
                ("DISK_ID".into(), id.to_string()),
                ("NEXT_SNAPSHOT".into(), self.next.to_string()),
            ]),
        );
        for s in &self.snaps {
            let mut v = s.clone();
            v.push(("DISK_ID".into(), id.to_string()));
            t.push(SNAP, Value::Vector(v));
        }
    }

    pub fn get(&self, id: i64) -> Option<&Pairs> {
        self.snaps.iter().find(|s| num(s, "ID") == Some(id))
    }

    fn get_mut(&mut self, id: i64) -> Option<&mut Pairs> {
        self.snaps.iter_mut().find(|s| num(s, "ID") == Some(id))
    }

    /// The active snapshot's id, -1 when none is.
    pub fn active(&self) -> i64 {
        self.snaps
            .iter()
            .find(|s| get(s, "ACTIVE") == "YES")
            .and_then(|s| num(s, "ID"))
            .unwrap_or(-1)
    }

    pub fn size_of(&self, id: i64) -> i64 {
        self.get(id).and_then(|s| num(s, "SIZE")).unwrap_or(0)
    }

    /// `Snapshots::total_size`.
    pub fn total_size(&self) -> i64 {
        self.snaps.iter().filter_map(|s| num(s, "SIZE")).sum()
    }

    /// `Snapshots::create_snapshot`: the new snapshot's id, a child of the active one (orphans
    /// denied), of the current base (mixed), or of none.
    pub fn create(&mut self, name: &str, size: i64, date: i64) -> i64 {
        let id = self.next;
        let parent = match self.mode {
            Orphans::Deny => self.active(),
            Orphans::Mixed => self.current_base,
            Orphans::Allow | Orphans::Linear => -1,
        };
        let mut s: Pairs = vec![
            ("DATE".into(), date.to_string()),
            ("ID".into(), id.to_string()),
            ("PARENT".into(), parent.to_string()),
            ("SIZE".into(), size.to_string()),
        ];
        if !name.is_empty() {
            put(&mut s, "NAME", Some(name.to_string()));
        }
        if let Some(p) = self.get_mut(parent) {
            let mut c = children(p);
            c.push(id);
            set_children(p, c);
        }
        self.snaps.push(s);
        self.next += 1;
        id
    }

    /// `Snapshots::active_snapshot(id, revert)`: a mixed set moves only on a revert, which
    /// makes the snapshot its current base.
    pub fn activate(&mut self, id: i64, revert: bool) {
        if self.get(id).is_none() || self.active() == id {
            return;
        }
        if self.mode == Orphans::Mixed {
            if !revert {
                return;
            }
            self.current_base = id;
        }
        for s in &mut self.snaps {
            let on = num(s, "ID") == Some(id);
            put(s, "ACTIVE", on.then(|| "YES".to_string()));
        }
    }

    /// `Snapshots::test_delete`.
    pub fn test_delete(&self, id: i64, persistent: bool) -> Result<(), &'static str> {
        let Some(s) = self.get(id) else {
            return Err("Snapshot does not exist");
        };
        match self.mode {
            Orphans::Allow => return Ok(()),
            Orphans::Mixed if self.active() == id => {
                return Err("Cannot delete the active snapshot")
            }
            Orphans::Mixed if !children(s).is_empty() => {
                return Err("Cannot delete snapshot with children")
            }
            Orphans::Mixed => return Ok(()),
            Orphans::Deny | Orphans::Linear => {}
        }
        if persistent && id == 0 {
            return Err("Cannot delete snapshot 0 for persistent disk images");
        }
        let kids = children(s);
        match kids.len() {
            0 => return Ok(()),
            1 if self.active() == id => {
                return Err("Cannot delete the active snapshot with children")
            }
            1 => {}
            _ => return Err("Cannot delete snapshot with more than one children"),
        }
        let child = kids[0];
        let grandkids = self.get(child).map(|c| children(c).len()).unwrap_or(0);
        if grandkids > 1 || (grandkids == 1 && self.active() == child) {
            return Err("Cannot delete snapshot if child has children");
        }
        if let Some(p) = num(s, "PARENT").filter(|p| *p != -1) {
            if self.get(p).map(|p| children(p).len()).unwrap_or(0) > 1 {
                return Err("Cannot delete snapshot if parent has more than one child");
            }
        }
        Ok(())
    }

    /// `Snapshots::delete_snapshot`: with orphans denied (or mixed) an only child takes the
    /// snapshot's place under its parent, which becomes active if the snapshot was.
    pub fn delete(&mut self, id: i64) {
        let Some(s) = self.get(id).cloned() else {
            return;
        };
        if matches!(self.mode, Orphans::Allow | Orphans::Linear) {
            self.snaps.retain(|s| num(s, "ID") != Some(id));
            return;
        }
        let parent = num(&s, "PARENT").unwrap_or(-1);
        let mine = children(&s);
        let was_active = self.active() == id;
        if parent != -1 {
            if let Some(only) = (mine.len() == 1).then(|| mine[0]) {
                if let Some(c) = self.get_mut(only) {
                    put(c, "PARENT", Some(parent.to_string()));
                }
            }
            if let Some(p) = self.get_mut(parent) {
                let mut c: Vec<i64> = children(p).into_iter().filter(|c| *c != id).collect();
                if mine.len() == 1 {
                    c.push(mine[0]);
                }
                set_children(p, c);
                if was_active {
                    put(p, "ACTIVE", Some("YES".into()));
                }
            }
        }
        self.snaps.retain(|s| num(s, "ID") != Some(id));
    }

    /// A revert to snapshot `id` (`revert_snapshot(id, true)`, on a VM disk and on an image):
    /// it becomes the active one and a LINEAR set loses the snapshots younger than it
    /// (`delete_younger_snapshots`). Its size, `None` when there is no such snapshot.
    pub fn revert(&mut self, id: i64) -> Option<i64> {
        let size = self.get(id).map(|s| num(s, "SIZE").unwrap_or(0))?;
        self.activate(id, true);
        if self.mode == Orphans::Linear {
            self.snaps.retain(|s| num(s, "ID").is_some_and(|i| i <= id));
        }
        Some(size)
    }

    /// `Snapshots::test_delete_image`: an image's snapshot, unless its set keeps a tree (NO,
    /// MIXED) and it is the active one or has children.
    pub fn test_delete_image(&self, id: i64) -> Result<(), &'static str> {
        let s = self.get(id).ok_or("Snapshot does not exist")?;
        if matches!(self.mode, Orphans::Deny | Orphans::Mixed) {
            if get(s, "ACTIVE").eq_ignore_ascii_case("YES") {
                return Err("Cannot delete the active snapshot");
            }
            if !get(s, "CHILDREN").is_empty() {
                return Err("Cannot delete snapshot with children");
            }
        }
        Ok(())
    }

    pub fn rename(&mut self, id: i64, name: &str) -> Result<(), &'static str> {
        let s = self.get_mut(id).ok_or("Snapshot does not exist")?;
        put(s, "NAME", Some(name.to_string()));
        Ok(())
    }

    fn to_xml(&self) -> String {
        let mut t = Template::default();
        let single = |v: String| Value::Single(v);
        t.push("ALLOW_ORPHANS", single(self.mode.as_str().into()));
        t.push("CURRENT_BASE", single(self.current_base.to_string()));
        t.push("DISK_ID", single(self.disk_id.to_string()));
        t.push("NEXT_SNAPSHOT", single(self.next.to_string()));
        for s in &self.snaps {
            t.push("SNAPSHOT", Value::Vector(s.clone()));
        }
        t.to_xml_as("SNAPSHOTS")
    }
}

/// Removes what a client wrote in the attributes that hold disk snapshots (a new VM's
/// template is the client's): only these calls make them.
pub fn strip(t: &mut Template) {
    t.remove(HEAD);
    t.remove(SNAP);
}

/// Whether disk `disk` of the VM has a snapshot set (`VirtualMachineDisk::has_snapshots`): one
/// whose snapshots were all deleted still counts.
pub fn disk_has_snapshots(t: &Template, disk: &str) -> bool {
    t.get_all(HEAD)
        .any(|a| a.vector_get("DISK_ID").map(str::trim) == Some(disk.trim()))
}

/// Takes the disks' snapshots out of a VM template about to be shown, and answers their XML:
/// one `<SNAPSHOTS>` per disk that has some, in disk order.
pub fn take_xml(t: &mut Template) -> String {
    let mut disks: Vec<i64> = t
        .get_all(HEAD)
        .filter_map(|a| a.vector_get("DISK_ID"))
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    disks.sort_unstable();
    disks.dedup();
    let out = disks
        .into_iter()
        .filter_map(|d| DiskSnaps::load(t, d))
        .map(|s| s.to_xml())
        .collect();
    t.remove(HEAD);
    t.remove(SNAP);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linear_revert_drops_the_younger_snapshots() {
        let mut t = Template::parse("DISK = [ DISK_ID = 0, IMAGE_ID = 1, SIZE = 10 ]").unwrap();
        let mut s = DiskSnaps::new(0, Orphans::Linear);
        for (i, size) in [(0, 4), (1, 5), (2, 6)] {
            assert_eq!(s.create("", size, i), i);
            s.activate(i, false);
        }
        s.store(&mut t);
        super::super::vm_disk_ops::mark(&mut t, 0, 1);
        super::super::vm_disk_ops::finish(&mut t, wire::LcmState::DiskSnapshotRevertPoweroff);
        let left = DiskSnaps::load(&t, 0).unwrap();
        assert_eq!(left.snaps.len(), 2);
        assert_eq!(left.active(), 1);
        assert_eq!(left.total_size(), 9);
    }

    #[test]
    fn snapshots_chain_under_the_active_one_and_deletion_keeps_the_chain() {
        let mut s = DiskSnaps::new(0, Orphans::Deny);
        assert_eq!(s.create("a", 10, 1), 0);
        s.activate(0, false);
        assert_eq!(s.create("", 10, 2), 1);
        s.activate(1, false);
        assert_eq!(s.create("c", 10, 3), 2);
        assert_eq!(get(s.get(0).unwrap(), "CHILDREN"), "1");
        assert_eq!(
            s.test_delete(1, false),
            Err("Cannot delete the active snapshot with children")
        );
        s.activate(2, false);
        assert_eq!(s.test_delete(1, false), Ok(()));
        assert_eq!(
            s.test_delete(0, true),
            Err("Cannot delete snapshot 0 for persistent disk images")
        );
        s.delete(1);
        assert_eq!(get(s.get(0).unwrap(), "CHILDREN"), "2");
        assert_eq!(get(s.get(2).unwrap(), "PARENT"), "0");
        s.delete(2);
        assert_eq!(s.active(), 0);
        let mut t = Template::default();
        s.store(&mut t);
        let back = DiskSnaps::load(&t, 0).unwrap();
        assert_eq!(back, s);
        let xml = take_xml(&mut t);
        assert!(
            xml.starts_with("<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS>"),
            "{xml}"
        );
        assert!(
            xml.contains("<SNAPSHOT><ACTIVE><![CDATA[YES]]></ACTIVE><DATE>"),
            "{xml}"
        );
        assert!(t.attrs.is_empty());
    }

    #[test]
    fn the_disks_mode_decides_parents_and_deletions() {
        let disk = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let raw = disk(&[("ALLOW_ORPHANS", "FORMAT"), ("FORMAT", "raw")]);
        let qcow = disk(&[("ALLOW_ORPHANS", "format"), ("FORMAT", "qcow2")]);
        assert_eq!(Orphans::of_disk(&raw), Orphans::Allow);
        assert_eq!(Orphans::of_disk(&qcow), Orphans::Deny);
        assert_eq!(Orphans::of_disk(&disk(&[])), Orphans::Deny);
        assert_eq!(
            Orphans::of_disk(&disk(&[("ALLOW_ORPHANS", "mixed")])),
            Orphans::Mixed
        );

        // YES: no parents, anything may go, the set stays with its next id.
        let mut s = DiskSnaps::new(0, Orphans::Allow);
        s.create("a", 1, 1);
        s.activate(0, false);
        s.create("b", 1, 2);
        s.activate(1, false);
        assert_eq!(get(s.get(1).unwrap(), "PARENT"), "-1");
        assert_eq!(get(s.get(0).unwrap(), "CHILDREN"), "");
        assert_eq!(s.test_delete(1, false), Ok(()));
        s.delete(1);
        s.delete(0);
        let mut t = Template::default();
        s.store(&mut t);
        let kept = DiskSnaps::load(&t, 0).unwrap();
        assert!(kept.snaps.is_empty());
        assert_eq!(kept.next, 2);
        assert!(take_xml(&mut t).contains("<ALLOW_ORPHANS><![CDATA[YES]]></ALLOW_ORPHANS>"));

        // MIXED: children of the current base, which only a revert moves.
        let mut m = DiskSnaps::new(0, Orphans::Mixed);
        m.create("", 1, 1);
        m.activate(0, false);
        assert_eq!(m.active(), -1);
        m.activate(0, true);
        assert_eq!((m.active(), m.current_base), (0, 0));
        m.create("", 1, 2);
        assert_eq!(get(m.get(1).unwrap(), "PARENT"), "0");
        assert_eq!(
            m.test_delete(0, false),
            Err("Cannot delete the active snapshot")
        );
        m.activate(1, true);
        assert_eq!(
            m.test_delete(0, false),
            Err("Cannot delete snapshot with children")
        );
        assert_eq!(
            m.test_delete(1, false),
            Err("Cannot delete the active snapshot")
        );
    }
}
