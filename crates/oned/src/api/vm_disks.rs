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

/// What taking a new VM's images makes: the statements (each guarded by the image's state as
/// read) and the quota entries they count for (IMAGE RVMS).
pub struct Disks {
    pub stmts: Vec<SqlStmt>,
    pub asks: Vec<Ask>,
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
        return Ok(Disks {
            stmts: Vec::new(),
            asks: Vec::new(),
            snaps: Vec::new(),
        });
    }
    let out = take_list(
        ctx,
        s,
        &mut disks,
        0,
        None,
        "Error allocating a new virtual machine. ",
    )
    .await?;
    t.remove("DISK");
    for d in disks {
        t.push("DISK", template::Value::Vector(d));
    }
    for snaps in &out.snaps {
        snaps.store(t);
    }
    Ok(out)
}

/// Takes the images of `disks` (numbered from `first_id`) for VM `vid` (hot-plugged), or for
/// the VM being created (`None`), as [`take_disks`]; refusals start with `prefix`.
pub async fn take_list(
    ctx: &Ctx,
    s: &Session,
    disks: &mut [Vec<(String, String)>],
    first_id: usize,
    vid: Option<i64>,
    prefix: &str,
) -> Result<Disks, Failure> {
    let alloc_err = |e: String| fail(code::INTERNAL, format!("{prefix}{e}"));
    let mut out = Disks {
        stmts: Vec::new(),
        asks: Vec::new(),
        snaps: Vec::new(),
    };
    let mut taken: Vec<i64> = Vec::new();
    for (n, disk) in disks.iter_mut().enumerate() {
        let disk_id = first_id + n;
        set(disk, "DISK_ID", disk_id.to_string());
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
            continue;
        };
        if taken.contains(&image) {
            return Err(alloc_err(format!(
                "Image {image} is used by more than one disk of the VM"
            )));
        }
        let i = match IMAGES.authorized(ctx, s, image, USE).await {
            Ok(i) => i,
            Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => {
                return Err(alloc_err(format!("Image with ID: {image} does not exist")))
            }
            Err(f) => return Err(f),
        };
        let stmts = match vid {
            Some(vid) => super::images::acquire(&i, vid, true),
            None => super::images::acquire_new(&i),
        }
        .map_err(alloc_err)?;
        out.stmts.extend(stmts.into_iter().map(SqlStmt::must_match));
        out.asks.push(Ask::image_vm(image));
        taken.push(image);
        fill_disk(disk, &i);
        out.snaps
            .extend(super::image_snaps::for_disk(&i, disk_id as i64));
    }
    Ok(out)
}

fn set(pairs: &mut Vec<(String, String)>, k: &str, v: String) {
    pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
    pairs.push((k.to_string(), v));
}

/// `Image::disk_attribute`: what a disk shows of its image.
fn fill_disk(disk: &mut Vec<(String, String)>, i: &sqlstore::objects::image::ImageRow) {
    let it = Template::parse(&i.template).unwrap_or_default();
    let cdrom = i.kind == 1;
    if template::vector_get(disk, "DEV_PREFIX").is_none_or(str::is_empty) {
        let prefix = it
            .single("DEV_PREFIX")
            .filter(|p| !p.is_empty())
            .unwrap_or(if cdrom { "hd" } else { "sd" });
        set(disk, "DEV_PREFIX", prefix.to_string());
    }
    set(disk, "IMAGE", i.head.name.clone());
    set(disk, "IMAGE_ID", i.head.owned.oid.to_string());
    set(disk, "IMAGE_UNAME", i.head.uname.clone());
    set(disk, "IMAGE_STATE", i.state.to_string());
    set(disk, "SOURCE", i.source.clone());
    set(disk, "ORIGINAL_SIZE", i.size.to_string());
    if template::vector_get(disk, "SIZE").is_none_or(str::is_empty) {
        set(disk, "SIZE", i.size.to_string());
    }
    if !i.format.is_empty() {
        set(disk, "DRIVER", i.format.clone());
        set(disk, "FORMAT", i.format.clone());
    }
    set(disk, "DATASTORE", i.datastore.clone());
    set(disk, "DATASTORE_ID", i.datastore_id.to_string());
    set(disk, "TM_MAD", "dummy".into());
    let ptype = it.single("PERSISTENT_TYPE").unwrap_or("");
    if cdrom || ptype.eq_ignore_ascii_case("IMMUTABLE") {
        set(disk, "SAVE", "NO".into());
        set(disk, "CLONE", "NO".into());
        set(disk, "READONLY", "YES".into());
    } else {
        if template::vector_get(disk, "READONLY").is_none() {
            let ro = it.single("READONLY").unwrap_or("NO").to_string();
            set(disk, "READONLY", ro);
        }
        if i.persistent {
            set(disk, "PERSISTENT", "YES".into());
            set(disk, "CLONE", "NO".into());
            set(disk, "SAVE", "YES".into());
        } else {
            set(disk, "CLONE", "YES".into());
            set(disk, "SAVE", "NO".into());
        }
    }
    let kind = if cdrom { "CDROM" } else { "FILE" };
    set(disk, "TYPE", kind.into());
    if let Some(target) = it.single("TARGET").filter(|t| !t.is_empty()) {
        if template::vector_get(disk, "TARGET").is_none() {
            set(disk, "TARGET", target.to_string());
        }
    }
    disk.sort_by(|a, b| a.0.cmp(&b.0));
}

/// The image a DISK names (`ImagePool::get_disk` by name): owned by IMAGE_UID, or the user
/// called IMAGE_UNAME, or the caller.
async fn image_by_name(
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
