//! The disks of a new VM: each DISK that names an image takes it, as OpenNebula's
//! `ImageManager::acquire_image` and `Image::disk_attribute` do, in the same transaction that
//! creates the VM; a VM that ends gives its images back
//! (`sqlstore::objects::image::release_done_vms`).

use sqlstore::SqlStmt;
use template::Template;

use super::perms::USE;
use super::quota::Ask;
use super::storage::IMAGES;
use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

type Pairs = Vec<(String, String)>;

/// Which of `get_images`' queues a disk without a TARGET waits in for one: the first OS disk
/// comes first, then CD-ROMs and the context disk, then the other OS disks, datablocks and
/// volatile disks; other image types get none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Os,
    Cdrom,
    Data,
    None,
}

/// OpenNebula's `DEFAULT_DEVICE_PREFIX` and `DEFAULT_CDROM_DEVICE_PREFIX`.
const DEFAULT_PREFIX: &str = "sd";
const DEFAULT_CDROM_PREFIX: &str = "hd";

/// What taking a new VM's images makes: the statements (each guarded by the image's state as
/// read) and the quota entries they count for (IMAGE RVMS).
pub struct Disks {
    pub stmts: Vec<SqlStmt>,
    pub asks: Vec<Ask>,
    /// Each disk's target queue, in order.
    pub queues: Vec<Queue>,
    /// The snapshots the disks start with, their images' (`ImagePool::acquire_disk`).
    pub snaps: Vec<super::vm_disk_snaps::DiskSnaps>,
}

/// Takes the image of each DISK of a new VM's template that names one (IMAGE_ID, or IMAGE with
/// IMAGE_UNAME / IMAGE_UID, the caller's by default), which the caller must USE, and gives the
/// disk the image's attributes; other disks (volatile) only get their DISK_ID.
pub async fn take_disks(ctx: &Ctx, s: &Session, t: &mut Template) -> Result<Disks, Failure> {
    let mut disks: Vec<Vec<(String, String)>> = t
        .get_all("DISK")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    if disks.is_empty() {
        assign_targets(t, &mut disks, &[], None).map_err(|e| fail(code::INTERNAL, e))?;
        return Ok(Disks {
            stmts: Vec::new(),
            asks: Vec::new(),
            queues: Vec::new(),
            snaps: Vec::new(),
        });
    }
    let out = take_list(ctx, s, &mut disks, 0, None, true).await?;
    let too_many = match too_many_disks(t, &disks, &out.queues) {
        Some(why) => {
            // Named by the id the VM would have had, as oned names it.
            let last = ctx
                .read(|c| sqlstore::objects::backup::last_oid(c, sqlstore::objects::vm::TABLE))
                .await?;
            Some(why(last + 1))
        }
        None => None,
    };
    assign_targets(t, &mut disks, &out.queues, too_many).map_err(|e| fail(code::INTERNAL, e))?;
    t.remove("DISK");
    for d in disks {
        t.push("DISK", template::Value::Vector(d));
    }
    for snaps in &out.snaps {
        snaps.store(t);
    }
    Ok(out)
}

/// The target `index` of `prefix`: `sda`..`sdz`, `sdaa`.. (`assign_disk_targets`).
fn target_name(prefix: &str, index: usize) -> String {
    let mut letters = Vec::new();
    let (mut remainder, mut quotient) = (index % 26, index / 26);
    while quotient > 0 {
        letters.push(b'a' + remainder as u8);
        remainder = (quotient - 1) % 26;
        quotient = (quotient - 1) / 26;
    }
    letters.push(b'a' + remainder as u8);
    letters.reverse();
    format!("{prefix}{}", String::from_utf8_lossy(&letters))
}

/// The first target of `prefix` not in `used`, now used.
fn first_free(prefix: &str, used: &mut std::collections::BTreeSet<String>) -> String {
    let target = (0..)
        .map(|i| target_name(prefix, i))
        .find(|t| !used.contains(t))
        .unwrap_or_default();
    used.insert(target.clone());
    target
}

fn prefix_of(disk: &[(String, String)], default: &str) -> String {
    template::vector_get(disk, "DEV_PREFIX")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// `VirtualMachineDisks::get_images`' targets for a new VM: each disk without a TARGET gets the
/// first free one of its DEV_PREFIX, the first OS disk first, then the CD-ROMs and the context
/// disk (whose DISK_ID follows the disks'), then the other disks; two disks naming one target
/// are refused.
/// `get_images`' limits on a new VM's disks (the context disk not counted): at most 4 of
/// prefix `hd` but on a q35 or virt machine (`OS/MACHINE`), at most 256 of prefix `sd`; the
/// refusal, for the VM's id.
fn too_many_disks(t: &Template, disks: &[Pairs], queues: &[Queue]) -> Option<fn(i64) -> String> {
    let prefix = |i: usize| {
        let default = match queues.get(i) {
            Some(Queue::Cdrom) => DEFAULT_CDROM_PREFIX,
            _ => DEFAULT_PREFIX,
        };
        prefix_of(&disks[i], default)
    };
    let count = |p: &str| (0..disks.len()).filter(|&i| prefix(i) == p).count();
    let machine = t
        .vector("OS")
        .and_then(|os| template::vector_get(os, "MACHINE"))
        .unwrap_or("");
    let q35 = machine.contains("q35") || machine.contains("virt");
    if count("hd") > 4 && !q35 {
        return Some(|id| format!("Non q35 or virt VM {id} has more than 4 hd disks"));
    }
    if count("sd") > 256 {
        return Some(|id| format!("VM {id} has more than 256 disks"));
    }
    None
}

fn assign_targets(
    t: &mut Template,
    disks: &mut [Pairs],
    queues: &[Queue],
    too_many: Option<String>,
) -> Result<(), String> {
    let mut used = std::collections::BTreeSet::new();
    let (mut os, mut cdrom, mut data) = (Vec::new(), Vec::new(), Vec::new());
    let claim = |target: &str, used: &mut std::collections::BTreeSet<String>| {
        if used.insert(target.to_string()) {
            Ok(())
        } else {
            Err(format!("Two disks have defined the same target {target}"))
        }
    };
    for (i, d) in disks.iter().enumerate() {
        match template::vector_get(d, "TARGET").filter(|t| !t.is_empty()) {
            Some(target) => claim(target, &mut used)?,
            None => match queues.get(i) {
                Some(Queue::Os) if os.is_empty() => os.push(i),
                Some(Queue::Os | Queue::Data) => data.push(i),
                Some(Queue::Cdrom) => cdrom.push(i),
                _ => {}
            },
        }
    }
    if let Some(why) = too_many {
        return Err(why);
    }
    let give = |queue: &[usize], disks: &mut [Pairs], used: &mut _| {
        for &i in queue {
            let target = first_free(&prefix_of(&disks[i], DEFAULT_PREFIX), used);
            template::vector_set(&mut disks[i], "TARGET", target);
            disks[i].sort_by(|a, b| a.0.cmp(&b.0));
        }
    };
    give(&os, disks, &mut used);
    give(&cdrom, disks, &mut used);
    if let Some(mut context) = t.vector("CONTEXT").map(<[_]>::to_vec) {
        match template::vector_get(&context, "TARGET").filter(|t| !t.is_empty()) {
            Some(target) => claim(target, &mut used)?,
            None => {
                let target = first_free(&prefix_of(&context, DEFAULT_CDROM_PREFIX), &mut used);
                template::vector_set(&mut context, "TARGET", target);
            }
        }
        template::vector_set(&mut context, "DISK_ID", disks.len().to_string());
        t.set("CONTEXT", template::Value::Vector(context));
    }
    give(&data, disks, &mut used);
    Ok(())
}

/// `VirtualMachineDisks::set_up_attach`'s target for a disk attached to the VM of template `t`:
/// the first free one of its DEV_PREFIX, or its own if no disk (nor the context) has it.
pub fn attached_target(t: &Template, disk: &mut Pairs) -> Result<(), String> {
    let mut used: std::collections::BTreeSet<String> = t
        .get_all("DISK")
        .chain(t.get_all("CONTEXT"))
        .filter_map(|a| a.vector_get("TARGET"))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    match template::vector_get(disk, "TARGET").filter(|t| !t.is_empty()) {
        Some(target) if used.contains(target) => Err(format!("Target {target} is already in use.")),
        Some(_) => Ok(()),
        None => {
            let target = first_free(&prefix_of(disk, DEFAULT_PREFIX), &mut used);
            template::vector_set(disk, "TARGET", target);
            disk.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(())
        }
    }
}

/// Takes the images of `disks` (numbered from `first_id`) for VM `vid` (hot-plugged), or for
/// the VM being created (`None`), as [`take_disks`]; `numbered` refusals start with the
/// disk's `DISK <id>: ` (`VirtualMachineDisks::get_images`).
pub async fn take_list(
    ctx: &Ctx,
    s: &Session,
    disks: &mut [Vec<(String, String)>],
    first_id: usize,
    vid: Option<i64>,
    numbered: bool,
) -> Result<Disks, Failure> {
    let mut out = Disks {
        stmts: Vec::new(),
        asks: Vec::new(),
        queues: Vec::new(),
        snaps: Vec::new(),
    };
    let mut taken: Vec<i64> = Vec::new();
    for (n, disk) in disks.iter_mut().enumerate() {
        let disk_id = first_id + n;
        let alloc_err = |e: String| {
            let prefix = if numbered {
                format!("DISK {disk_id}: ")
            } else {
                String::new()
            };
            fail(code::INTERNAL, format!("{prefix}{e}"))
        };
        template::vector_set(disk, "DISK_ID", disk_id.to_string());
        // `ImagePool::acquire_disk`: SERIAL "auto" becomes `<vm id>-<disk id>` (a new VM's id
        // is its insert's).
        if template::vector_get(disk, "SERIAL") == Some("auto") {
            let vm = vid.map_or_else(
                || sqlstore::objects::vm::ID_MARK.to_string(),
                |v| v.to_string(),
            );
            template::vector_set(disk, "SERIAL", format!("{vm}-{disk_id}"));
        }
        let get = |k: &str| {
            template::vector_get(disk, k)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let image = if !get("IMAGE_ID").is_empty() {
            let raw = get("IMAGE_ID");
            raw.parse::<i64>()
                .map_err(|_| alloc_err(format!("Image with ID: {raw} does not exist")))?
        } else if !get("IMAGE").is_empty() {
            image_by_name(
                ctx,
                s,
                &get("IMAGE"),
                &get("IMAGE_UNAME"),
                &get("IMAGE_UID"),
            )
            .await
            .map_err(alloc_err)?
        } else {
            // A volatile disk (`ImagePool::acquire_disk`): a swap or file system of a positive
            // size, a datablock of the default prefix unless it names one.
            let kind = get("TYPE").to_ascii_uppercase();
            if kind != "SWAP" && kind != "FS" {
                return Err(alloc_err(format!("Unknown disk type {kind}")));
            }
            if get("SIZE").parse::<i64>().map_or(true, |size| size <= 0) {
                return Err(alloc_err(
                    "SIZE attribute must be a positive integer value.".into(),
                ));
            }
            if get("DEV_PREFIX").is_empty() {
                template::vector_set(disk, "DEV_PREFIX", DEFAULT_PREFIX.to_string());
            }
            out.queues.push(Queue::Data);
            continue;
        };
        let given_size: Option<i64> = get("SIZE").parse().ok();
        // A second disk of an image this VM already takes: the VM is counted once
        // (`inc_running`), so a persistent image is in use unless it is shareable.
        let again = taken.contains(&image);
        let i = match IMAGES.authorized(ctx, s, image, USE).await {
            Ok(i) => i,
            Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => {
                return Err(alloc_err(format!("Image with ID: {image} does not exist")))
            }
            Err(f) => return Err(f),
        };
        if again {
            let shareable = Template::parse(&i.template).is_ok_and(|t| {
                t.single("PERSISTENT_TYPE")
                    .is_some_and(|p| p.eq_ignore_ascii_case("SHAREABLE"))
            });
            if i.persistent && !shareable {
                return Err(alloc_err(format!(
                    "Cannot acquire image {image}, it is persistent and already in use"
                )));
            }
        } else {
            let stmts = match vid {
                Some(vid) => super::images::acquire(&i, vid, true),
                None => super::images::acquire_new(&i),
            }
            .map_err(alloc_err)?;
            out.stmts.extend(stmts);
            out.asks.push(Ask::image_vm(image));
        }
        // `ImagePool::acquire_disk`: a SIZE given must fit the image.
        if let Some(size) = given_size {
            let why = if i.persistent && size != i.size {
                Some(format!(
                    "SIZE attribute is not supported for persistent image [{image}]."
                ))
            } else if i.kind == 1 && size != i.size {
                Some(format!(
                    "SIZE attribute is not supported for CDROM image [{image}]."
                ))
            } else if size < i.size {
                Some(format!(
                    "SIZE of {size}MB is less than the image [{image}] size of {}MB.",
                    i.size
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(alloc_err(why));
            }
        }
        out.queues.push(match i.kind {
            0 => Queue::Os,
            1 => Queue::Cdrom,
            2 => Queue::Data,
            _ => Queue::None,
        });
        taken.push(image);
        fill_disk(disk, &i, &DiskSource::of(ctx, i.datastore_id).await?);
        out.snaps
            .extend(super::image_snaps::for_disk(&i, disk_id as i64));
    }
    Ok(out)
}

/// What a disk takes from its image's datastore (`Datastore::disk_attribute`) and which
/// attributes it inherits (oned.conf's INHERIT_DATASTORE_ATTR and INHERIT_IMAGE_ATTR).
pub(super) struct DiskSource {
    tm_mad: String,
    datastore: Template,
    from_datastore: Vec<String>,
    from_image: Vec<String>,
}

impl DiskSource {
    /// Datastore `ds_id`'s, as stored now (an empty one if it is gone).
    pub(super) async fn of(ctx: &Ctx, ds_id: i64) -> Result<DiskSource, Failure> {
        let row = ctx
            .read(move |c| {
                use sqlstore::Optional;
                c.query_row(
                    "SELECT tm_mad, template FROM datastore_pool WHERE oid = ?1",
                    [sqlstore::SqlValue::Int(ds_id)],
                    |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
                )
                .optional()
            })
            .await?;
        let (tm_mad, text) = row.unwrap_or_default();
        Ok(DiskSource {
            tm_mad,
            datastore: Template::parse(&text).unwrap_or_default(),
            from_datastore: super::inherit::datastore(ctx),
            from_image: super::inherit::image(ctx),
        })
    }
}

/// The sizes of an image's snapshots together (`Snapshots::total_size`).
fn snapshots_size(text: &str) -> i64 {
    let t = Template::parse(text).unwrap_or_default();
    t.get_all("SNAPSHOT")
        .filter_map(|a| a.vector_get("SIZE")?.trim().parse::<i64>().ok())
        .sum()
}

/// `Image::disk_attribute` and then `Datastore::disk_attribute`: what a disk shows of its image
/// and of the image's datastore.
pub(super) fn fill_disk(
    disk: &mut Vec<(String, String)>,
    i: &sqlstore::objects::image::ImageRow,
    src: &DiskSource,
) {
    let it = Template::parse(&i.template).unwrap_or_default();
    let cdrom = i.kind == 1;
    if template::vector_get(disk, "DEV_PREFIX").is_none_or(str::is_empty) {
        let prefix = it
            .single("DEV_PREFIX")
            .filter(|p| !p.is_empty())
            .unwrap_or(if cdrom { "hd" } else { "sd" });
        template::vector_set(disk, "DEV_PREFIX", prefix.to_string());
    }
    template::vector_set(disk, "IMAGE", i.head.name.clone());
    template::vector_set(disk, "IMAGE_ID", i.head.owned.oid.to_string());
    template::vector_set(disk, "IMAGE_STATE", i.state.to_string());
    template::vector_set(disk, "SOURCE", i.source.clone());
    template::vector_set(disk, "ORIGINAL_SIZE", i.size.to_string());
    if template::vector_get(disk, "SIZE").is_none_or(str::is_empty) {
        template::vector_set(disk, "SIZE", i.size.to_string());
    }
    template::vector_set(
        disk,
        "DISK_SNAPSHOT_TOTAL_SIZE",
        snapshots_size(&i.snapshots).to_string(),
    );
    if i.format.is_empty() {
        disk.retain(|(k, _)| k != "DRIVER" && k != "FORMAT");
    } else {
        template::vector_set(disk, "DRIVER", i.format.to_lowercase());
        template::vector_set(disk, "FORMAT", i.format.to_lowercase());
    }
    use wire::ImageState as S;
    let locked = [S::Locked, S::LockedUsed, S::LockedUsedPers].map(S::as_i64);
    if locked.contains(&i.state) {
        template::vector_set(disk, "CLONING", "YES");
    } else {
        disk.retain(|(k, _)| k != "CLONING");
    }
    let ptype = it.single("PERSISTENT_TYPE").unwrap_or("");
    if cdrom || ptype.eq_ignore_ascii_case("IMMUTABLE") {
        template::vector_set(disk, "SAVE", "NO");
        template::vector_set(disk, "CLONE", "NO");
        template::vector_set(disk, "READONLY", "YES");
    } else {
        if template::vector_get(disk, "READONLY").is_none() {
            let ro = it.single("READONLY").unwrap_or("NO").to_string();
            template::vector_set(disk, "READONLY", ro);
        }
        if i.persistent {
            template::vector_set(disk, "PERSISTENT", "YES");
            template::vector_set(disk, "CLONE", "NO");
            template::vector_set(disk, "SAVE", "YES");
            if ptype.eq_ignore_ascii_case("SHAREABLE") && i.format.eq_ignore_ascii_case("raw") {
                template::vector_set(disk, "SHAREABLE", "YES");
            }
        } else {
            template::vector_set(disk, "CLONE", "YES");
            template::vector_set(disk, "SAVE", "NO");
        }
    }
    template::vector_set(disk, "TYPE", disk_type_name(i.kind, i.disk_type));
    if let Some(target) = it.single("TARGET").filter(|t| !t.is_empty()) {
        if template::vector_get(disk, "TARGET").is_none() {
            template::vector_set(disk, "TARGET", target.to_string());
        }
    }
    super::inherit::from_template(disk, &it, &src.from_image);
    datastore_attribute(
        disk,
        (&i.datastore, i.datastore_id, &src.tm_mad),
        &src.datastore,
        &src.from_datastore,
    );
    disk.sort_by(|a, b| a.0.cmp(&b.0));
}

/// What every disk takes of its datastore (`Datastore::disk_attribute`), named by (name, id,
/// transfer driver) with its template: DATASTORE, DATASTORE_ID, TM_MAD, CLONE_TARGET and
/// LN_TARGET where the disk has none, and what INHERIT_DATASTORE_ATTR (`inherit`) names.
pub(super) fn datastore_attribute(
    disk: &mut Vec<(String, String)>,
    (name, id, tm_mad): (&str, i64, &str),
    datastore: &Template,
    inherit: &[String],
) {
    template::vector_set(disk, "DATASTORE", name.to_string());
    template::vector_set(disk, "DATASTORE_ID", id.to_string());
    template::vector_set(disk, "TM_MAD", tm_mad.to_string());
    for key in ["CLONE_TARGET", "LN_TARGET"] {
        if let Some(v) = datastore.single(key).filter(|v| !v.is_empty()) {
            if template::vector_get(disk, key).is_none_or(str::is_empty) {
                template::vector_set(disk, key, v.to_string());
            }
        }
    }
    super::inherit::from_template(disk, datastore, inherit);
}

/// The image a DISK names (`ImagePool::get_disk` by name): owned by IMAGE_UID, or the user
/// called IMAGE_UNAME, or the caller.
pub(super) async fn image_by_name(
    ctx: &Ctx,
    s: &Session,
    name: &str,
    uname: &str,
    uid: &str,
) -> Result<i64, String> {
    let owner = super::writes::named_owner(ctx, s, uname, uid).await?;
    let found = super::writes::oid_by_name(ctx, "image_pool", name, owner).await?;
    found.ok_or_else(|| {
        format!(
            "User {owner} does not own an image with name: {name} . Set IMAGE_UNAME or IMAGE_UID of owner in DISK."
        )
    })
}

/// `Image::disk_attribute`'s TYPE: OS and DATABLOCK images the datastore's disk type, CDROMs
/// its CDROM kind (RBD_CDROM, SHEEPDOG_CDROM, GLUSTER_CDROM, else CDROM), any other none.
fn disk_type_name(image_kind: i64, disk_type: i64) -> &'static str {
    let name = |t: i64| {
        usize::try_from(t)
            .ok()
            .and_then(|t| super::ds_conf::DISK_TYPES.get(t).copied())
    };
    match image_kind {
        0 | 2 => name(disk_type).unwrap_or(""),
        1 => match disk_type {
            3 => "RBD_CDROM",
            5 => "GLUSTER_CDROM",
            7 => "SHEEPDOG_CDROM",
            _ => "CDROM",
        },
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(pairs: &[(&str, &str)]) -> Pairs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn target(d: &[(String, String)]) -> &str {
        template::vector_get(d, "TARGET").unwrap_or("")
    }

    #[test]
    fn targets_name_letters_as_opennebula_counts_them() {
        assert_eq!(target_name("sd", 0), "sda");
        assert_eq!(target_name("sd", 25), "sdz");
        assert_eq!(target_name("sd", 26), "sdaa");
        assert_eq!(target_name("vd", 27), "vdab");
        assert_eq!(target_name("sd", 26 + 26 * 26), "sdaaa");
    }

    #[test]
    fn the_first_os_disk_then_cdroms_and_context_then_the_rest_get_targets() {
        let mut t = Template::parse("CONTEXT = [ NETWORK = YES ]").unwrap();
        let mut disks = vec![
            disk(&[("DEV_PREFIX", "sd")]),
            disk(&[("DEV_PREFIX", "hd")]),
            disk(&[("DEV_PREFIX", "sd")]),
            disk(&[("DEV_PREFIX", "sd"), ("TARGET", "sda")]),
            disk(&[("DEV_PREFIX", "vd")]),
        ];
        let queues = [Queue::Data, Queue::Cdrom, Queue::Os, Queue::Os, Queue::Os];
        assign_targets(&mut t, &mut disks, &queues, None).unwrap();
        let got: Vec<&str> = disks.iter().map(|d| target(d)).collect();
        // sda is taken by disk 3: the first OS disk gets sdb, the data disks after it sdc.
        assert_eq!(got, ["sdc", "hda", "sdb", "sda", "vda"]);
        let context = t.vector("CONTEXT").unwrap();
        assert_eq!(template::vector_get(context, "TARGET"), Some("hdb"));
        assert_eq!(template::vector_get(context, "DISK_ID"), Some("5"));
    }

    #[test]
    fn two_disks_naming_one_target_are_refused_and_an_attached_disk_takes_the_next() {
        let mut t = Template::default();
        let mut disks = vec![disk(&[("TARGET", "vda")]), disk(&[("TARGET", "vda")])];
        assert_eq!(
            assign_targets(&mut t, &mut disks, &[Queue::Os, Queue::Data], None).unwrap_err(),
            "Two disks have defined the same target vda"
        );
        let t = Template::parse(
            "DISK = [ TARGET = sda ]\nDISK = [ TARGET = sdb ]\nCONTEXT = [ TARGET = hda ]",
        )
        .unwrap();
        let mut new = disk(&[("DEV_PREFIX", "sd")]);
        attached_target(&t, &mut new).unwrap();
        assert_eq!(target(&new), "sdc");
        let mut clash = disk(&[("TARGET", "hda")]);
        assert_eq!(
            attached_target(&t, &mut clash).unwrap_err(),
            "Target hda is already in use."
        );
    }
}
