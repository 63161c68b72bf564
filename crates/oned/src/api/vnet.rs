//! `one.vn.*` and `one.vnpool.info`: virtual networks with address ranges. A new network is in
//! LOCK_CREATE until the leader's driver task (`crate::monitor`) makes it READY.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::perms::{self, caller, not_authorized, Owned, MANAGE};
use super::xml::esc;
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

pub use wire::acl::NET;
pub const READY: i64 = wire::VnetState::Ready.as_i64();
pub const LOCK_CREATE: i64 = wire::VnetState::LockCreate.as_i64();

struct VnetRow {
    owned: Owned,
    name: String,
    uname: String,
    gname: String,
    state: i64,
    vn_mad: String,
    bridge: String,
    template: String,
}

/// The MAC OpenNebula derives for an IPv4 address: its `MAC_PREFIX` 02:00 then the address.
fn mac_for(ip: &str) -> String {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    match octets.as_slice() {
        [a, b, c, d] => format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
        _ => "02:00:00:00:00:00".to_string(),
    }
}

fn ar_pool(t: &template::Template) -> String {
    let mut out = String::from("<AR_POOL>");
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
        out.push_str(&format!(
            "<AR><AR_ID>{n}</AR_ID>{}<MAC>{}</MAC><SIZE>{}</SIZE><TYPE>{}</TYPE><USED_LEASES>0</USED_LEASES><LEASES></LEASES></AR>",
            if ip.is_empty() { String::new() } else { format!("<IP>{}</IP>", esc(&ip)) },
            esc(&mac),
            get("SIZE").parse::<i64>().unwrap_or(0),
            esc(&get("TYPE")),
        ));
    }
    out.push_str("</AR_POOL>");
    out
}

fn vnet_xml(v: &VnetRow) -> String {
    let t = template::Template::parse(&v.template).unwrap_or_default();
    let mut shown = t.clone();
    shown.remove("AR");
    format!(
        "<VNET><ID>{}</ID><UID>{}</UID><GID>{}</GID><UNAME>{}</UNAME><GNAME>{}</GNAME><NAME>{}</NAME>{}<CLUSTERS><ID>0</ID></CLUSTERS><BRIDGE>{}</BRIDGE><BRIDGE_TYPE>linux</BRIDGE_TYPE><STATE>{}</STATE><PREV_STATE>0</PREV_STATE><PARENT_NETWORK_ID></PARENT_NETWORK_ID><VN_MAD>{}</VN_MAD><PHYDEV></PHYDEV><VLAN_ID></VLAN_ID><OUTER_VLAN_ID></OUTER_VLAN_ID><VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC><OUTER_VLAN_ID_AUTOMATIC>0</OUTER_VLAN_ID_AUTOMATIC><USED_LEASES>0</USED_LEASES><VROUTERS></VROUTERS><UPDATED_VMS></UPDATED_VMS><OUTDATED_VMS></OUTDATED_VMS><UPDATING_VMS></UPDATING_VMS><ERROR_VMS></ERROR_VMS>{}{}</VNET>",
        v.owned.oid,
        v.owned.uid,
        v.owned.gid,
        esc(&v.uname),
        esc(&v.gname),
        esc(&v.name),
        perms::permissions_xml(v.owned.perms),
        esc(&v.bridge),
        v.state,
        esc(&v.vn_mad),
        shown.to_xml(),
        ar_pool(&t),
    )
}

const SELECT_VNETS: &str =
    "SELECT n.oid, n.uid, n.gid, n.perms, n.name, COALESCE(u.name, ''), COALESCE(g.name, ''),
            n.state, n.vn_mad, n.bridge, n.template
     FROM vnet_pool n LEFT JOIN user_pool u ON u.oid = n.uid
          LEFT JOIN group_pool g ON g.oid = n.gid";

fn vnet_row(
    _: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<VnetRow, sqlstore::rusqlite::Error> {
    Ok(VnetRow {
        owned: Owned::from_row(r)?,
        name: r.get(4)?,
        uname: r.get(5)?,
        gname: r.get(6)?,
        state: r.get(7)?,
        vn_mad: r.get(8)?,
        bridge: r.get(9)?,
        template: r.get(10)?,
    })
}

fn no_vnet(id: i64) -> Failure {
    fail(
        code::NO_EXISTS,
        format!("Error getting virtual network [{id}]."),
    )
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let c = caller(ctx, s).await?;
    if !c.may_create(NET) {
        return Err(not_authorized(s, "CREATE NET"));
    }
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let name = t
        .single("NAME")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::INTERNAL, "No NAME in template."))?
        .to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
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
    let insert = SqlStmt::new(
        "INSERT INTO vnet_pool (oid, name, uid, gid, perms, state, vn_mad, bridge, template)
             SELECT last_oid + 1, ?1, ?2, ?3, ?4, ?5, ?6,
                    CASE WHEN ?7 = '' THEN 'onebr' || (last_oid + 1) ELSE ?7 END, ?8
             FROM pool_control WHERE tablename = 'vnet_pool' RETURNING oid",
        vec![
            SqlValue::Text(name.clone()),
            SqlValue::Int(s.uid),
            SqlValue::Int(s.gid),
            SqlValue::Int(perms::DEFAULT_PERMS),
            SqlValue::Int(LOCK_CREATE),
            SqlValue::Text(vn_mad),
            SqlValue::Text(bridge),
            SqlValue::Text(t.to_text()),
        ],
    );
    super::allocate_next(ctx, "vnet_pool", insert, "virtual network", "NET", &name).await
}

const NETS: Family<VnetRow> = Family {
    kind: NET,
    acl: "NET",
    pool: "VNET_POOL",
    select: SELECT_VNETS,
    alias: "n",
    row: vnet_row,
    owned: |v| v.owned,
    xml: vnet_xml,
    missing: no_vnet,
};

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    NETS.info(ctx, s, p).await
}

pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    NETS.pool_info(ctx, s, p, perms::Where::default()).await
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let v = NETS.get(ctx, id).await?;
    if !caller(ctx, s).await?.may(NET, &v.owned, MANAGE) {
        return Err(not_authorized(s, &format!("MANAGE NET [{id}]")));
    }
    let txn = SqlTxn {
        stmts: vec![SqlStmt::new(
            "DELETE FROM vnet_pool WHERE oid = ?1 AND state = ?2",
            vec![SqlValue::Int(id), SqlValue::Int(READY)],
        )
        .must_match()],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::ACTION,
            "Cannot delete virtual network. It is not in state READY.",
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}
