//! Changes of a federation slave's own zone (its servers, its state) are made at the master,
//! which holds the zones' table for every zone: the slave sends the whole changed zone with
//! `one.zone.updatedb(id, xml)`, as OpenNebula's `master_update_zone` does, and the change
//! comes back through the federated log. Only then does this zone act on it (the membership
//! task adds or removes the Raft server), so the slave never holds a server row the master
//! lacks.

use sqlstore::{SqlTxn, TxnErrorKind, ZoneRow, ZoneServerRow};
use wire::xml::Element;
use xmlrpc::{Params, Value};

use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// Largest zone document `one.zone.updatedb` takes: a zone has a handful of servers.
const MAX_ZONE_XML: usize = 64 * 1024;

/// One change of this zone at a time on this server: each sends the whole server list, so two
/// at once would undo each other at the master.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether this zone's own zone row belongs to a master elsewhere.
pub fn is_slave(ctx: &Ctx) -> bool {
    ctx.config.is_federation_slave()
}

/// Applies `change` to this zone at the master, then waits until the federated log has
/// brought the zone's new servers and state back here. Returns the zone as sent.
pub async fn change(
    ctx: &Ctx,
    zone_id: i64,
    change: impl FnOnce(&sqlstore::Conn, &mut ZoneRow) -> Result<(), Failure> + Send + 'static,
) -> Result<ZoneRow, Failure> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let zone = ctx
        .read(move |c| {
            let Some(mut zone) = sqlstore::load_zone(c, zone_id)? else {
                return Ok(Err(fail(
                    code::NO_EXISTS,
                    format!("Error getting zone [{zone_id}]."),
                )));
            };
            Ok(change(c, &mut zone).map(|()| zone))
        })
        .await??;
    update_at_master(ctx, &zone).await?;
    let sent = zone.clone();
    super::master_client::until_here(ctx, &format!("zone {zone_id}"), move |c| {
        let now = sqlstore::load_zone(c, zone_id)?;
        Ok(now.is_some_and(|now| now.servers == sent.servers && now.state == sent.state))
    })
    .await?;
    Ok(zone)
}

/// The next server of `zone` (its id never used before), for `one.zone.addserver`.
pub fn add_server(
    c: &sqlstore::Conn,
    zone: &mut ZoneRow,
    name: &str,
    endpoint: &str,
) -> Result<i64, Failure> {
    let id = sqlstore::objects::zone::next_server_id(c, zone.oid)
        .map_err(|e| fail(code::INTERNAL, format!("database error: {e}")))?;
    zone.servers.push(ZoneServerRow {
        id,
        name: name.to_string(),
        endpoint: endpoint.to_string(),
    });
    Ok(id)
}

async fn update_at_master(ctx: &Ctx, zone: &ZoneRow) -> Result<(), Failure> {
    let mut xml = String::new();
    super::zone::zone_xml(zone, &mut xml);
    super::master_client::MasterClient::of(ctx)
        .call(
            "one.zone.updatedb",
            vec![Value::Int(zone.oid as i32), Value::String(xml)],
        )
        .await
        .map(drop)
        .map_err(|why| {
            fail(
                code::ACTION,
                format!("Cannot update zone at federation master: {why}"),
            )
        })
}

/// `one.zone.updatedb(id, xml)`: zone `id` becomes the document a slave zone sent, as
/// `ZoneUpdateDB` (oneadmin only; a slave has no such method, its zones are the master's).
pub async fn updatedb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let xml = p.string(1)?;
    if !s.is_oneadmin() {
        return Err(fail(
            code::AUTHORIZATION,
            format!("User [{}] not authorized to perform action on zone.", s.uid),
        ));
    }
    if is_slave(ctx) {
        return Err(fail(
            code::ACTION,
            "Zones are changed at the federation master: this zone is a slave",
        ));
    }
    if xml.len() > MAX_ZONE_XML {
        return Err(fail(code::INTERNAL, "Cannot update object from XML"));
    }
    let zone = read_zone(xml).map_err(|why| {
        tracing::warn!(zone = id, error = %why, "one.zone.updatedb: a zone document was refused");
        fail(code::INTERNAL, "Cannot update object from XML")
    })?;
    if zone.oid != id {
        return Err(fail(code::INTERNAL, "Consistency check failed"));
    }
    let txn = SqlTxn {
        stmts: sqlstore::objects::zone::replace(&zone),
    };
    ctx.commit(txn, |r| match r.kind {
        TxnErrorKind::NotFound => fail(code::NO_EXISTS, format!("Error getting zone [{id}].")),
        TxnErrorKind::Constraint => fail(code::INTERNAL, "Cannot update object from XML"),
        _ => r.internal(),
    })
    .await?;
    tracing::info!(
        zone = id,
        servers = zone.servers.len(),
        "zone updated by its slave zone"
    );
    Ok(Value::Int(id as i32))
}

/// A zone as `one.zone.info` prints it (`ZONE` with ID, NAME, STATE, TEMPLATE, SERVER_POOL).
fn read_zone(xml: &str) -> Result<ZoneRow, String> {
    let bad = |e: wire::xml::XmlError| e.to_string();
    let root = Element::parse(xml).map_err(bad)?;
    if root.name != "ZONE" {
        return Err(format!("the document is a {}, not a ZONE", root.name));
    }
    let name = root.text_of("NAME").map_err(bad)?.trim().to_string();
    super::validate::object_name(&name)?;
    let template = super::xml::read_template(root.child("TEMPLATE"))?;
    let endpoint = template
        .single("ENDPOINT")
        .filter(|e| !e.is_empty())
        .unwrap_or("-")
        .to_string();
    let mut servers = Vec::new();
    for s in root
        .child("SERVER_POOL")
        .map(|p| p.children.as_slice())
        .unwrap_or_default()
    {
        if s.name != "SERVER" {
            return Err(format!("{} in SERVER_POOL", s.name));
        }
        servers.push(ZoneServerRow {
            id: s.int_of("ID").map_err(bad)?,
            name: s.text_of("NAME").map_err(bad)?.trim().to_string(),
            endpoint: s.text_of("ENDPOINT").map_err(bad)?.trim().to_string(),
        });
    }
    Ok(ZoneRow {
        oid: root.int_of("ID").map_err(bad)?,
        name,
        state: root.int_of("STATE").map_err(bad)?,
        endpoint,
        template: template.to_text(),
        servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_reads_back_from_its_own_document() {
        let zone = ZoneRow {
            oid: 100,
            name: "east".into(),
            state: 0,
            endpoint: "http://10.0.0.9:2633/RPC2".into(),
            template: "ENDPOINT=\"http://10.0.0.9:2633/RPC2\"\nLABEL=\"a & <b>\"\n".into(),
            servers: vec![
                ZoneServerRow {
                    id: 0,
                    name: "east-0".into(),
                    endpoint: "http://127.0.0.1:2633/RPC2".into(),
                },
                ZoneServerRow {
                    id: 3,
                    name: "east-3".into(),
                    endpoint: "http://127.0.0.2:2633/RPC2".into(),
                },
            ],
        };
        let mut xml = String::new();
        super::super::zone::zone_xml(&zone, &mut xml);
        let back = read_zone(&xml).expect("reads back");
        assert_eq!(back.oid, 100);
        assert_eq!(back.name, "east");
        assert_eq!(back.endpoint, zone.endpoint);
        assert_eq!(back.servers, zone.servers);
        let t = template::Template::parse(&back.template).expect("template");
        assert_eq!(t.single("LABEL"), Some("a & <b>"));
    }

    #[test]
    fn broken_or_hostile_zone_documents_are_refused() {
        for bad in [
            "",
            "<ZONE><ID>1</ID>",
            "<HOST><ID>1</ID><NAME>x</NAME><STATE>0</STATE></HOST>",
            "<ZONE><ID>x</ID><NAME>x</NAME><STATE>0</STATE></ZONE>",
            "<ZONE><ID>1</ID><NAME>x</NAME><STATE>0</STATE><SERVER_POOL><SERVER><ID>0</ID></SERVER></SERVER_POOL></ZONE>",
        ] {
            assert!(read_zone(bad).is_err(), "{bad:?} was taken");
        }
    }
}
