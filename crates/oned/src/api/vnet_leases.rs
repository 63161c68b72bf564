//! The address-range and lease calls of `one.vn.*` (`RequestManagerVirtualNetwork`): add_ar,
//! rm_ar, free_ar, update_ar, hold, release, reserve, recover. Each reads the network, computes
//! its new ranges and leases on the leader, and writes them guarded by what it read (the
//! template the ranges live in, the leases it takes), computing again when a concurrent write
//! came first.

use sqlstore::objects::lease::{self, Holder, OwnerRef};
use sqlstore::objects::vnet::{self, VnetRow};
use sqlstore::SqlStmt;
use template::Template;
use xmlrpc::{Params, Value};

use super::address_range::{self as ar, Range};
use super::method::{Auth, Method};
use super::perms::{ADMIN, MANAGE, USE};
use super::vnet::NETS;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.vn.add_ar", Write, Auth::Object, add_ar),
    method!("one.vn.rm_ar", Write, Auth::Object, rm_ar),
    method!("one.vn.free_ar", Write, Auth::Object, free_ar),
    method!("one.vn.update_ar", Write, Auth::Object, update_ar),
    method!("one.vn.hold", Write, Auth::Object, hold),
    method!("one.vn.release", Write, Auth::Object, release),
    method!("one.vn.reserve", Write, Auth::Object, reserve),
    method!("one.vn.recover", Write, Auth::Object, recover),
];

fn state_name(state: i64) -> &'static str {
    wire::VnetState::from_i64(state).map_or("UNKNOWN", wire::VnetState::name)
}

fn parsed(t: &str) -> Result<Template, String> {
    Template::parse(t).map_err(|e| e.to_string())
}

/// The stored template of a network, parsed: a corrupt one is an error, never an empty one
/// that would drop its ranges.
fn stored(v: &VnetRow) -> Result<Template, Failure> {
    parsed(&v.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The leases of range `ar_id`, their indexes ascending.
fn taken(v: &VnetRow, ar_id: i64) -> Vec<i64> {
    v.leases
        .iter()
        .filter(|l| l.ar_id == ar_id)
        .map(|l| l.idx)
        .collect()
}

/// The template `v` would have with `ranges`, and the statement that writes it if the template
/// is still the one read.
fn write_ranges(v: &VnetRow, t: &Template, ranges: &[Range]) -> SqlStmt {
    let new = ar::with_ranges(t, ranges).to_text();
    sqlstore::objects::replace_template(
        vnet::TABLE,
        "template",
        v.head.owned.oid,
        new,
        v.template.clone(),
    )
}

/// What `RequestManagerVirtualNetwork::request_execute` shares: authorize `right` on the
/// network, parse the template (INTERNAL), require READY or UPDATE_FAILURE (ACTION), then
/// write what `action` computes from the network and the template (INTERNAL on its refusal).
async fn leases_call(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    name: &str,
    right: u64,
    action: impl Fn(&VnetRow, &Template) -> Result<Vec<SqlStmt>, String>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    NETS.authorized(ctx, s, id, right).await?;
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let (action, tmpl) = (&action, &tmpl);
    super::writes::write_computed(ctx, id, move || async move {
        let v = NETS.authorized(ctx, s, id, right).await?;
        if v.state != super::vnet::READY && v.state != wire::VnetState::UpdateFailure.as_i64() {
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not execute {name}Virtual Network is in wrong state: {}",
                    state_name(v.state)
                ),
            ));
        }
        action(&v, tmpl).map_err(|e| fail(code::INTERNAL, e))
    })
    .await
}

/// `one.vn.add_ar(id, template)`: the first AR of the template becomes a new range.
pub async fn add_ar(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    leases_call(ctx, s, p, "one.vn.add_ar", ADMIN, |v, tmpl| {
        let Some(pairs) = tmpl.get_all("AR").find_map(|a| a.value.as_vector()) else {
            return Err("Wrong AR definition. AR vector attribute is missing.".into());
        };
        let t = parsed(&v.template)?;
        let mut ranges = ar::ranges(&t);
        let mut pairs = pairs.to_vec();
        if let Some(ipam) = t.single("IPAM_MAD").filter(|m| !m.is_empty()) {
            if !pairs.iter().any(|(k, _)| k == "IPAM_MAD") {
                pairs.push(("IPAM_MAD".into(), ipam.to_string()));
            }
        }
        ranges.push(Range::create(
            pairs,
            ar::next_id(&ranges),
            ar::random_word(),
        )?);
        crate::limits::ranges(ranges.len())?;
        Ok(vec![write_ranges(v, &t, &ranges)])
    })
    .await
}

/// Attributes `update_ar` never takes from the caller: kept as the range has them.
const KEPT: [&str; 3] = ["TYPE", "MAC", "AR_ID"];
/// Attributes computed when shown, never stored.
const SHOWN: [&str; 10] = [
    "MAC_END",
    "IP_END",
    "IP6_END",
    "IP6_ULA",
    "IP6_ULA_END",
    "IP6_GLOBAL",
    "IP6_GLOBAL_END",
    "USED_LEASES",
    "LEASES",
    "ALLOCATED",
];

/// `one.vn.update_ar(id, template)`: the first AR given (by AR_ID) becomes what it says, as
/// `AddressRange::update_attributes` replaces the range: its type, MAC, first addresses, id and
/// parent range stay, SIZE too unless given (it may shrink only above its last lease); anything
/// else the range had and the call does not repeat is gone.
pub async fn update_ar(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    // A reservation's ranges keep their restricted attributes (VNET_RESTRICTED_ATTR's `AR/...`)
    // from anyone outside group oneadmin (`VirtualNetwork::update_ar`'s `keep_restricted`).
    let restricted: Vec<String> = match s.is_admin() {
        true => Vec::new(),
        false => super::restricted::vnet(ctx)
            .into_iter()
            .find(|(name, _)| name == "AR")
            .map(|(_, subs)| subs)
            .unwrap_or_default(),
    };
    leases_call(ctx, s, p, "one.vn.update_ar", MANAGE, |v, tmpl| {
        // `AddressRangePool::update_ar` acts on the first AR and returns.
        let Some(up) = tmpl.get_all("AR").find_map(|a| a.value.as_vector()) else {
            return Err("Wrong AR definition. AR vector attribute is missing.".into());
        };
        let t = parsed(&v.template)?;
        let mut ranges = ar::ranges(&t);
        let mut guards = Vec::new();
        {
            let get = |k: &str| template::vector_get(up, k).unwrap_or("").trim().to_string();
            let Ok(arid) = get("AR_ID").parse::<i64>() else {
                return Err("AR/AR_ID attribute is missing.".into());
            };
            let Some(r) = ranges.iter_mut().find(|r| r.id == arid) else {
                return Err(format!("Address Range with ID {arid} was not found."));
            };
            let reservation = !r.get("PARENT_NETWORK_AR_ID").is_empty();
            let mut attrs = replaced_range(&r.attrs, up, reservation);
            super::address_range::check_prefixes(&attrs)?;
            if reservation && !restricted.is_empty() {
                let kept = |k: &str| restricted.iter().any(|r| r.eq_ignore_ascii_case(k));
                attrs.retain(|(k, _)| !kept(k));
                attrs.extend(r.attrs.iter().filter(|(k, _)| kept(k)).cloned());
            }
            let size = template::vector_get(&attrs, "SIZE").unwrap_or("").trim();
            let Ok(new_size) = size.parse::<u64>() else {
                return Err("Unable to read the SIZE attribute, it must be number >= 0".into());
            };
            if reservation && new_size != r.size {
                return Err("The SIZE of a reservation cannot be changed.".into());
            }
            if taken(v, arid).iter().any(|i| *i as u64 >= new_size) {
                return Err("New SIZE cannot be applied. There are used leases that would fall outside the range.".into());
            }
            let updated = Range::stored(attrs.clone(), arid).ok_or_else(|| {
                if template::vector_get(&attrs, "GLOBAL_PREFIX")
                    .is_some_and(|g| !g.is_empty() && g.parse::<std::net::Ipv6Addr>().is_err())
                {
                    "Wrong format for IP6 global address prefix".to_string()
                } else {
                    "Wrong format for IP6 unique local address prefix".to_string()
                }
            })?;
            guards.push(lease::none_from(v.head.owned.oid, arid, new_size as i64));
            *r = updated;
        }
        let mut stmts = vec![write_ranges(v, &t, &ranges)];
        stmts.extend(guards);
        Ok(stmts)
    })
    .await
}

type Pairs = Vec<(String, String)>;

/// The attributes of a range `old` that `update_attributes` leaves once `up` replaces them.
fn replaced_range(old: &[(String, String)], up: &[(String, String)], reservation: bool) -> Pairs {
    let was = |k: &str| template::vector_get(old, k).map(str::to_string);
    let kind = was("TYPE").unwrap_or_default().to_ascii_uppercase();
    let ipv4 = matches!(kind.as_str(), "IP4" | "IP4_6" | "IP4_6_STATIC");
    // `is_ipv6`: the SLAAC types only (the static ones lack its bit).
    let ipv6 = matches!(kind.as_str(), "IP6" | "IP4_6");
    let ipv6_static = matches!(kind.as_str(), "IP6_STATIC" | "IP4_6_STATIC");
    let mut attrs: Pairs = up
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .filter(|(k, _)| {
            !(KEPT.contains(&k.as_str())
                || SHOWN.contains(&k.as_str())
                || matches!(
                    k.as_str(),
                    "IP" | "IP6" | "PARENT_NETWORK_AR_ID" | "IPAM_MAD"
                ))
        })
        .collect();
    let keep = |k: &str, attrs: &mut Pairs| {
        if let Some(v) = was(k).filter(|v| !v.is_empty()) {
            attrs.push((k.to_string(), v));
        }
    };
    for k in ["TYPE", "MAC", "IPAM_MAD", "AR_ID"] {
        keep(k, &mut attrs);
    }
    if ipv4 {
        keep("IP", &mut attrs);
    }
    if ipv6_static {
        keep("IP6", &mut attrs);
    }
    if reservation {
        keep("PARENT_NETWORK_AR_ID", &mut attrs);
    }
    fn given<'a>(attrs: &'a Pairs, k: &str) -> Option<&'a str> {
        template::vector_get(attrs, k).map(str::trim)
    }
    if ipv6_static {
        if given(&attrs, "PREFIX_LENGTH").is_none_or(|p| p.parse::<u64>().is_err()) {
            attrs.retain(|(k, _)| k != "PREFIX_LENGTH");
            keep("PREFIX_LENGTH", &mut attrs);
        }
    } else {
        attrs.retain(|(k, _)| k != "PREFIX_LENGTH");
    }
    if ipv6 {
        // What the update leaves out is written back empty.
        for k in ["GLOBAL_PREFIX", "ULA_PREFIX"] {
            if given(&attrs, k).is_none() {
                attrs.push((k.to_string(), String::new()));
            }
        }
    } else {
        attrs.retain(|(k, _)| k != "GLOBAL_PREFIX" && k != "ULA_PREFIX");
    }
    if given(&attrs, "SIZE").is_none_or(str::is_empty) {
        attrs.retain(|(k, _)| k != "SIZE");
        keep("SIZE", &mut attrs);
    }
    for k in ["PORT_START", "PORT_SIZE"] {
        if given(&attrs, k).is_some_and(|p| p.parse::<u64>().is_err()) {
            attrs.retain(|(n, _)| n != k);
        }
    }
    attrs
}

/// `one.vn.rm_ar(id, ar_id [, force])` (ADMIN) and `one.vn.free_ar(id, ar_id [, force])` (MANAGE): the
/// range goes, with its leases when forced; a reservation's addresses go back to its parent.
async fn remove_range(ctx: &Ctx, s: &Session, p: Params<'_>, right: u64) -> MethodResult {
    let id = p.int(0)? as i64;
    let arid = p.int(1)? as i64;
    // `free_ar` runs `rm_ar`'s code, so it reads the same optional `force`.
    let force = p.0.len() > 2 && p.opt_bool(2)?.unwrap_or(false);
    NETS.authorized(ctx, s, id, right).await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = NETS.authorized(ctx, s, id, right).await?;
        if v.state != super::vnet::READY && v.state != wire::VnetState::UpdateFailure.as_i64() {
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not remove Adress Range, Virtual Network is in wrong state: {}",
                    state_name(v.state)
                ),
            ));
        }
        let t = stored(&v)?;
        let mut ranges = ar::ranges(&t);
        let Some(at) = ranges.iter().position(|r| r.id == arid) else {
            return Err(fail(code::INTERNAL, "Address Range does not exist"));
        };
        if !force && !taken(&v, arid).is_empty() {
            return Err(fail(code::INTERNAL, "Address Range has leases in use"));
        }
        let gone = ranges.remove(at);
        let mut stmts = vec![write_ranges(&v, &t, &ranges)];
        if force {
            stmts.push(lease::free_range(id, arid));
        } else {
            stmts.push(lease::none_in_range(id, arid));
        }
        let parent_ar: Option<i64> = gone.get("PARENT_NETWORK_AR_ID").trim().parse().ok();
        if let (true, Some(parent_ar)) = (v.parent >= 0, parent_ar) {
            // `free_addr_by_range`: only this range's addresses, found from its first MAC.
            let parent = NETS.get(ctx, v.parent).await?;
            let first = ar::ranges(&stored(&parent)?)
                .into_iter()
                .find(|r| r.id == parent_ar)
                .and_then(|r| r.index_of_mac(gone.get("MAC")));
            if let Some(first) = first {
                stmts.push(lease::free_reserved(
                    v.parent,
                    parent_ar,
                    id,
                    first as i64,
                    gone.size as i64,
                ));
            }
        }
        Ok(stmts)
    })
    .await
}

pub async fn rm_ar(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    remove_range(ctx, s, p, ADMIN).await
}

pub async fn free_ar(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    remove_range(ctx, s, p, MANAGE).await
}

/// The one address a `LEASES` vector (or a NIC) names, as `hold_leases` reads it.
#[derive(Debug, Clone)]
pub enum Named {
    Ip(String),
    Ip6(String),
    Mac(String),
}

impl Named {
    /// Its index in range `r`, if it is one of its addresses.
    pub fn index_in(&self, r: &Range) -> Option<u64> {
        match self {
            Named::Ip(ip) => r.index_of_ip(ip),
            Named::Ip6(ip6) => r.index_of_ip6(ip6),
            Named::Mac(mac) => r.index_of_mac(mac),
        }
    }
}

/// The address a vector names: none, one, or an error when several are given.
pub fn named(pairs: &[(String, String)]) -> Result<Option<Named>, String> {
    let get = |k: &str| {
        template::vector_get(pairs, k)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let (ip, ip6, mac) = (get("IP"), get("IP6"), get("MAC"));
    let given = [&ip, &ip6, &mac].iter().filter(|v| !v.is_empty()).count();
    if given > 1 {
        return Err("Only one attribute MAC, IP or IP6 can be set.".into());
    }
    Ok(if !ip.is_empty() {
        Some(Named::Ip(ip))
    } else if !ip6.is_empty() {
        Some(Named::Ip6(ip6))
    } else if !mac.is_empty() {
        Some(Named::Mac(mac))
    } else {
        None
    })
}

/// Where a reservation starts: its IP, else its IP6, else its MAC (`VirtualNetworkReserve`
/// takes the first given and ignores the others).
fn reserved_at(tmpl: &Template) -> Option<Named> {
    let get = |k: &str| {
        tmpl.single(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    get("IP")
        .map(Named::Ip)
        .or_else(|| get("IP6").map(Named::Ip6))
        .or_else(|| get("MAC").map(Named::Mac))
}

/// The `LEASES` vector of a hold or release: its address and its AR_ID, if any.
fn lease_request(tmpl: &Template) -> Result<(Named, Option<i64>), String> {
    let Some(pairs) = tmpl.get_all("LEASES").find_map(|a| a.value.as_vector()) else {
        return Err("Empty lease description.".into());
    };
    let addr = named(pairs)?.ok_or_else(|| "Missing MAC, IP or IP6.".to_string())?;
    let arid = template::vector_get(pairs, "AR_ID").and_then(|a| a.trim().parse().ok());
    Ok((addr, arid))
}

/// `one.vn.hold(id, template)`: an address kept from use, held by VM -1.
pub async fn hold(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    leases_call(ctx, s, p, "one.vn.hold", MANAGE, |v, tmpl| {
        let (addr, arid) = lease_request(tmpl)?;
        let t = parsed(&v.template)?;
        // Without an AR_ID every range holding the address holds it (`hold_by_ip` and the
        // like loop over the whole pool).
        let held: Vec<SqlStmt> = ar::ranges(&t)
            .iter()
            .filter(|r| arid.is_none_or(|a| a == r.id))
            .filter_map(|r| {
                let idx = addr.index_in(r)? as i64;
                (!taken(v, r.id).contains(&idx)).then(|| {
                    lease::take(
                        v.head.owned.oid,
                        r.id,
                        idx,
                        Holder::Vm,
                        OwnerRef::Id(-1),
                        &v.template,
                    )
                })
            })
            .collect();
        if held.is_empty() {
            return Err("Address is not part of the address range or in use.".into());
        }
        Ok(held)
    })
    .await
}

/// `one.vn.release(id, template)`: an address on hold is free again; anything else is left
/// as it is, and the call still succeeds, as OpenNebula's.
pub async fn release(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    leases_call(ctx, s, p, "one.vn.release", MANAGE, |v, tmpl| {
        let (addr, arid) = lease_request(tmpl)?;
        let t = parsed(&v.template)?;
        let mut stmts = Vec::new();
        for r in ar::ranges(&t)
            .iter()
            .filter(|r| arid.is_none_or(|a| a == r.id))
        {
            if let Some(idx) = addr.index_in(r) {
                stmts.push(lease::release_held(v.head.owned.oid, r.id, idx as i64));
            }
        }
        // Nothing to free still writes (a no-op), so the answer waits for the log as others.
        stmts.push(sqlstore::objects::touch(vnet::TABLE, v.head.owned.oid));
        Ok(stmts)
    })
    .await
}

/// `one.vn.recover(id, operation)`: 0 failure, 1 success, 2 delete, 3 retry, from the states
/// OpenNebula allows.
pub async fn recover(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    use wire::VnetState as St;
    let id = p.int(0)? as i64;
    let op = p.int(1)?;
    let names = ["failure", "success", "delete", "retry"];
    let Some(name) = usize::try_from(op).ok().and_then(|o| names.get(o)) else {
        return Err(fail(code::ACTION, "Wrong recovery operation code"));
    };
    let v = NETS.authorized(ctx, s, id, MANAGE).await?;
    let st = St::from_i64(v.state);
    let to = match (op, st) {
        (0, Some(St::Init | St::LockCreate | St::LockDelete)) => Some(St::Error),
        (1, Some(St::Init | St::LockCreate | St::Error | St::UpdateFailure)) => Some(St::Ready),
        (1, Some(St::LockDelete))
        | (2, Some(St::Init | St::LockCreate | St::LockDelete | St::Error)) => None,
        _ => {
            return Err(fail(
                code::INTERNAL,
                format!(
                    "Could not perform 'recover {name}' on VN {id}, wrong state {}.",
                    state_name(v.state)
                ),
            ))
        }
    };
    let stmts = match to {
        Some(to) => {
            let mut stmts = vec![vnet::set_state(id, v.state, to.as_i64())];
            // `set_template_error_message` on a failure forced; cleared by a success.
            let mut t = parsed(&v.template).map_err(|e| fail(code::INTERNAL, e))?;
            let had = t.single("ERROR").is_some();
            if op == 0 {
                let now = super::vm::now();
                let why = crate::sched_runner::timed_message(now, "Failure forced by user");
                t.set("ERROR", template::Value::Single(why));
            } else {
                t.remove("ERROR");
            }
            if op == 0 || had {
                stmts.push(sqlstore::objects::replace_template(
                    vnet::TABLE,
                    "template",
                    id,
                    t.to_text(),
                    v.template.clone(),
                ));
            }
            stmts
        }
        None => {
            let mut stmts = vnet::delete_in_state(id, v.state);
            // A reservation's addresses go back to its parent, as `delete_success` frees them.
            stmts.push(lease::free_all_of(lease::Holder::Net, id));
            stmts.extend(sqlstore::objects::vdc::forget_resource(
                sqlstore::objects::vdc::Kind::Vnet,
                ctx.config.zone_id,
                id,
            ));
            stmts
        }
    };
    ctx.commit(sqlstore::SqlTxn { stmts }, |r| {
        r.missing(fail(
            code::INTERNAL,
            format!("Could not perform 'recover {name}' on VN {id}: its state changed meanwhile."),
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.vn.reserve(id, template)`: SIZE addresses of network `id` for the caller, in a new
/// network (NAME) or added to a reservation of it (NETWORK_ID), from one range (AR_ID, at an
/// IP/IP6/MAC when given) or the first with room.
pub async fn reserve(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::ACTION, e))?;
    let int = |k: &str| tmpl.single(k).and_then(|v| v.trim().parse::<i64>().ok());
    let size = int("SIZE")
        .filter(|s| *s > 0)
        .ok_or_else(|| fail(code::ACTION, "Reservation SIZE must be a greater than 0"))?;
    let most = ctx.config.limits.max_leases_per_call;
    if size as u64 > most {
        return Err(fail(
            code::ACTION,
            format!(
                "Reservation SIZE {size} is above the {most} addresses one call may take \
                 (MAX_LEASES_PER_CALL in oned.conf)"
            ),
        ));
    }
    let onto = int("NETWORK_ID");
    if let Some(rid) = onto {
        if rid < 0 {
            return Err(fail(
                code::ACTION,
                "NETWORK_ID must be equal or greater than 0",
            ));
        }
        if rid == id {
            return Err(fail(
                code::ACTION,
                "Cannot add a reservation from the same network",
            ));
        }
        let r = NETS.get(ctx, rid).await?;
        if r.parent == -1 {
            return Err(fail(
                code::ACTION,
                "Cannot add reservations to a non-reservation VNET",
            ));
        }
        if r.parent != id {
            return Err(fail(
                code::ACTION,
                format!(
                    "New reservations for virtual network {rid} have to be from network {}",
                    r.parent
                ),
            ));
        }
    }
    let name = tmpl.single("NAME").unwrap_or("").to_string();
    if name.is_empty() && onto.is_none() {
        return Err(fail(code::ACTION, "NAME for reservation has to be set"));
    }
    let arid = int("AR_ID");
    if arid.is_some_and(|a| a < 0) {
        return Err(fail(code::ACTION, "AR_ID must be equal or greater than 0"));
    }
    let at = reserved_at(&tmpl);
    if arid.is_none() && at.is_some() {
        return Err(fail(
            code::ACTION,
            "AR_ID must be specified for IP/MAC based reservations",
        ));
    }
    // `VirtualNetworkReserve` reads the parent without its id in the refusal.
    let parent = match NETS.get(ctx, id).await {
        Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => return Err(NETS.missing(-1)),
        other => other?,
    };
    if parent.parent != -1 {
        return Err(fail(
            code::ACTION,
            "Cannot reserve addresses from a reserved VNET",
        ));
    }
    // USE on the parent and MANAGE on the reservation in one request, every refusal named.
    let c = super::perms::caller(ctx, s).await?;
    let mut why: Vec<String> = NETS.refusal(&c, &parent, USE).into_iter().collect();
    if let Some(rid) = onto {
        let r = NETS.get(ctx, rid).await?;
        why.extend(NETS.refusal(&c, &r, MANAGE));
    }
    super::granted_unless(s, &why)?;
    if onto.is_none() {
        // The new network's name is checked as `VirtualNetworkPool::allocate` checks it,
        // before the quota and the addresses.
        super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
        super::vnet::name_free(ctx, s, &name).await?;
    }
    // The reservation owner's NETWORK quota is weighed before the addresses are looked for.
    let quota = super::quota::reservation_guard(ctx, s, onto, id, size).await?;
    // One attempt: a concurrent change of the parent (its template or the addresses picked)
    // refuses this write, and the caller may ask again.
    let v = parent;
    let t = stored(&v)?;
    let Some((range, first)) = pick_run(&v, &t, arid, at.as_ref(), size as u64) else {
        let msg = match arid {
            Some(a) => {
                format!("Not enough free addresses in address range {a}, or it does not exist")
            }
            None => "Not enough free addresses in an address range".into(),
        };
        return Err(fail(code::ACTION, msg));
    };
    let mut child = range.attrs.clone();
    let addr = range.address(first);
    let (external, internal) = addr.ports.clone().unzip();
    for (k, val) in [
        ("MAC", Some(addr.mac.clone())),
        ("IP", addr.ip.clone()),
        ("IP6", addr.ip6.clone()),
        ("EXTERNAL_PORT_RANGE", external),
        ("INTERNAL_PORT_RANGE", internal),
    ] {
        if let Some(val) = val {
            child.retain(|(n, _)| n != k);
            child.push((k.to_string(), val));
        }
    }
    child.retain(|(n, _)| !matches!(n.as_str(), "SIZE" | "IPAM_MAD" | "AR_ID"));
    child.push(("SIZE".into(), size.to_string()));
    let parent_ar = range.id;
    let owner = match onto {
        Some(rid) => OwnerRef::Id(rid),
        None => OwnerRef::NextOf(vnet::TABLE),
    };
    let mut takes = vec![lease::take_run(
        id,
        range.id,
        first as i64,
        size,
        Holder::Net,
        owner,
        &v.template,
    )];
    takes.extend(quota);
    match onto {
        Some(rid) => add_to_reservation(ctx, s, rid, child, parent_ar, takes).await,
        None => {
            let mut rt = t.clone();
            rt.remove("AR");
            // `VirtualNetwork::clone_template`: the parent's VLAN_ID and OUTER_VLAN_ID, chosen
            // or given.
            for (key, auto, automatic) in [
                ("VLAN_ID", v.vlan_auto, "AUTOMATIC_VLAN_ID"),
                (
                    "OUTER_VLAN_ID",
                    v.outer_vlan_auto,
                    "AUTOMATIC_OUTER_VLAN_ID",
                ),
            ] {
                match super::vnet_vlans::shown(auto, &t, key) {
                    Some(id) => rt.set(key, template::Value::Single(id)),
                    None => rt.set(automatic, template::Value::Single("NO".into())),
                }
            }
            let r = reservation_range(child, 0, parent_ar)?;
            let rt = ar::with_ranges(&rt, &[r]);
            let mut with = takes;
            for c in &v.clusters {
                with.push(sqlstore::objects::cluster::add_new(
                    sqlstore::objects::cluster::Member::Network,
                    *c,
                ));
            }
            super::vnet::create_child(ctx, s, rt, &name, with, id).await
        }
    }
}

/// The range and first index of `size` free addresses: in range `arid` (at `at` when given),
/// or the first range with room.
fn pick_run(
    v: &VnetRow,
    t: &Template,
    arid: Option<i64>,
    at: Option<&Named>,
    size: u64,
) -> Option<(Range, u64)> {
    ar::ranges(t)
        .into_iter()
        .filter(|r| arid.is_none_or(|a| a == r.id))
        .find_map(|r| {
            let taken = taken(v, r.id);
            let first = match at {
                Some(a) => {
                    let i = a.index_in(&r)?;
                    let free = (i..i + size).all(|j| j < r.size && !taken.contains(&(j as i64)));
                    free.then_some(i)?
                }
                None => r.first_free_run(&taken, size)?,
            };
            Some((r, first))
        })
}

/// The range of a reservation: `pairs` checked as a new range numbered `id`, then marked with
/// the range of its parent it was taken from (`PARENT_NETWORK_AR_ID`, after the check, which
/// clears it, as OpenNebula sets it).
fn reservation_range(
    pairs: Vec<(String, String)>,
    id: i64,
    parent_ar: i64,
) -> Result<Range, Failure> {
    let mut r = Range::create(pairs, id, 0).map_err(|e| fail(code::ACTION, e))?;
    r.attrs
        .push(("PARENT_NETWORK_AR_ID".into(), parent_ar.to_string()));
    Ok(r)
}

/// Adds range `child` to reservation `rid`, with the leases `takes` in its parent.
async fn add_to_reservation(
    ctx: &Ctx,
    s: &Session,
    rid: i64,
    child: Vec<(String, String)>,
    parent_ar: i64,
    takes: Vec<SqlStmt>,
) -> MethodResult {
    let r = NETS.authorized(ctx, s, rid, MANAGE).await?;
    let t = stored(&r)?;
    let mut ranges = ar::ranges(&t);
    let new = reservation_range(child, ar::next_id(&ranges), parent_ar)?;
    ranges.push(new);
    crate::limits::ranges(ranges.len()).map_err(|e| fail(code::ACTION, e))?;
    let mut stmts = takes;
    stmts.push(write_ranges(&r, &t, &ranges));
    ctx.commit(sqlstore::SqlTxn { stmts }, |r| {
        r.missing(fail(
            code::ACTION,
            "The networks changed while reserving, try again",
        ))
    })
    .await?;
    Ok(Value::Int(rid as i32))
}

/// What leasing a new VM's NICs makes: the statements that take the addresses (the VM being
/// the one its insert creates), and the addresses each network gives (for the NETWORK quota).
pub struct NicLeases {
    pub stmts: Vec<SqlStmt>,
    pub per_network: Vec<(i64, f64)>,
}

/// Gives each NIC of a new VM's template that names a network (NETWORK_ID, or NETWORK with
/// NETWORK_UNAME / NETWORK_UID, the caller's by default) an address from it, as
/// `VirtualNetwork::nic_attribute`: the one the NIC asks for (IP, IP6 or MAC), or the first
/// free one of its first range with room; the NIC gets the network's attributes. The caller
/// must USE each network. Refusals are worded as `VirtualMachine::insert`'s.
pub async fn lease_nics(ctx: &Ctx, s: &Session, t: &mut Template) -> Result<NicLeases, Failure> {
    let default = nic_default(t).map_err(|e| fail(code::INTERNAL, e))?;
    let mut nics: Vec<Vec<(String, String)>> = t
        .get_all("NIC")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    // `get_network_leases`: NIC_DEFAULT fills what each NIC (but those in auto mode, until
    // their network is chosen) does not say.
    for nic in nics.iter_mut().filter(|n| !super::vm_auto_nics::is_auto(n)) {
        merge_default(nic, &default);
    }
    let mut aliases: Vec<Vec<(String, String)>> = t
        .get_all("NIC_ALIAS")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    for nic in nics.iter_mut().chain(aliases.iter_mut()) {
        unclash_name(nic);
    }
    if aliases.iter().any(|a| super::vm_auto_nics::is_auto(a)) {
        return Err(fail(code::INTERNAL, "Alias is incompatible with auto mode"));
    }
    let parents = alias_parents(&nics, &mut aliases)?;
    // Leased in one list, aliases numbered after every NIC: no two take the same address.
    let count = nics.len();
    nics.append(&mut aliases);
    let out = lease_list(ctx, s, &mut nics, 0, OwnerRef::NextOf("vm_pool"), "").await?;
    let aliases = nics.split_off(count);
    if !aliases.is_empty() {
        for nic in nics.iter_mut() {
            let name = template::vector_get(nic, "NAME").unwrap_or("").to_string();
            if let Some((_, _, ids)) = parents.iter().find(|p| p.0 == name && !p.2.is_empty()) {
                template::vector_set(nic, "ALIAS_IDS", ids.join(","));
                nic.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        t.remove("NIC_ALIAS");
        for alias in aliases {
            t.push("NIC_ALIAS", template::Value::Vector(alias));
        }
    }
    if !nics.is_empty() {
        t.remove("NIC");
        for nic in nics {
            t.push("NIC", template::Value::Vector(nic));
        }
        // `get_network_leases` ends with the rules of the NICs' security groups.
        let groups = super::vm_sg_rules::groups_in(t);
        let rules = super::vm_sg_rules::of_groups(ctx, &groups).await?;
        super::vm_sg_rules::push(t, rules);
    }
    Ok(out)
}

/// `get_network_leases` for a new VM's NIC_ALIAS vectors, numbered after its NICs: each names
/// its parent NIC by NAME (`NIC named <p> not found for alias`) and gets PARENT_ID, ALIAS_ID
/// (its place among the parent's aliases) and a name `NIC<parent>_ALIAS<id>`. Answers each
/// parent's name, NIC_ID and the ids of its aliases, for its ALIAS_IDS.
fn alias_parents(
    nics: &[Vec<(String, String)>],
    aliases: &mut [Vec<(String, String)>],
) -> Result<Vec<(String, usize, Vec<String>)>, Failure> {
    // A NIC named nothing is `NIC<id>` once leased (`set_nic_name`); one in auto mode is no
    // parent.
    let mut parents: Vec<(String, usize, Vec<String>)> = nics
        .iter()
        .enumerate()
        .filter(|(_, n)| !super::vm_auto_nics::is_auto(n))
        .map(|(i, n)| {
            let name = template::vector_get(n, "NAME")
                .filter(|v| !v.is_empty())
                .map_or_else(|| format!("NIC{i}"), str::to_string);
            (name, i, Vec::new())
        })
        .collect();
    for (k, alias) in aliases.iter_mut().enumerate() {
        let nic_id = nics.len() + k;
        let parent = template::vector_get(alias, "PARENT")
            .unwrap_or("")
            .to_string();
        let Some(p) = parents.iter_mut().find(|p| p.0 == parent) else {
            return Err(fail(
                code::INTERNAL,
                format!("NIC named {parent} not found for alias"),
            ));
        };
        template::vector_set(alias, "PARENT_ID", p.1.to_string());
        template::vector_set(alias, "ALIAS_ID", p.2.len().to_string());
        p.2.push(nic_id.to_string());
        if template::vector_get(alias, "NAME").is_none_or(str::is_empty) {
            template::vector_set(alias, "NAME", format!("NIC{}_ALIAS{nic_id}", p.1));
        }
    }
    Ok(parents)
}

/// Counts `n` more addresses of network `vnet` in `per_network` (network, count).
pub fn count(per_network: &mut Vec<(i64, f64)>, vnet: i64, n: f64) {
    match per_network.iter_mut().find(|(v, _)| *v == vnet) {
        Some((_, count)) => *count += n,
        None => per_network.push((vnet, n)),
    }
}

/// `set_nic_name` / `set_nic_alias_name`: a NAME given that looks like oned's own
/// (`^NIC[0-9]+(_ALIAS[0-9]+)?$`) is prefixed with `_`, so it never collides with one oned gives.
pub fn unclash_name(nic: &mut Vec<(String, String)>) {
    let Some(name) = template::vector_get(nic, "NAME") else {
        return;
    };
    let digits = |s: &str| -> usize { s.bytes().take_while(u8::is_ascii_digit).count() };
    let own = name.strip_prefix("NIC").is_some_and(|rest| {
        let n = digits(rest);
        let tail = &rest[n..];
        n > 0
            && (tail.is_empty()
                || tail
                    .strip_prefix("_ALIAS")
                    .is_some_and(|t| !t.is_empty() && digits(t) == t.len()))
    });
    if own {
        let renamed = format!("_{name}");
        template::vector_set(nic, "NAME", renamed);
    }
}

/// The attributes NIC_DEFAULT may not hold (`VirtualMachine::NO_NIC_DEFAULTS`).
const NO_NIC_DEFAULTS: [&str; 4] = ["NETWORK_ID", "NETWORK", "NETWORK_UID", "NETWORK_UNAME"];

/// A VM template's NIC_DEFAULT, as `parse_defaults` takes it: a vector naming no network.
pub fn nic_default(t: &Template) -> Result<Vec<(String, String)>, String> {
    let Some(a) = t.get_all("NIC_DEFAULT").next() else {
        return Ok(Vec::new());
    };
    let Some(pairs) = a.value.as_vector() else {
        return Err("Wrong format for NIC_DEFAULT attribute.".into());
    };
    for k in NO_NIC_DEFAULTS {
        if template::vector_get(pairs, k).is_some_and(|v| !v.is_empty()) {
            return Err(format!("Attribute {k} is not allowed inside NIC_DEFAULT."));
        }
    }
    Ok(pairs.to_vec())
}

/// `VectorAttribute::merge(nic_default, false)`: the defaults the NIC does not set.
pub fn merge_default(nic: &mut Vec<(String, String)>, default: &[(String, String)]) {
    for (k, v) in default {
        if template::vector_get(nic, k).is_none() {
            nic.push((k.clone(), v.clone()));
        }
    }
}

/// Leases an address for each of `nics` (numbered from `first_id`) held by `owner`, as
/// [`lease_nics`] does; refusals start with `prefix`.
pub async fn lease_list(
    ctx: &Ctx,
    s: &Session,
    nics: &mut [Vec<(String, String)>],
    first_id: usize,
    owner: OwnerRef<'static>,
    prefix: &str,
) -> Result<NicLeases, Failure> {
    lease_list_held(ctx, s, nics, first_id, Holder::Vm, owner, prefix).await
}

/// [`lease_list`] for a holder of kind `holder`: only a VM joins its NICs' security groups.
pub async fn lease_list_held(
    ctx: &Ctx,
    s: &Session,
    nics: &mut [Vec<(String, String)>],
    first_id: usize,
    holder: Holder,
    owner: OwnerRef<'static>,
    prefix: &str,
) -> Result<NicLeases, Failure> {
    let mut picked = Vec::new();
    lease_list_picking(ctx, s, nics, first_id, holder, owner, prefix, &mut picked).await
}

/// Addresses already picked for the same owner's earlier NICs: (network, range, index).
pub type Picked = Vec<(i64, i64, i64)>;

/// [`lease_list_held`] for NICs leased a few at a time into one write (a router's floating
/// NICs among its others): `picked` carries the addresses taken by the earlier calls, so that
/// no two NICs of the write pick the same one.
#[allow(clippy::too_many_arguments)]
pub async fn lease_list_picking(
    ctx: &Ctx,
    s: &Session,
    nics: &mut [Vec<(String, String)>],
    first_id: usize,
    holder: Holder,
    owner: OwnerRef<'static>,
    prefix: &str,
    picked: &mut Picked,
) -> Result<NicLeases, Failure> {
    let mut out = NicLeases {
        stmts: Vec::new(),
        per_network: Vec::new(),
    };
    let alloc_err = |e: String| fail(code::INTERNAL, format!("{prefix}{e}"));
    for (n, nic) in nics.iter_mut().enumerate() {
        let nic_id = first_id + n;
        let get = |k: &str| {
            template::vector_get(nic, k)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        if super::vm_auto_nics::is_auto(nic) && holder == Holder::Vm && owner_is_new(owner) {
            // `get_network_leases`: a new VM's NIC in auto mode waits for the scheduler to
            // choose its network; it is only numbered and named.
            let unnamed = get("NAME").is_empty();
            template::vector_set(nic, "NIC_ID", nic_id.to_string());
            if unnamed {
                template::vector_set(nic, "NAME", format!("NIC{nic_id}"));
            }
            continue;
        }
        let vid = if !get("NETWORK_ID").is_empty() {
            let raw = get("NETWORK_ID");
            raw.parse::<i64>()
                .map_err(|_| alloc_err(format!("Virtual network with ID: {raw} does not exist")))?
        } else if !get("NETWORK").is_empty() {
            network_by_name(
                ctx,
                s,
                &get("NETWORK"),
                &get("NETWORK_UNAME"),
                &get("NETWORK_UID"),
            )
            .await
            .map_err(alloc_err)?
        } else {
            // No network (`nic_attribute` answers -2): numbered and named all the same
            // (`set_nic_name`).
            let unnamed = get("NAME").is_empty();
            template::vector_set(nic, "NIC_ID", nic_id.to_string());
            if unnamed {
                template::vector_set(nic, "NAME", format!("NIC{nic_id}"));
            }
            continue;
        };
        let v = match NETS.authorized(ctx, s, vid, USE).await {
            Ok(v) => v,
            Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => {
                return Err(alloc_err(format!(
                    "Virtual network with ID: {vid} does not exist"
                )))
            }
            Err(f) => return Err(f),
        };
        let vt = stored(&v)?;
        if holder == Holder::Vm {
            // `VirtualMachineNic::authorize`: USE on the NIC's and the network's groups too.
            let c = super::perms::caller(ctx, s).await?;
            let why = super::vm_auth::secgroup_refusals(ctx, &c, nic, Some(&vt), USE).await?;
            super::granted_unless(s, &why)?;
        }
        let want = named(nic).map_err(|_| {
            alloc_err(format!(
                "Cannot get IP/MAC lease from virtual network {vid}."
            ))
        })?;
        let mine: Vec<(i64, i64)> = picked
            .iter()
            .filter(|(n, _, _)| *n == vid)
            .map(|(_, a, i)| (*a, *i))
            .collect();
        let found = ar::ranges(&vt).into_iter().find_map(|r| {
            let mut used = taken(&v, r.id);
            used.extend(mine.iter().filter(|(a, _)| *a == r.id).map(|(_, i)| *i));
            used.sort_unstable();
            let idx = match &want {
                Some(w) => w.index_in(&r).filter(|i| !used.contains(&(*i as i64)))?,
                None => r.first_free(&used)?,
            };
            Some((r, idx))
        });
        let Some((range, idx)) = found else {
            return Err(alloc_err(format!(
                "Cannot get IP/MAC lease from virtual network {vid}."
            )));
        };
        picked.push((vid, range.id, idx as i64));
        fill_nic(
            nic,
            nic_id,
            &v,
            &vt,
            &range,
            idx,
            &super::inherit::vnet(ctx),
        );
        out.stmts.push(lease::take(
            vid,
            range.id,
            idx as i64,
            holder,
            owner,
            &v.template,
        ));
        count(&mut out.per_network, vid, 1.0);
    }
    if holder != Holder::Vm {
        return Ok(out);
    }
    // `SecurityGroupPool::get_security_group_rules`: the VM joins the groups of its NICs.
    let mut groups: Vec<i64> = nics
        .iter()
        .flat_map(|n| {
            template::vector_get(n, "SECURITY_GROUPS")
                .unwrap_or("")
                .split(',')
                .filter_map(|g| g.trim().parse::<i64>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    out.stmts.extend(groups.into_iter().map(|g| match owner {
        OwnerRef::Id(vid) => sqlstore::objects::secgroup::add_vm(g, vid),
        OwnerRef::NextOf(_) => sqlstore::objects::secgroup::add_new_vm(g),
    }));
    Ok(out)
}

/// Whether the holder is being created in the same write (a new VM, not one deployed).
fn owner_is_new(owner: OwnerRef<'static>) -> bool {
    matches!(owner, OwnerRef::NextOf(_))
}

/// The NIC attributes a lease gives (`VirtualNetwork::nic_attribute`, `set_vnet`).
fn fill_nic(
    nic: &mut Vec<(String, String)>,
    nic_id: usize,
    v: &VnetRow,
    vt: &Template,
    r: &Range,
    idx: u64,
    inherit: &[String],
) {
    let oid = v.head.owned.oid;
    for k in ["IP", "IP6", "MAC", "IP6_GLOBAL", "IP6_ULA", "IP6_LINK"] {
        nic.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
    }
    for (k, val) in r.address(idx).attrs() {
        template::vector_set(nic, k, val);
    }
    template::vector_set(nic, "AR_ID", r.id.to_string());
    template::vector_set(nic, "NIC_ID", nic_id.to_string());
    template::vector_set(nic, "NETWORK", v.head.name.clone());
    template::vector_set(nic, "NETWORK_ID", oid.to_string());
    template::vector_set(nic, "BRIDGE", v.bridge.clone());
    let bridge_type = vt.single("BRIDGE_TYPE").filter(|b| !b.is_empty());
    template::vector_set(nic, "BRIDGE_TYPE", bridge_type.unwrap_or("linux"));
    template::vector_set(nic, "VN_MAD", v.vn_mad.clone());
    let clusters: Vec<String> = v.clusters.iter().map(i64::to_string).collect();
    template::vector_set(nic, "CLUSTER_ID", clusters.join(","));
    if v.parent >= 0 {
        template::vector_set(nic, "PARENT_NETWORK_ID", v.parent.to_string());
    }
    if template::vector_get(nic, "NAME").is_none_or(str::is_empty) {
        template::vector_set(nic, "NAME", format!("NIC{nic_id}"));
    }
    let mut sgs: Vec<i64> = Vec::new();
    for list in [
        template::vector_get(nic, "SECURITY_GROUPS").unwrap_or(""),
        vt.single("SECURITY_GROUPS").unwrap_or(""),
        r.get("SECURITY_GROUPS"),
    ] {
        sgs.extend(list.split(',').filter_map(|x| x.trim().parse::<i64>().ok()));
    }
    sgs.sort_unstable();
    sgs.dedup();
    // `nic_attribute` writes the list even when it is empty.
    let list: Vec<String> = sgs.iter().map(i64::to_string).collect();
    template::vector_set(nic, "SECURITY_GROUPS", list.join(","));
    if let Some(val) = vt.single("PHYDEV").filter(|x| !x.is_empty()) {
        template::vector_set(nic, "PHYDEV", val.to_string());
    }
    for (k, auto) in [
        ("VLAN_ID", v.vlan_auto),
        ("OUTER_VLAN_ID", v.outer_vlan_auto),
    ] {
        if let Some(val) = super::vnet_vlans::shown(auto, vt, k) {
            template::vector_set(nic, k, val);
        }
    }
    // `AddressRange::set_vnet`: the range's own values win over the network's, and what it
    // holds of INHERIT_VNET_ATTR comes before the network's (`nic_attribute`).
    for k in ["VN_MAD", "BRIDGE", "PHYDEV", "VLAN_ID"] {
        let val = r.get(k).trim();
        if !val.is_empty() {
            template::vector_set(nic, k, val.to_string());
        }
    }
    super::inherit::from_lookup(nic, inherit, |k| r.get(k).to_string());
    super::inherit::from_template(nic, vt, inherit);
    nic.sort_by(|a, b| a.0.cmp(&b.0));
}

/// The network a NIC template names, by NETWORK_ID or by NETWORK (and its owner), if it
/// exists: what `authorize_nic` writes in NETWORK_ID before the quotas are weighed.
pub async fn named_network(ctx: &Ctx, s: &Session, nic: &[(String, String)]) -> Option<i64> {
    let get = |k: &str| {
        template::vector_get(nic, k)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    if !get("NETWORK_ID").is_empty() {
        return get("NETWORK_ID").parse().ok();
    }
    if get("NETWORK").is_empty() {
        return None;
    }
    let (name, uname, uid) = (get("NETWORK"), get("NETWORK_UNAME"), get("NETWORK_UID"));
    network_by_name(ctx, s, &name, &uname, &uid).await.ok()
}

/// The network a NIC names (`get_nic_by_name`): owned by NETWORK_UID, or the user called
/// NETWORK_UNAME, or the caller.
async fn network_by_name(
    ctx: &Ctx,
    s: &Session,
    name: &str,
    uname: &str,
    uid: &str,
) -> Result<i64, String> {
    let owner = super::writes::named_owner(ctx, s, uname, uid).await?;
    let found = super::writes::oid_by_name(ctx, vnet::TABLE, name, owner).await?;
    found.ok_or_else(|| {
        format!(
            "User {owner} does not own a network with name: {name} . Set NETWORK_UNAME or NETWORK_UID of owner in NIC."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_oneds_own_are_prefixed() {
        for (given, kept) in [
            ("NIC0", "_NIC0"),
            ("NIC12_ALIAS3", "_NIC12_ALIAS3"),
            ("NIC", "NIC"),
            ("NIC1_ALIAS", "NIC1_ALIAS"),
            ("NIC1x", "NIC1x"),
            ("eth0", "eth0"),
            ("_NIC0", "_NIC0"),
        ] {
            let mut nic = vec![("NAME".to_string(), given.to_string())];
            unclash_name(&mut nic);
            assert_eq!(template::vector_get(&nic, "NAME"), Some(kept), "{given}");
        }
        let mut unnamed = vec![("NETWORK_ID".to_string(), "0".to_string())];
        unclash_name(&mut unnamed);
        assert_eq!(template::vector_get(&unnamed, "NAME"), None);
    }
}
