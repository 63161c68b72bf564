//! VMs waiting for their images: a VM allocated while one of its images is still being copied
//! (a disk with `CLONING = YES`) starts in CLONING, as `VirtualMachine::insert` leaves it, and
//! the leader's datastore driver pass moves it on as `LifeCycleManager::trigger_disk_lock_success`
//! does: once every such image is in use (USED or USED_PERS) the disks take the images' SOURCE
//! and FORMAT and the VM goes to PENDING (HOLD with SUBMIT_ON_HOLD); an image in ERROR leaves
//! it in CLONING_FAILURE.

use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::{Optional, ReadPool, SqlTxn};
use template::{Template, Value};
use tracing::debug;
use wire::ImageState;

use super::vm::state;
use crate::cluster::Cluster;
use crate::tasks::TaskCtx;

/// VMs looked at per pass, at most.
const BATCH: i64 = 32;

/// What one of a waiting VM's images is now.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageNow {
    pub oid: i64,
    pub state: i64,
    pub source: String,
    pub format: String,
}

/// A VM in CLONING or CLONING_FAILURE with the images its cloning disks wait for.
pub struct Waiting {
    vm: VmRow,
    images: Vec<ImageNow>,
}

fn is_cloning(disk: &[(String, String)]) -> bool {
    template::vector_get(disk, "CLONING").is_some_and(|v| v.eq_ignore_ascii_case("YES"))
}

/// `VirtualMachineDisks::get_cloning_image_ids`: ascending, each once.
fn cloning_image_ids(t: &Template) -> Vec<i64> {
    let mut ids: Vec<i64> = t
        .get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .filter(|d| is_cloning(d))
        .filter_map(|d| template::vector_get_as(d, "IMAGE_ID"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether a VM being allocated with template `t` waits for its images.
pub fn has_cloning_disks(t: &Template) -> bool {
    t.get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .any(is_cloning)
}

/// How many VMs wait in CLONING: the driver pass runs while there are any.
pub fn pending(c: &sqlstore::Conn) -> Result<i64, sqlstore::SqlError> {
    c.prepare_cached("SELECT count(*) FROM vm_pool WHERE state = ?1")?
        .query_row([state::CLONING], |r| r.get(0))
}

fn waiting(c: &sqlstore::Conn) -> Result<Vec<Waiting>, sqlstore::SqlError> {
    let sql = format!(
        "{} WHERE v.state IN (?1, ?2) ORDER BY v.oid LIMIT {BATCH}",
        rows::ROWS.select
    );
    let vms = c
        .prepare_cached(&sql)?
        .query_map([state::CLONING, state::CLONING_FAILURE], |r| {
            (rows::ROWS.read)(c, r)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut image =
        c.prepare_cached("SELECT state, source, format FROM image_pool WHERE oid = ?1")?;
    let mut found = Vec::with_capacity(vms.len());
    for vm in vms {
        let Ok(t) = Template::parse(&vm.template) else {
            continue;
        };
        let mut images = Vec::new();
        for oid in cloning_image_ids(&t) {
            let now = image
                .query_row([oid], |r| {
                    Ok(ImageNow {
                        oid,
                        state: r.get(0)?,
                        source: r.get(1)?,
                        format: r.get(2)?,
                    })
                })
                .optional()?;
            // A deleted image is neither ready nor in error: the VM keeps waiting.
            images.extend(now);
        }
        found.push(Waiting { vm, images });
    }
    Ok(found)
}

/// `trigger_disk_lock_success` on template `t` of a VM in `from` that SUBMIT_ON_HOLD may
/// hold: the state it moves to, having cleared the disks of the ready images.
fn settle(t: &mut Template, images: &[ImageNow], from: i64) -> i64 {
    let ids = cloning_image_ids(t);
    let used = [ImageState::Used, ImageState::UsedPers].map(ImageState::as_i64);
    let ready: Vec<&ImageNow> = images
        .iter()
        .filter(|i| ids.contains(&i.oid) && used.contains(&i.state))
        .collect();
    let error = images
        .iter()
        .any(|i| ids.contains(&i.oid) && i.state == ImageState::Error.as_i64());
    for i in &ready {
        // `clear_cloning_image_id` clears the first disk of the image only.
        let disk = t
            .attrs
            .iter_mut()
            .filter(|a| a.name == "DISK")
            .find_map(|a| match &mut a.value {
                Value::Vector(d) if template::vector_get_as(d, "IMAGE_ID") == Some(i.oid) => {
                    Some(d)
                }
                _ => None,
            });
        if let Some(d) = disk {
            d.retain(|(k, _)| k != "CLONING");
            template::vector_set(d, "SOURCE", i.source.clone());
            if !i.format.is_empty() {
                template::vector_set(d, "DRIVER", i.format.clone());
                template::vector_set(d, "FORMAT", i.format.clone());
            }
        }
    }
    if ids.len() == ready.len() {
        let on_hold = t
            .single("SUBMIT_ON_HOLD")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("YES"));
        if on_hold {
            state::HOLD
        } else {
            state::PENDING
        }
    } else if error {
        state::CLONING_FAILURE
    } else if from == state::CLONING_FAILURE {
        // `set_state(CLONING)`: a failed VM whose images are being copied again waits again.
        state::CLONING
    } else {
        from
    }
}

/// The write that moves a waiting VM on, if anything changes.
fn settle_txn(w: &Waiting) -> Option<SqlTxn> {
    let mut t = Template::parse(&w.vm.template).ok()?;
    let to = settle(&mut t, &w.images, w.vm.state);
    let text = t.to_text();
    if to == w.vm.state && text == w.vm.template {
        return None;
    }
    let mut stmts = Vec::new();
    if text != w.vm.template {
        stmts.push(sqlstore::objects::replace_template(
            rows::TABLE,
            "template",
            w.vm.head.owned.oid,
            text,
            w.vm.template.clone(),
        ));
    }
    if to != w.vm.state {
        let oid = w.vm.head.owned.oid;
        stmts.extend(rows::settle_cloning(oid, w.vm.state, to, super::vm::now()));
    }
    Some(SqlTxn { stmts })
}

/// One pass over the waiting VMs (a batch): each that can move on is written on its own,
/// guarded by the template and state it read. A failed read or write is logged and tried again
/// at the next pass.
pub async fn pass(ctx: &TaskCtx, cluster: &Cluster, pool: &ReadPool) {
    let vms = match crate::db::read(pool, waiting).await {
        Ok(vms) => vms,
        Err(e) => return ctx.warn("reading the VMs waiting for their images failed", &e),
    };
    for w in &vms {
        let Some(txn) = settle_txn(w) else {
            continue;
        };
        if let Err(e) = cluster.write(txn).await {
            match e {
                consensus::WriteError::NotLeader => debug!(error = %e, "not the leader any more"),
                // Changed meanwhile: read again next pass.
                _ => debug!(error = %e, vm = w.vm.head.owned.oid, "a VM leaving CLONING"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(oid: i64, st: ImageState) -> ImageNow {
        ImageNow {
            oid,
            state: st.as_i64(),
            source: format!("/ds/{oid}"),
            format: "qcow2".into(),
        }
    }

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn a_vm_leaves_cloning_when_every_image_is_in_use() {
        let text = "DISK = [ CLONING = YES, DISK_ID = 0, IMAGE_ID = 3, SOURCE = \"\" ]\n\
                    DISK = [ CLONING = YES, DISK_ID = 1, IMAGE_ID = 5 ]";
        let mut waiting = t(text);
        let images = [img(3, ImageState::Used), img(5, ImageState::LockedUsed)];
        assert_eq!(
            settle(&mut waiting, &images, state::CLONING),
            state::CLONING
        );
        assert_eq!(cloning_image_ids(&waiting), vec![5]);
        let d = waiting.vector("DISK").unwrap();
        assert_eq!(template::vector_get(d, "SOURCE"), Some("/ds/3"));
        assert_eq!(template::vector_get(d, "FORMAT"), Some("qcow2"));

        let images = [img(3, ImageState::Used), img(5, ImageState::UsedPers)];
        assert_eq!(
            settle(&mut waiting, &images, state::CLONING),
            state::PENDING
        );
        assert!(!has_cloning_disks(&waiting));

        let mut held = t(&format!("SUBMIT_ON_HOLD = YES\n{text}"));
        let images = [img(3, ImageState::Used), img(5, ImageState::Used)];
        assert_eq!(settle(&mut held, &images, state::CLONING), state::HOLD);
    }

    #[test]
    fn an_image_in_error_fails_the_vm_until_it_is_copied_again() {
        let text = "DISK = [ CLONING = YES, DISK_ID = 0, IMAGE_ID = 3 ]\n\
                    DISK = [ CLONING = YES, DISK_ID = 1, IMAGE_ID = 5 ]";
        let images = [img(3, ImageState::Error), img(5, ImageState::LockedUsed)];
        assert_eq!(
            settle(&mut t(text), &images, state::CLONING),
            state::CLONING_FAILURE
        );
        let images = [
            img(3, ImageState::LockedUsed),
            img(5, ImageState::LockedUsed),
        ];
        assert_eq!(
            settle(&mut t(text), &images, state::CLONING_FAILURE),
            state::CLONING
        );
    }

    #[test]
    fn two_disks_of_one_image_clear_the_first_only_as_opennebula() {
        let mut two = t("DISK = [ CLONING = YES, DISK_ID = 0, IMAGE_ID = 3 ]\n\
                         DISK = [ CLONING = YES, DISK_ID = 1, IMAGE_ID = 3 ]");
        let images = [img(3, ImageState::Used)];
        assert_eq!(settle(&mut two, &images, state::CLONING), state::PENDING);
        assert_eq!(
            two.get_all("DISK")
                .filter(|a| a.vector_get("CLONING").is_some())
                .count(),
            1
        );
    }
}
