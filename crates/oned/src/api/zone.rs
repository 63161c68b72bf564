//! `one.zone.*`: the zone, its servers, and this server's Raft status.

use sqlstore::{SqlTxn, TxnErrorKind, ZoneRow};
use xmlrpc::{Params, Value};

use super::method::{self as table, Auth, Method};
use super::xml::{self, cdata, Xml};
use super::{code, fail, zone_master, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::acl::{ADMIN, MANAGE, USE, ZONE};

/// Zone status stays local to every server, even without a quorum, so an operator can see a
/// broken zone. OpenNebula's rights: `ZoneInfo` USE, `RequestManagerZone` (server changes,
/// raftstatus, enable) ADMIN, checked after the zone a change names is this one;
/// `ZoneRename` and `ZoneUpdateTemplate` MANAGE, `ZoneDelete` ADMIN.
pub const METHODS: &[Method] = &[
    method!(wire::method::ZONE_INFO, Status, Auth::On(ZONE, USE), info),
    // The zones the caller may USE.
    method!(wire::method::ZONEPOOL_INFO, Status, Auth::Object, pool_info),
    method!(
        wire::method::ZONE_RAFTSTATUS,
        Status,
        Auth::Deferred(ZONE, ADMIN),
        raftstatus
    ),
    method!(
        wire::method::ZONE_ADDSERVER,
        Write,
        Auth::Deferred(ZONE, ADMIN),
        addserver
    ),
    method!(
        wire::method::ZONE_DELSERVER,
        Write,
        Auth::Deferred(ZONE, ADMIN),
        delserver
    ),
    method!(
        wire::method::ZONE_RESETSERVER,
        Write,
        Auth::Deferred(ZONE, ADMIN),
        resetserver
    ),
    // Zones are created on a federation's master only: `ZoneAllocate` refuses anywhere else
    // before it authorizes, so the handler authorizes.
    method!(wire::method::ZONE_ALLOCATE, Write, Auth::Object, allocate),
    method!(
        wire::method::ZONE_ENABLE,
        Write,
        Auth::Deferred(ZONE, ADMIN),
        enable
    ),
    method!(
        wire::method::ZONE_RENAME,
        Write,
        Auth::Deferred(ZONE, MANAGE),
        rename
    ),
    method!("one.zone.update", Write, Auth::On(ZONE, MANAGE), update),
    method!("one.zone.delete", Write, Auth::On(ZONE, ADMIN), delete),
    // The master zone's records for a slave zone: oneadmin only, checked by the handler,
    // which answers OpenNebula's replication index with each refusal.
    method!(
        wire::method::ZONE_FEDREPLICATE,
        Write,
        Auth::Object,
        fedreplicate
    ),
    // The master's federated tables whole, for a slave zone records cannot bring up to date:
    // oneadmin only, checked by the handler.
    method!(
        wire::method::ONEHA_ZONE_FEDSNAPSHOT,
        Write,
        Auth::Object,
        fedsnapshot
    ),
    // A slave zone's change of its own zone (servers, state), made at the master: oneadmin
    // only, checked by the handler.
    method!(
        "one.zone.updatedb",
        Write,
        Auth::Object,
        zone_master::updatedb
    ),
];

pub fn zone_xml(z: &ZoneRow, out: &mut String) {
    Xml::new(out).elem("ZONE", |x| {
        x.num("ID", z.oid)
            .text("NAME", &z.name)
            .num("STATE", z.state)
            .raw(&xml::template(&template_text(z), "TEMPLATE"));
        if z.servers.is_empty() {
            // As the shared API notes print an empty server pool (`opennebula-api.md`,
            // ZONE); XML readers see the same as 7.0.2's `<SERVER_POOL></SERVER_POOL>`.
            x.raw("<SERVER_POOL/>");
            return;
        }
        x.elem("SERVER_POOL", |x| {
            for s in &z.servers {
                x.elem("SERVER", |x| {
                    x.open("ENDPOINT")
                        .raw(&cdata(&s.endpoint))
                        .close("ENDPOINT")
                        .open("ID")
                        .raw(&cdata(&s.id.to_string()))
                        .close("ID")
                        .open("NAME")
                        .raw(&cdata(&s.name))
                        .close("NAME");
                });
            }
        });
    });
}

/// The zone's template: the one `one.zone.update` stored, or its ENDPOINT alone.
fn template_text(z: &ZoneRow) -> String {
    if !z.template.is_empty() {
        return z.template.clone();
    }
    let mut t = template::Template::default();
    t.set("ENDPOINT", template::Value::Single(z.endpoint.clone()));
    t.to_text()
}

async fn load(ctx: &Ctx, id: i64) -> Result<ZoneRow, Failure> {
    ctx.read(move |c| sqlstore::load_zone(c, id))
        .await?
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting zone [{id}].")))
}

pub async fn info(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let z = load(ctx, id).await?;
    Ok(Value::String(xml::build_with(|out| zone_xml(&z, out))))
}

/// `one.zonepool.info()`: the zones the caller may USE (everyone may, by the default rule
/// `* ZONE/* USE *`).
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let zones = table::read_visible(ctx, s, ZONE, move |c, may_use| {
        let mut zones = sqlstore::load_zones(c)?;
        zones.retain(|z| may_use(z.oid));
        order.arrange(&mut zones);
        Ok(zones)
    })
    .await?;
    let body = xml::build_with(|out| {
        for z in &zones {
            zone_xml(z, out);
        }
    });
    Ok(Value::String(format!("<ZONE_POOL>{body}</ZONE_POOL>")))
}

/// `one.zone.raftstatus()`: ADMIN on this server's zone.
pub async fn raftstatus(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    table::require_on(ctx, s, ZONE, ctx.config.zone_id, ADMIN).await?;
    let mut status = ctx.cluster.status(ctx.config.server_id).await;
    if ctx.config.federation != crate::config::FederationMode::Standalone {
        // OpenNebula prints its "no record" (UINT64_MAX) there; OneHA prints -1. A database
        // that cannot be read leaves -1 too: raftstatus still answers, and DB_ERROR says why.
        if let Ok(Some(index)) = ctx.read(sqlstore::last_federated).await {
            status.fedlog_index = index;
        }
    }
    let mut xml = status.to_xml();
    // OneHA's own, after OpenNebula's fields and only while there is a problem.
    if let Some(problem) = ctx.cluster.db_problem() {
        let at = xml.len() - "</RAFT>".len();
        xml.insert_str(at, &format!("<DB_ERROR>{}</DB_ERROR>", xml::esc(&problem)));
    }
    Ok(Value::String(xml))
}

fn check_zone(ctx: &Ctx, zone_id: i64, verb: &str) -> Result<(), Failure> {
    if zone_id != ctx.config.zone_id {
        return Err(fail(
            code::ACTION,
            format!("Servers have to be {verb} through the target zone endpoints"),
        ));
    }
    Ok(())
}

fn valid_endpoint(e: &str) -> bool {
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"));
    match rest {
        Some(r) => {
            let host = r.split('/').next().unwrap_or("");
            !host.is_empty() && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub async fn addserver(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let zone_id = p.int(0)? as i64;
    let text = p.string(1)?;
    check_zone(ctx, zone_id, "added")?;
    table::require_on(ctx, s, ZONE, zone_id, ADMIN).await?;
    let t = super::validate::template(text)
        .map_err(|e| fail(code::ACTION, format!("Error parsing server template: {e}")))?;
    let server = t
        .vector("SERVER")
        // `Zone::add_server` fails without a word when there is no SERVER vector.
        .ok_or_else(|| fail(code::ACTION, ""))?;
    let name = template::vector_get(server, "NAME")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::ACTION, "Missing NAME in SERVER"))?;
    let endpoint = template::vector_get(server, "ENDPOINT")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::ACTION, "Missing ENDPOINT in SERVER"))?;
    if !valid_endpoint(endpoint) {
        return Err(fail(
            code::ACTION,
            format!("ENDPOINT \"{endpoint}\" is not an http:// or https:// URL"),
        ));
    }
    if zone_master::is_slave(ctx) {
        let (name, endpoint) = (name.to_string(), endpoint.to_string());
        let sent = zone_master::change(ctx, zone_id, move |c, zone| {
            zone_master::add_server(c, zone, &name, &endpoint).map(|_| ())
        })
        .await?;
        let added = sent.servers.last().map(|s| s.id);
        tracing::info!(zone = zone_id, server = ?added, "server added to the zone at the federation master");
        return Ok(Value::Int(zone_id as i32));
    }
    let txn = SqlTxn {
        stmts: sqlstore::objects::zone::add_server(zone_id, name, endpoint),
    };
    let values = ctx
        .commit(txn, |r| match r.kind {
            TxnErrorKind::NotFound => {
                fail(code::NO_EXISTS, format!("Error getting zone [{zone_id}]."))
            }
            _ => fail(code::INTERNAL, format!("Cannot add server: {}", r.message)),
        })
        .await?;
    let sid = super::new_id(&values, "zone server")?;
    tracing::info!(
        zone = zone_id,
        server = ?sid,
        name,
        endpoint,
        "server added to the zone"
    );
    Ok(Value::Int(zone_id as i32))
}

pub async fn delserver(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let zone_id = p.int(0)? as i64;
    let sid = p.int(1)? as i64;
    check_zone(ctx, zone_id, "deleted")?;
    table::require_on(ctx, s, ZONE, zone_id, ADMIN).await?;
    load(ctx, zone_id).await?;
    if zone_master::is_slave(ctx) {
        zone_master::change(ctx, zone_id, move |_, zone| {
            let before = zone.servers.len();
            zone.servers.retain(|s| s.id != sid);
            if zone.servers.len() == before {
                return Err(fail(code::ACTION, "SERVER not found in zone"));
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            zone = zone_id,
            server = sid,
            "server deleted from the zone at the federation master"
        );
        return Ok(Value::Int(zone_id as i32));
    }
    let txn = SqlTxn {
        stmts: vec![sqlstore::objects::zone::del_server(zone_id, sid)],
    };
    ctx.commit(txn, |r| match r.kind {
        TxnErrorKind::NotFound => fail(code::ACTION, "SERVER not found in zone"),
        _ => fail(
            code::INTERNAL,
            format!("Cannot delete server: {}", r.message),
        ),
    })
    .await?;
    tracing::info!(zone = zone_id, server = sid, "server deleted from the zone");
    Ok(Value::Int(zone_id as i32))
}

pub async fn resetserver(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let zone_id = p.int(0)? as i64;
    let sid = p.int(1)? as i64;
    check_zone(ctx, zone_id, "deleted")?;
    table::require_on(ctx, s, ZONE, zone_id, ADMIN).await?;
    // `RaftManager::reset_index` does nothing for a server it does not follow (one not in the
    // zone, itself, any on a follower): the call succeeds all the same.
    load(ctx, zone_id).await?;
    // openraft re-walks a follower's log (or sends it a snapshot) by itself; a heartbeat now
    // makes the leader notice a reset follower at once.
    if let Some(raft) = ctx.cluster.raft() {
        if let Err(e) = raft.trigger().heartbeat().await {
            tracing::warn!(error = %e, "could not trigger a heartbeat after a server reset");
        }
    }
    tracing::info!(zone = zone_id, server = sid, "server reset requested");
    Ok(Value::Int(zone_id as i32))
}

/// `one.zone.allocate(template)`: only a federation's master creates zones (`ZoneAllocate`
/// refuses anywhere else before it authorizes). The new zone needs a valid NAME and an
/// ENDPOINT; SERVER entries are dropped, as `Zone::insert` drops them (servers are added with
/// `one.zone.addserver`). Zone ids start at 100: the ids below are the system's.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    if ctx.config.federation != crate::config::FederationMode::Master {
        return Err(fail(
            code::ALLOCATE,
            "Error allocating a new zone. New zones can only be created at federation master",
        ));
    }
    // `RequestManagerAllocate` parses the template before it authorizes.
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    if !s.is_admin() {
        super::method::require(
            ctx,
            s,
            &[super::method::Need::kind(ZONE, wire::acl::CREATE)],
        )
        .await?;
    }
    let name = t.single("NAME").unwrap_or_default().to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let taken = |other: i64| {
        fail(
            code::INTERNAL,
            format!("NAME is already taken by Zone {other}."),
        )
    };
    let named = name.clone();
    if let Some(other) = ctx
        .read(move |c| sqlstore::objects::oid_named(c, "zone_pool", &named))
        .await?
    {
        return Err(taken(other));
    }
    t.remove("NAME");
    t.remove("SERVER");
    let endpoint = match t.single("ENDPOINT") {
        Some(e) if !e.is_empty() => e.to_string(),
        _ => return Err(fail(code::INTERNAL, "ENDPOINT not present in template.")),
    };
    let values = ctx
        .commit(
            SqlTxn {
                stmts: vec![
                    sqlstore::objects::zone::insert(&name, &endpoint, &t.to_text()),
                    sqlstore::objects::next_oid("zone_pool"),
                ],
            },
            |r| match r.kind {
                sqlstore::TxnErrorKind::Constraint => taken(-1),
                _ => fail(
                    code::INTERNAL,
                    format!("Error allocating a new zone. {}", r.message),
                ),
            },
        )
        .await?;
    super::new_id(&values, "zone")
}

/// `one.zone.fedreplicate(index, prev, record)` on a slave zone: the master zone's federated
/// record `index`, which follows `prev`, the slave's newest (0: none yet; OpenNebula's "none"
/// is -1). The record is the JSON list of the statements the master applied to its federated
/// tables (`sqlstore::apply_batch`); every one must write a federated table. It is proposed
/// to this zone's log as one transaction with its `fed_log` row, whose insert is guarded by
/// `prev`: a record applies once, in order, on every server of the slave zone. A record out
/// of order is answered with the slave's newest index, which the master resumes from.
pub async fn fedreplicate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let index = p.i8(0)?;
    let prev = p.i8(1)?.max(0);
    let body = p.string(2)?.to_string();
    let refused = |code: i32, message: String, index: i64| Failure::Replication {
        code,
        message,
        index,
    };
    if s.is_oneadmin() && body.is_empty() {
        return Err(refused(
            code::REPLICATION,
            format!("Received an empty SQL command at index{index}"),
            -1,
        ));
    }
    master_sends_here(ctx, s)?;
    let error = |why: String| {
        refused(
            code::REPLICATION,
            format!("Error replicating log entry {index} in zone: {why}"),
            index,
        )
    };
    let stmts: Vec<sqlstore::SqlStmt> =
        serde_json::from_str(&body).map_err(|e| error(format!("not a federated record: {e}")))?;
    if let Some(bad) = stmts.iter().find(|st| !sqlstore::is_federated_write(st)) {
        return Err(error(format!(
            "a statement that writes no federated table: {}",
            bad.sql
        )));
    }
    let mut all = vec![sqlstore::objects::zone::fed_log_follows(index, prev, &body)];
    all.extend(stmts);
    let mut outdated = false;
    let committed = ctx
        .commit(SqlTxn { stmts: all }, |r| {
            outdated = r.stmt == 0;
            error(r.message)
        })
        .await;
    match committed {
        Ok(_) => Ok(Value::I8(index)),
        Err(_) if outdated => {
            let last = ctx.read(sqlstore::last_federated).await?.unwrap_or(0);
            Err(refused(
                code::REPLICATION,
                format!("{}{last}", crate::fed_push::OUTDATED),
                last,
            ))
        }
        Err(e) => Err(e),
    }
}

/// `oneha.zone.fedsnapshot(index, snapshot)`: the master's federated tables whole, for a slave
/// zone its records cannot bring up to date (behind the records the master keeps, or refusing
/// one). OneHA's own method: OpenNebula leaves such a zone to a manual backup and restore.
/// Applied as one transaction through this zone's log, on every server alike; the federated
/// log then stands at `index`.
pub async fn fedsnapshot(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let index = p.i8(0)?;
    let body = p.string(1)?;
    // A snapshot too large for one request comes in parts, staged through this zone's log.
    let (part, parts) = if p.len() > 2 {
        (i64::from(p.int(2)?), i64::from(p.int(3)?))
    } else {
        (0, 1)
    };
    master_sends_here(ctx, s)?;
    let bad = |why: String| Failure::Replication {
        code: code::REPLICATION,
        message: format!("Error applying the federated snapshot at {index} in zone: {why}"),
        index: -1,
    };
    let snapshot: sqlstore::FedSnapshot =
        serde_json::from_str(body).map_err(|e| bad(format!("not a federated snapshot: {e}")))?;
    if snapshot.index != index {
        return Err(bad(format!("it holds the tables at {}", snapshot.index)));
    }
    let stmts = if parts == 1 {
        snapshot.statements()
    } else {
        snapshot.part_statements(part, parts)
    }
    .map_err(bad)?;
    let rows = stmts.len();
    ctx.commit(SqlTxn { stmts }, |r| match r.kind {
        // The staged parts are of another snapshot, or this part is not the next one: the
        // master starts again from part 0.
        TxnErrorKind::NotFound if r.stmt == 0 && part > 0 => {
            bad(format!("part {part} of {parts} is not the next one staged"))
        }
        _ => bad(r.message),
    })
    .await?;
    if part + 1 == parts {
        tracing::info!(
            index,
            parts,
            "federated tables replaced by the master's snapshot"
        );
    } else {
        tracing::debug!(index, part, parts, rows, "federated snapshot part staged");
    }
    Ok(Value::I8(index))
}

/// What a master's records and snapshots need (`ZoneReplicateFedLog`): oneadmin himself,
/// and a slave zone to take them.
fn master_sends_here(ctx: &Ctx, s: &Session) -> Result<(), Failure> {
    let refused = |code: i32, message: String| Failure::Replication {
        code,
        message,
        index: -1,
    };
    if !s.is_oneadmin() {
        return Err(refused(
            code::AUTHORIZATION,
            format!("User [{}] not authorized to perform action on zone.", s.uid),
        ));
    }
    if !zone_master::is_slave(ctx) {
        return Err(refused(
            code::REPLICATION,
            "Cannot replicate federate log records on federation master".into(),
        ));
    }
    Ok(())
}

/// The answer to records of a master whose federated tables are of another version: nothing
/// applied, and no index to resume from.
pub fn version_refusal() -> Failure {
    Failure::Replication {
        code: code::REPLICATION,
        message: format!(
            "Cannot replicate federated log records: the federation master writes federated \
             tables of another version than this zone's {}; upgrade the zones to the same \
             OneHA version",
            sqlstore::versions::SHARED_DB_VERSION
        ),
        index: -1,
    }
}

/// `one.zone.enable(id, enable)`: a disabled zone refuses every call but reads, status and
/// this one (dispatch checks, as OpenNebula's `Request::execute`). Only the zone a server
/// belongs to can be switched through it, with ADMIN on it.
pub async fn enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let on = p.bool(1)?;
    if id != ctx.config.zone_id {
        return Err(fail(
            code::ACTION,
            "Enable/disable mode have to be set through the target zone endpoints",
        ));
    }
    table::require_on(ctx, s, ZONE, id, ADMIN).await?;
    let state = if on {
        wire::ZoneState::Enabled
    } else {
        wire::ZoneState::Disabled
    };
    if zone_master::is_slave(ctx) {
        zone_master::change(ctx, id, move |_, zone| {
            zone.state = state.as_i64();
            Ok(())
        })
        .await?;
        return Ok(Value::Int(id as i32));
    }
    let txn = SqlTxn {
        stmts: vec![sqlstore::objects::zone::set_state(id, state.as_i64())],
    };
    ctx.commit(txn, |r| {
        r.missing(fail(code::NO_EXISTS, format!("Error getting zone [{id}].")))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.zone.rename(id, name)`.
pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let missing = |id| fail(code::NO_EXISTS, format!("Error getting zone [{id}]."));
    let right = (wire::acl::ZONE, wire::acl::MANAGE);
    super::writes::rename_unique(ctx, s, &p, "zone_pool", "zone", missing, right).await
}

/// `one.zone.update(id, template, type)`, as `Zone::post_update_template`: an empty ENDPOINT
/// becomes `-`, SERVER attributes are dropped (servers change through `addserver`).
pub async fn update(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let text = p.string(1)?.to_string();
    let merge = super::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let zone = load(ctx, id).await?;
        let merged = super::merged(&template_text(&zone), text, merge)?;
        let mut t = template::Template::parse(&merged)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        t.remove("SERVER");
        let endpoint = match t.single("ENDPOINT") {
            Some(e) if !e.is_empty() => e.to_string(),
            _ => {
                t.set("ENDPOINT", template::Value::Single("-".into()));
                "-".to_string()
            }
        };
        Ok(vec![sqlstore::objects::zone::set_template(
            id,
            t.to_text(),
            &endpoint,
            zone.template,
        )])
    })
    .await
}

/// `one.zone.delete(id)`: the zones a server can have (below 100) are never deleted, as
/// `ZonePool::drop` refuses.
pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    load(ctx, id).await?;
    if id < 100 {
        return Err(fail(
            code::ACTION,
            "Cannot delete zone. System Zones (ID < 100) cannot be deleted.",
        ));
    }
    // `ZoneDelete::drop`: the rules on the zone and those granting in it go too.
    let txn = SqlTxn {
        stmts: vec![
            sqlstore::objects::delete("zone_pool", id),
            sqlstore::objects::acl::drop_rules_on(ZONE, id),
            sqlstore::objects::acl::drop_rules_in_zone(id),
        ],
    };
    ctx.commit(txn, |r| {
        r.missing(fail(code::NO_EXISTS, format!("Error getting zone [{id}].")))
    })
    .await?;
    Ok(Value::Int(id as i32))
}
