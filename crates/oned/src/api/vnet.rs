//! `one.vn.*` and `one.vnpool.info`: virtual networks with address ranges. A new network is in
//! LOCK_CREATE until the leader's driver task (`crate::monitor`) makes it READY.

use sqlstore::objects::cluster::{self as cluster_rows, Member};
use sqlstore::objects::vnet::{self, AutoVlan, NewVnet, VnetRow};
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{self, caller, PoolFilter, Where, USE};
use super::vnet_vlans;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};

pub use wire::acl::NET;
pub const READY: i64 = wire::VnetState::Ready.as_i64();
pub const LOCK_CREATE: i64 = wire::VnetState::LockCreate.as_i64();

pub static NETS: Family<VnetRow> = Family {
    table: vnet::TABLE,
    kind: NET,
    acl: "NET",
    what: "virtual network",
    pool: "VNET_POOL",
    template: "template",
    rows: &vnet::ROWS,
    xml: vnet_xml,
    quota: Some(reservation_leases),
    pool_xml: None,
};

/// What a network counts for in its owner's quotas: a reservation, every address of its
/// ranges in its parent's LEASES (`RequestManagerChown::get_and_quota`); others nothing.
fn reservation_leases(n: &VnetRow) -> Option<super::quota::Ask> {
    if n.parent < 0 {
        return None;
    }
    let t = template::Template::parse(&n.template).unwrap_or_default();
    let size: u64 = super::address_range::ranges(&t)
        .iter()
        .map(|r| r.size)
        .sum();
    Some(super::quota::Ask::leases(n.parent, size as f64))
}

pub const METHODS: &[Method] = &[
    method!("one.vn.allocate", Write, Auth::Object, allocate),
    method!("one.vn.info", Read, Auth::Object, info),
    method!("one.vn.delete", Write, Auth::Object, delete),
    method!(
        "one.vn.update",
        Write,
        Auth::Object,
        super::vnet_update::update,
        &NETS
    ),
    method!("one.vnpool.info", Read, Auth::Object, pool_info),
];

/// `one.vnpool.info(filter, start, end)`, as `VirtualNetworkPoolInfo` lists: networks under
/// every ACL rule of the caller's, reservations (a parent network) under the rules naming them
/// or their group alone, none on every network or on a cluster's.
pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let filter = PoolFilter::parse(&p)?;
    let c = caller(ctx, s).await?;
    let a = NETS.rows.alias;
    let acl = match (c.may_sql(NET, USE, a), c.may_sql_narrow(NET, USE, a)) {
        (None, None) => None,
        (nets, reservations) => {
            let (nets, mut args) = nets.unwrap_or_else(|| ("1 = 1".into(), Vec::new()));
            let (reservations, more) = reservations.unwrap_or_else(|| ("1 = 1".into(), Vec::new()));
            args.extend(more);
            Some((
                format!(
                    "({a}.parent = -1 AND ({nets})) OR ({a}.parent <> -1 AND ({reservations}))"
                ),
                args,
            ))
        }
    };
    let mut cond = Where::default();
    let page = filter.sql_with(&c, a, &mut cond, acl);
    NETS.print_pool(ctx, s, cond, page).await
}

/// The owned-object calls: chmod, chown, rename, update, lock, unlock.
pub const OWNED: &[Method] =
    &owned_methods!(@each "one.vn", &NETS, [chmod, chown, rename, lock, unlock]);

/// `AddressRangePool::to_xml`: with the leases (`one.vn.info`), or as stored (pools). Past
/// MAX_LEASES_PER_ANSWER leases, the later ones are left out of the lists; USED_LEASES still
/// counts them all, so a client sees that the list is cut.
fn ar_pool(
    x: &mut Xml<'_>,
    v: &VnetRow,
    t: &template::Template,
    extended: bool,
    seen: Option<&[bool]>,
) {
    let mut left = crate::limits::leases_per_answer();
    x.elem("AR_POOL", |x| {
        for r in super::address_range::ranges(t) {
            let leases: Vec<_> = v.leases.iter().filter(|l| l.ar_id == r.id).collect();
            let used = leases.len();
            // Only the leases the caller may see are listed; USED_LEASES counts them all.
            let leases: Vec<_> = match seen {
                Some(seen) => (v.leases.iter().zip(seen))
                    .filter(|(l, seen)| l.ar_id == r.id && **seen)
                    .map(|(l, _)| l)
                    .collect(),
                None => leases,
            };
            let shown = &leases[..leases.len().min(left)];
            left -= shown.len();
            if extended {
                r.xml_extended(x, shown, used);
            } else {
                r.xml_stored(x, shown);
            }
        }
    });
}

pub(crate) fn vnet_xml(v: &VnetRow, out: &mut String) {
    render(v, out, false, None);
}

/// `VirtualNetwork::to_xml_extended`: the network with its leases.
pub(super) fn vnet_xml_extended(v: &VnetRow, out: &mut String, seen: Option<&[bool]>) {
    render(v, out, true, seen);
}

fn render(v: &VnetRow, out: &mut String, extended: bool, seen: Option<&[bool]>) {
    let t = match template::Template::parse(&v.template) {
        Ok(t) => t,
        Err(e) => {
            xml::corrupt_template(&e);
            template::Template::default()
        }
    };
    let mut shown = t.clone();
    shown.remove("AR");
    Xml::new(out).elem("VNET", |x| {
        xml::owned_head(x, &v.head, Some(&v.lock));
        x.elem("CLUSTERS", |x| {
            for c in &v.clusters {
                x.num("ID", c);
            }
        })
        .text("BRIDGE", &v.bridge)
        .text(
            "BRIDGE_TYPE",
            t.single("BRIDGE_TYPE")
                .filter(|b| !b.is_empty())
                .unwrap_or("linux"),
        )
        .num("STATE", v.state)
        // `VirtualNetworkPool::update` sets the previous state to the state it writes.
        .num("PREV_STATE", v.state)
        .elem("PARENT_NETWORK_ID", |x| {
            if v.parent >= 0 {
                x.raw(&v.parent.to_string());
            }
        })
        .text("VN_MAD", &v.vn_mad);
        // `VirtualNetwork::insert` keeps them in the template too, but for ids oned chose.
        let vlans = [
            (
                "PHYDEV",
                t.single("PHYDEV")
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            ),
            ("VLAN_ID", vnet_vlans::shown(v.vlan_auto, &t, "VLAN_ID")),
            (
                "OUTER_VLAN_ID",
                vnet_vlans::shown(v.outer_vlan_auto, &t, "OUTER_VLAN_ID"),
            ),
        ];
        for (e, value) in vlans {
            match value {
                Some(value) => x.text(e, &value),
                None => x.empty(e),
            };
        }
        x.num("VLAN_ID_AUTOMATIC", i32::from(v.vlan_auto.automatic()))
            .num(
                "OUTER_VLAN_ID_AUTOMATIC",
                i32::from(v.outer_vlan_auto.automatic()),
            )
            .num("USED_LEASES", v.leases.len());
        // The routers with a NIC here (`VirtualNetwork::vrouters`).
        x.elem("VROUTERS", |x| {
            for r in &v.vrouters {
                x.num("ID", r);
            }
        });
        // The VMs with a NIC here (`nic_attribute` adds each, `free_addr` takes it out): the
        // dummy driver updates them at once, so none is ever outdated, updating or in error.
        let mut updated: Vec<i64> = (v.leases.iter())
            .filter(|l| l.holder == sqlstore::objects::lease::Holder::Vm && l.owner >= 0)
            .map(|l| l.owner)
            .collect();
        updated.sort_unstable();
        updated.dedup();
        x.elem("UPDATED_VMS", |x| {
            for vm in &updated {
                x.num("ID", vm);
            }
        });
        for e in ["OUTDATED_VMS", "UPDATING_VMS", "ERROR_VMS"] {
            x.empty(e);
        }
        x.raw(&shown.to_xml());
        ar_pool(x, v, &t, extended, seen);
    });
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let cluster = super::clusters::allocation_cluster(ctx, &p, 1).await?;
    NETS.may_create(ctx, s).await?;
    // `VirtualNetworkPool::allocate` looks for the name before `insert` checks the template.
    name_free(ctx, s, t.single("NAME").unwrap_or("")).await?;
    // `VirtualNetwork::insert`'s first check.
    let name = t
        .single("NAME")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::INTERNAL, "No NAME in template for Virtual Network."))?
        .to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let with = vec![cluster_rows::add_new(Member::Network, cluster)];
    create(ctx, s, t, &name, with).await
}

/// INTERNAL `NAME is already taken by NET <id>.` when the caller owns a network called `name`.
pub(super) async fn name_free(ctx: &Ctx, s: &Session, name: &str) -> Result<(), super::Failure> {
    if name.is_empty() {
        return Ok(());
    }
    let (n, uid) = (name.to_string(), s.uid);
    let held = ctx
        .read(move |c| sqlstore::objects::owned_named(c, vnet::TABLE, &n, uid))
        .await?;
    match held {
        Some(other) => Err(fail(
            code::INTERNAL,
            format!("NAME is already taken by NET {other}."),
        )),
        None => Ok(()),
    }
}

/// A new network of `s` from template `t`, called `name` (checked by the caller), with
/// `with` (its clusters...) run after its insert: `one.vn.allocate`'s and
/// `one.vntemplate.instantiate`'s.
pub(super) async fn create(
    ctx: &Ctx,
    s: &Session,
    t: template::Template,
    name: &str,
    with: Vec<sqlstore::SqlStmt>,
) -> MethodResult {
    create_child(ctx, s, t, name, with, -1).await
}

/// [`create`] of a reservation taken from network `parent` (-1: none).
pub(super) async fn create_child(
    ctx: &Ctx,
    s: &Session,
    t: template::Template,
    name: &str,
    with: Vec<sqlstore::SqlStmt>,
    parent: i64,
) -> MethodResult {
    let vn_mad = t
        .single("VN_MAD")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::INTERNAL, "No VN_MAD in template for Virtual Network."))?
        .to_string();
    if !vn_mad_defined(ctx, &vn_mad) {
        return Err(fail(
            code::INTERNAL,
            format!("VN_MAD named \"{vn_mad}\" is not defined in oned.conf"),
        ));
    }
    // `VirtualNetwork::parse_phydev_vlans`: what the driver needs, before the ranges.
    super::vntemplate::phydev_vlans(&t, &vn_mad).map_err(|e| fail(code::INTERNAL, e))?;
    let mut t = t;
    let automatic = vnet_vlans::parse(&mut t);
    // A reservation's range comes checked, marked with its parent's range. A bad range is the
    // driver's to refuse in OpenNebula (`IPAMManager::_vnet_create`): the network is made, and
    // left in ERROR with the ranges before it.
    let (t, refused) = if parent >= 0 {
        (t, None)
    } else {
        normalized_ranges(&t).map_err(|e| fail(code::INTERNAL, e))?
    };
    // `VirtualNetwork::insert`: the name is the object's, not its template's; every network
    // gets the default security group.
    let mut t = t;
    t.remove("NAME");
    super::secgroup::with_default_group(&mut t);
    // `VirtualNetwork::insert` writes the driver's settings into the template: VN_MAD, PHYDEV,
    // BRIDGE (`onebr.<VLAN_ID>` or `onebr<id>` unless given) and BRIDGE_TYPE.
    let given = |t: &template::Template, k: &str| {
        t.single(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let bridge = given(&t, "BRIDGE")
        .or_else(|| given(&t, "VLAN_ID").map(|v| format!("onebr.{v}")))
        .unwrap_or_default();
    let single = |v: String| template::Value::Single(v);
    let phydev = given(&t, "PHYDEV").unwrap_or_default();
    t.set("VN_MAD", single(vn_mad.clone()));
    t.set("PHYDEV", single(phydev));
    t.set(
        "BRIDGE",
        single(if bridge.is_empty() {
            format!("onebr{}", vnet::ID_MARK)
        } else {
            bridge.clone()
        }),
    );
    t.set("BRIDGE_TYPE", single(bridge_type(ctx, &vn_mad)));
    let state = match &refused {
        Some(why) => {
            let why = crate::sched_runner::timed_message(super::vm::now(), why);
            t.set("ERROR", single(why));
            wire::VnetState::Error.as_i64()
        }
        None => LOCK_CREATE,
    };
    let new_vnet = NewVnet {
        name: name.to_string(),
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        state,
        vn_mad,
        bridge,
        template: t.to_text(),
        parent,
        vlan_auto: AutoVlan::No,
        outer_vlan_auto: AutoVlan::No,
    };
    let new = super::writes::New {
        what: "virtual network",
        kind: "NET",
        name,
        refusal: super::writes::Refusal::Internal,
        owner: Some(s.uid),
    };
    insert_with_vlans(ctx, new_vnet, automatic, with, new).await
}

/// Inserts the network, with the VLAN ids oned chooses for it (`set_vlan_id`). Those that
/// depend on its id are computed for the pool counter read here and written only while the
/// counter has not moved (another network inserted first takes that id, and may have taken a
/// VLAN id): then computed again, a bounded number of times.
async fn insert_with_vlans(
    ctx: &Ctx,
    mut n: NewVnet,
    automatic: (bool, bool),
    with: Vec<sqlstore::SqlStmt>,
    new: super::writes::New<'_>,
) -> MethodResult {
    let unassigned = vnet_vlans::unassigned;
    if !vnet_vlans::chosen_by_id(&n.vn_mad, automatic.0, automatic.1) {
        n.vlan_auto = unassigned(automatic.0);
        n.outer_vlan_auto = unassigned(automatic.1);
        let insert = vnet::insert(n);
        return super::writes::allocate_next_refused(ctx, vnet::TABLE, insert, with, new, |_| {})
            .await;
    }
    let vlans = vnet_vlans::vlan_ids(&ctx.config.raw);
    let vxlan_start = vnet_vlans::vxlan_start(&ctx.config.raw);
    for _ in 0..VLAN_RETRIES {
        let (last, taken) = ctx
            .read(|c| {
                Ok((
                    sqlstore::objects::backup::last_oid(c, vnet::TABLE)?,
                    vnet::auto_vlans_taken(c)?,
                ))
            })
            .await?;
        let Some((vlan, outer)) =
            vnet_vlans::assign(&n.vn_mad, automatic, last + 1, &vlans, vxlan_start, &taken)
        else {
            return Err(fail(
                code::INTERNAL,
                "Cannot automatically assign VLAN_ID to network.",
            ));
        };
        let mut attempt = n.clone();
        (attempt.vlan_auto, attempt.outer_vlan_auto) = (vlan, outer);
        let mut stmts = vec![sqlstore::objects::backup::counter_is(vnet::TABLE, last)];
        stmts.extend(with.iter().cloned());
        let mut moved = false;
        let written = super::writes::allocate_next_refused(
            ctx,
            vnet::TABLE,
            vnet::insert(attempt),
            stmts,
            new,
            |r| moved = r.kind == sqlstore::TxnErrorKind::NotFound && r.stmt == 1,
        )
        .await;
        match written {
            Err(_) if moved => continue,
            other => return other,
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot automatically assign VLAN_ID to network: the pool kept changing, try again",
    ))
}

/// Attempts at a network whose VLAN ids depend on the pool counter.
const VLAN_RETRIES: usize = 8;

/// The drivers of the shipped oned.conf's `VN_MAD_CONF` vectors, which a zone whose oned.conf
/// names none knows.
const SHIPPED_VN_MADS: [&str; 9] = [
    "dummy",
    "802.1Q",
    "fw",
    "ovswitch",
    "vxlan",
    "ovswitch_vxlan",
    "bridge",
    "elastic",
    "nodeport",
];

/// The BRIDGE_TYPE of `vn_mad`'s `VN_MAD_CONF` (`parse_bridge_type`): oned.conf's, else the
/// shipped one's (`openvswitch` for the Open vSwitch drivers, `linux` for the others).
pub(super) fn bridge_type(ctx: &Ctx, vn_mad: &str) -> String {
    let confs = super::ds_conf::vectors(&ctx.config.raw, "VN_MAD_CONF");
    let conf = confs
        .iter()
        .find(|c| template::vector_get(c, "NAME").is_some_and(|n| n.eq_ignore_ascii_case(vn_mad)))
        .and_then(|c| template::vector_get(c, "BRIDGE_TYPE"));
    match (conf, vn_mad) {
        (Some(kind), _) => kind.to_string(),
        (None, "ovswitch" | "ovswitch_vxlan") => "openvswitch".to_string(),
        (None, _) => "linux".to_string(),
    }
}

/// Whether oned.conf has a `VN_MAD_CONF` for `vn_mad` (`Nebula::get_vn_conf_attribute`).
fn vn_mad_defined(ctx: &Ctx, vn_mad: &str) -> bool {
    super::storage::driver_conf_names(ctx, "VN_MAD_CONF", &SHIPPED_VN_MADS)
        .iter()
        .any(|n| n.eq_ignore_ascii_case(vn_mad))
}

/// The template with each AR checked and numbered as `AddressRange::from_attr` does (AR_ID
/// from 0, a MAC where none was given), or the first refusal.
/// The template's ranges as the driver's answer parses them (`VirtualNetwork::add_var`): those
/// before the first bad one, and why that one is refused. Too many is refused at once.
pub(super) fn normalized_ranges(
    t: &template::Template,
) -> Result<(template::Template, Option<String>), String> {
    crate::limits::ranges(t.get_all("AR").count())?;
    let mut ranges = Vec::new();
    let mut refused = None;
    for ar in t.get_all("AR") {
        let pairs = ar.value.as_vector().unwrap_or_default().to_vec();
        let id = ranges.len() as i64;
        match super::address_range::Range::create(pairs, id, super::address_range::random_word()) {
            Ok(r) => ranges.push(r),
            Err(why) => {
                refused = Some(why);
                break;
            }
        }
    }
    Ok((super::address_range::with_ranges(t, &ranges), refused))
}

/// `VirtualNetworkInfo::to_xml`: a caller without MANAGE on the network sees only the leases
/// of the VMs, reservations and routers it may USE (`use_filter`), and the addresses on hold
/// only if it may use every VM; `None`: it sees them all.
async fn visible_leases(
    ctx: &Ctx,
    s: &Session,
    v: &VnetRow,
    manages: bool,
) -> Result<Option<Vec<bool>>, super::Failure> {
    use sqlstore::objects::lease::Holder;
    if v.leases.is_empty() || manages {
        return Ok(None);
    }
    let oid = v.head.owned.oid;
    let caller = perms::caller(ctx, s).await?;
    let owners = ctx.read(move |c| vnet::lease_holders(c, oid)).await?;
    let kind = |h: Holder| match h {
        Holder::Vm => wire::acl::VM,
        Holder::Net => wire::acl::NET,
        Holder::Vrouter => wire::acl::VROUTER,
    };
    let every_vm = caller.acl_scope(wire::acl::VM, perms::USE).all;
    Ok(Some(
        v.leases
            .iter()
            .map(|l| match owners.get(&(l.holder.code(), l.owner)) {
                Some(o) => caller.may(kind(l.holder), o, perms::USE),
                // An address on hold (VM -1), or a holder gone meanwhile.
                None => l.holder == Holder::Vm && l.owner == -1 && every_vm,
            })
            .collect(),
    ))
}

/// `one.vn.info(id)`: the network with its leases.
pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let mut row = NETS
        .authorized(ctx, s, id, perms::USE | perms::NO_LOCK)
        .await?;
    // `VirtualNetworkInfo::to_xml` weighs MANAGE on the network once for what it lists.
    let manages = s.is_admin()
        || NETS
            .authorized(ctx, s, id, perms::MANAGE | perms::NO_LOCK)
            .await
            .is_ok();
    super::vrouter::only_visible_routers(ctx, s, &mut row, manages).await;
    let seen = visible_leases(ctx, s, &row, manages).await?;
    let mut out = String::new();
    vnet_xml_extended(&row, &mut out, seen.as_deref());
    Ok(xmlrpc::Value::String(super::encrypted::answer(
        ctx,
        s,
        &p,
        vnet::TABLE,
        out,
    )?))
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    use sqlstore::objects::lease;
    use wire::VnetState as V;
    let id = p.int(0)? as i64;
    let net = NETS.get(ctx, id).await?;
    let state = net.state;
    // `VirtualNetworkDelete::drop`: none of its addresses may be in use, and not while the
    // driver holds it; a reservation's go back to its parent. Its state hooks see it
    // LOCK_DELETE, then DONE once the driver (here at once) has cleaned it up
    // (`IPAMManager::_vnet_delete`, `VirtualNetworkPool::delete_success`).
    let mut stmts = vec![lease::none_in_vnet(id)];
    let mut from = state;
    for to in [V::LockDelete, V::Done] {
        let mut moved = net.clone();
        moved.state = to.as_i64();
        let mut xml = String::new();
        vnet_xml(&moved, &mut xml);
        // The message is made before `set_prev_state`: PREV_STATE is the state it left.
        let xml = xml.replacen(
            &format!("<PREV_STATE>{}</PREV_STATE>", moved.state),
            &format!("<PREV_STATE>{from}</PREV_STATE>"),
            1,
        );
        stmts.extend(vnet::state_events(id, to.name(), &xml, super::vm::now()));
        from = moved.state;
    }
    stmts.extend(vnet::delete_in_state(id, state));
    stmts.push(lease::free_all_of(lease::Holder::Net, id));
    stmts.extend(sqlstore::objects::vdc::forget_resource(
        sqlstore::objects::vdc::Kind::Vnet,
        ctx.config.zone_id,
        id,
    ));
    if matches!(
        V::from_i64(state),
        Some(V::LockCreate | V::LockDelete | V::Done)
    ) {
        NETS.authorized(ctx, s, id, super::perms::MANAGE).await?;
        return Err(fail(
            code::ACTION,
            format!(
                "Cannot delete virtual network. Can not remove a Virtual Network, wrong state {}",
                V::from_i64(state).map_or("UNKNOWN", V::name)
            ),
        ));
    }
    super::owned::delete(ctx, s, &NETS, id, stmts, |r| {
        let why = if r.stmt == 0 {
            "Cannot delete virtual network. Can not remove a virtual network with leases in use"
        } else {
            "Cannot delete virtual network. It changed meanwhile, try again"
        };
        r.missing(fail(code::ACTION, why))
    })
    .await
}
