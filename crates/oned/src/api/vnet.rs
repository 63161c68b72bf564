//! `one.vn.*` and `one.vnpool.info`: virtual networks with address ranges. A new network is in
//! LOCK_CREATE until the leader's driver task (`crate::monitor`) makes it READY.

use sqlstore::objects::cluster::{self as cluster_rows, Member};
use sqlstore::objects::vnet::{self, NewVnet, VnetRow};
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::owned;
use super::perms;
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
    quota: None,
};

pub const METHODS: &[Method] = &[
    method!("one.vn.allocate", Write, Auth::Object, allocate),
    method!("one.vn.info", Read, Auth::Object, owned::info, &NETS),
    method!("one.vn.delete", Write, Auth::Object, delete),
    method!(
        "one.vnpool.info",
        Read,
        Auth::Object,
        owned::pool_info,
        &NETS
    ),
];

/// The owned-object calls: chmod, chown, rename, update, lock, unlock.
pub const OWNED: &[Method] = &owned_methods!(lockable "one.vn", &NETS);

/// The MAC OpenNebula derives for an IPv4 address: its `MAC_PREFIX` 02:00 then the address.
fn mac_for(ip: &str) -> String {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    match octets.as_slice() {
        [a, b, c, d] => format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
        _ => "02:00:00:00:00:00".to_string(),
    }
}

fn ar_pool(x: &mut Xml<'_>, t: &template::Template) {
    x.elem("AR_POOL", |x| {
        for (n, ar) in t.get_all("AR").enumerate() {
            let Some(pairs) = ar.value.as_vector() else {
                continue;
            };
            let get = |k: &str| template::vector_get(pairs, k).unwrap_or("").to_string();
            let ip = get("IP");
            let mac = match get("MAC") {
                m if !m.is_empty() => m,
                _ => mac_for(&ip),
            };
            x.elem("AR", |x| {
                x.num("AR_ID", n);
                if !ip.is_empty() {
                    x.text("IP", &ip);
                }
                x.text("MAC", &mac)
                    .num("SIZE", get("SIZE").parse::<i64>().unwrap_or(0))
                    .text("TYPE", &get("TYPE"))
                    .num("USED_LEASES", 0)
                    .empty("LEASES");
            });
        }
    });
}

pub(super) fn vnet_xml(v: &VnetRow, out: &mut String) {
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
        .text("BRIDGE_TYPE", "linux")
        .num("STATE", v.state)
        .num("PREV_STATE", 0)
        .empty("PARENT_NETWORK_ID")
        .text("VN_MAD", &v.vn_mad);
        for e in ["PHYDEV", "VLAN_ID", "OUTER_VLAN_ID"] {
            x.empty(e);
        }
        x.num("VLAN_ID_AUTOMATIC", 0)
            .num("OUTER_VLAN_ID_AUTOMATIC", 0)
            .num("USED_LEASES", 0);
        for e in [
            "VROUTERS",
            "UPDATED_VMS",
            "OUTDATED_VMS",
            "UPDATING_VMS",
            "ERROR_VMS",
        ] {
            x.empty(e);
        }
        x.raw(&shown.to_xml());
        ar_pool(x, &t);
    });
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    NETS.may_create(ctx, s).await?;
    let (t, name) = super::family::named_template(&text)?;
    let vn_mad = t
        .single("VN_MAD")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            fail(
                code::INTERNAL,
                "Error allocating a new virtual network. No VN_MAD in template.",
            )
        })?
        .to_string();
    for ar in t.get_all("AR") {
        let pairs = ar.value.as_vector().unwrap_or_default();
        let kind = template::vector_get(pairs, "TYPE").unwrap_or("");
        let size = template::vector_get(pairs, "SIZE").and_then(|v| v.parse::<i64>().ok());
        if !matches!(kind, "IP4" | "IP6" | "IP4_6" | "ETHER") || size.is_none_or(|s| s <= 0) {
            return Err(fail(
                code::INTERNAL,
                "Error allocating a new virtual network. Every AR needs a TYPE (IP4, IP6, IP4_6, ETHER) and a positive SIZE.",
            ));
        }
        if kind.starts_with("IP4") && template::vector_get(pairs, "IP").is_none() {
            return Err(fail(
                code::INTERNAL,
                "Error allocating a new virtual network. An IP4 AR needs an IP.",
            ));
        }
    }
    let bridge = t.single("BRIDGE").unwrap_or("").to_string();
    let insert = vnet::insert(NewVnet {
        name: name.clone(),
        uid: s.uid,
        gid: s.gid,
        perms: perms::DEFAULT_PERMS,
        state: LOCK_CREATE,
        vn_mad,
        bridge,
        template: t.to_text(),
    });
    let cluster = super::clusters::allocation_cluster(ctx, &p, 1).await?;
    super::allocate_next_with(
        ctx,
        vnet::TABLE,
        insert,
        vec![cluster_rows::add_new(Member::Network, cluster)],
        "virtual network",
        "NET",
        &name,
    )
    .await
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let mut stmts = vnet::delete_in_state(id, READY);
    stmts.extend(sqlstore::objects::vdc::forget_resource(
        sqlstore::objects::vdc::Kind::Vnet,
        ctx.config.zone_id,
        id,
    ));
    super::owned::delete(ctx, s, &NETS, id, stmts, |r| {
        r.missing(fail(
            code::ACTION,
            "Cannot delete virtual network. It is not in state READY.",
        ))
    })
    .await
}
