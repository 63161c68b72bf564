//! Zone servers (`zone_server`): ids handed out by a per-zone counter so they are never reused.

use crate::{SqlStmt, SqlValue, ZoneRow};

/// How the per-zone server counters are named in `pool_control` (`zone_server/<zone>`). They
/// are federated with the servers they count: a slave zone picks its next server id from the
/// master's copy.
pub const SERVER_COUNTER: &str = "zone_server/";

fn server_counter(zone_id: i64) -> String {
    format!("{SERVER_COUNTER}{zone_id}")
}

/// The id the next server of zone `zone_id` gets: one past every id the zone ever used.
pub fn next_server_id(c: &crate::sql::Conn, zone_id: i64) -> crate::sql::Result<i64> {
    c.query_row(
        "SELECT MAX(id) + 1 FROM (
             SELECT server_id AS id FROM zone_server WHERE zone_id = ?1
             UNION ALL SELECT last_oid FROM pool_control WHERE tablename = ?2
             UNION ALL SELECT -1) AS used",
        (zone_id, server_counter(zone_id)),
        |r| r.get(0),
    )
}

/// `one.zone.updatedb` (a federation's master): zone `zone.oid` becomes `zone` whole, its
/// name, state, template and servers, as a slave zone sent it. The server counter only grows,
/// so no id is handed out twice. Matches nothing if the zone does not exist.
pub fn replace(zone: &ZoneRow) -> Vec<SqlStmt> {
    let oid = zone.oid;
    let mut stmts = vec![
        SqlStmt::new(
            "UPDATE zone_pool SET name = ?2, state = ?3, endpoint = ?4, template = ?5 WHERE oid = ?1",
            vec![
                SqlValue::Int(oid),
                SqlValue::Text(zone.name.clone()),
                SqlValue::Int(zone.state),
                SqlValue::Text(zone.endpoint.clone()),
                SqlValue::Text(zone.template.clone()),
            ],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM zone_server WHERE zone_id = ?1",
            vec![SqlValue::Int(oid)],
        ),
    ];
    for s in &zone.servers {
        stmts.push(SqlStmt::new(
            "INSERT INTO zone_server (zone_id, server_id, name, endpoint) VALUES (?1, ?2, ?3, ?4)",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(s.id),
                SqlValue::Text(s.name.clone()),
                SqlValue::Text(s.endpoint.clone()),
            ],
        ));
    }
    if let Some(top) = zone.servers.iter().map(|s| s.id).max() {
        let counter = server_counter(oid);
        stmts.push(SqlStmt::new(
            "UPDATE pool_control SET last_oid = ?2 WHERE tablename = ?1 AND last_oid < ?2",
            vec![SqlValue::Text(counter.clone()), SqlValue::Int(top)],
        ));
        stmts.push(SqlStmt::new(
            "INSERT INTO pool_control (tablename, last_oid) SELECT ?1, ?2 \
             FROM (SELECT 1 AS one) AS once \
             WHERE NOT EXISTS (SELECT 1 FROM pool_control WHERE tablename = ?1)",
            vec![SqlValue::Text(counter), SqlValue::Int(top)],
        ));
    }
    stmts
}

/// Adds server `name` at `endpoint` to zone `zone_id`, returning its id: one past every id the
/// zone ever used, computed by the SQL itself so every server agrees. Ids are never reused: a
/// deleted server that comes back must not pass for the new one (its log would conflict with
/// what the leader sends the new member). Matches nothing if the zone does not exist.
pub fn add_server(zone_id: i64, name: &str, endpoint: &str) -> Vec<SqlStmt> {
    let counter = server_counter(zone_id);
    vec![
        SqlStmt::new(
            "INSERT INTO zone_server (zone_id, server_id, name, endpoint)
             SELECT ?1, (SELECT MAX(id) + 1 FROM (
                     SELECT server_id AS id FROM zone_server WHERE zone_id = ?1
                     UNION ALL SELECT last_oid FROM pool_control WHERE tablename = ?4
                     UNION ALL SELECT -1) AS used),
               ?2, ?3
             FROM zone_pool WHERE oid = ?1 RETURNING server_id",
            vec![
                SqlValue::Int(zone_id),
                SqlValue::Text(name.to_string()),
                SqlValue::Text(endpoint.to_string()),
                SqlValue::Text(counter.clone()),
            ],
        )
        .must_match(),
        SqlStmt::new(
            "INSERT INTO pool_control (tablename, last_oid)
             SELECT ?2, MAX(server_id) FROM zone_server WHERE zone_id = ?1
             ON CONFLICT (tablename) DO UPDATE SET last_oid = excluded.last_oid",
            vec![SqlValue::Int(zone_id), SqlValue::Text(counter)],
        ),
    ]
}

/// Removes server `server_id` from zone `zone_id`; matches nothing if it is not there.
pub fn del_server(zone_id: i64, server_id: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM zone_server WHERE zone_id = ?1 AND server_id = ?2",
        vec![SqlValue::Int(zone_id), SqlValue::Int(server_id)],
    )
    .must_match()
}

/// Enables (`ZoneState::Enabled`) or disables zone `oid`.
/// A new zone (`one.zone.allocate` on a federation's master): the next zone id, state
/// enabled. Returns the id.
pub fn insert(name: &str, endpoint: &str, template: &str) -> SqlStmt {
    super::insert_next(
        "zone_pool",
        "name, state, endpoint, template",
        "?1, 0, ?2, ?3",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Text(endpoint.to_string()),
            SqlValue::Text(template.to_string()),
        ],
    )
}

/// A slave zone's copy of the master's federated record `index`: inserted only if the newest
/// record here is `prev` (0: none), so a record applies once and in order.
pub fn fed_log_follows(index: i64, prev: i64, body: &str) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO fed_log (fed_index, body) SELECT ?1, ?2 FROM (SELECT 1 AS one) AS once \
         WHERE COALESCE((SELECT MAX(fed_index) FROM fed_log), 0) = ?3",
        vec![
            SqlValue::Int(index),
            SqlValue::Text(body.to_string()),
            SqlValue::Int(prev),
        ],
    )
    .must_match()
}

pub fn set_state(oid: i64, state: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE zone_pool SET state = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(state)],
    )
    .must_match()
}

/// `one.zone.update`: the zone's template and its ENDPOINT, if the template is still `old`.
pub fn set_template(oid: i64, template: String, endpoint: &str, old: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE zone_pool SET template = ?2, endpoint = ?3 WHERE oid = ?1 AND template = ?4",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(template),
            SqlValue::Text(endpoint.to_string()),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// Whether zone `oid` is disabled (a zone that does not exist is not).
pub fn is_disabled(c: &crate::sql::Conn, oid: i64) -> crate::sql::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM zone_pool WHERE oid = ?1 AND state = ?2)")?
        .query_row([oid, wire::ZoneState::Disabled.as_i64()], |r| r.get(0))
}
