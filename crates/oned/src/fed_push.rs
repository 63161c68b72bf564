//! A federation master's leader sends its federated log (`fed_log`, see
//! `sqlstore::apply_batch`) to every other zone of `zone_pool`, at its ENDPOINT, with
//! `one.zone.fedreplicate(index, prev, record)`, as OpenNebula's `FedReplicaManager` does.
//!
//! Where each zone stands is not stored: a new leader starts every zone at the newest record,
//! and a zone that is behind answers with its newest index ("Zone log is outdated"), from
//! which the leader resumes. A zone behind the oldest record kept (`FED_LOG_RETENTION`), or
//! one that cannot apply a record because its tables drifted, is sent the federated tables
//! whole (`oneha.zone.fedsnapshot`; in parts when larger than one request, staged by the
//! slave and swapped in with the last) and goes on from there. Calls go as oneadmin
//! (`.one/one_auth`): the zones share the users' table.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use sqlstore::ReadPool;
use xmlrpc::{MethodCall, Value};

use crate::api::code;
use crate::cluster::{Cluster, LeaderTicks};
use crate::tasks::TaskCtx;

/// How often the leader looks for records to send.
const PERIOD: Duration = Duration::from_millis(250);
/// OpenNebula's fixed federation call timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How a zone's answer starts that names its newest record (`ZoneReplicateFedLog`).
pub const OUTDATED: &str = "Zone log is outdated last log index is ";
/// Records sent to one zone per round, so one zone far behind does not hold up the others.
const PER_ROUND: usize = 256;
/// A snapshot is applied as one transaction through the slave zone's log.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a zone stands: the next record to send it.
#[derive(Clone, Copy)]
struct Cursor {
    next: i64,
    /// The problem last reported for it, not repeated every round.
    reported: Option<Problem>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Problem {
    Unreachable,
    SnapshotTooLarge,
    SnapshotRefused,
    Refused,
}

pub async fn run(
    ctx: TaskCtx,
    cluster: Cluster,
    pool: ReadPool,
    own_zone: i64,
    one_auth: PathBuf,
    http: reqwest::Client,
    max_request: usize,
) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    let mut cursors: HashMap<i64, Cursor> = HashMap::new();
    loop {
        ticks.next().await;
        let read = crate::db::read(&pool, move |c| {
            let zones: Vec<(i64, String)> = c
                .prepare("SELECT oid, endpoint FROM zone_pool WHERE oid <> ?1 ORDER BY oid")?
                .query_map([own_zone], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok((zones, sqlstore::last_federated(c)?.unwrap_or(0)))
        })
        .await;
        let (zones, last) = match read {
            Ok(read) => read,
            Err(e) => {
                ctx.warn("reading the zones and the federated log failed", &e);
                continue;
            }
        };
        cursors.retain(|z, _| zones.iter().any(|(id, _)| id == z));
        if last == 0 {
            continue;
        }
        let session = match crate::credentials::load_or_create_one_auth(&one_auth) {
            Ok((user, password)) => format!("{user}:{password}"),
            Err(e) => {
                ctx.warn("reading oneadmin's credentials failed", &e);
                continue;
            }
        };
        for (zone, endpoint) in zones {
            if !endpoint.starts_with("http") {
                continue;
            }
            let cursor = cursors.entry(zone).or_insert(Cursor {
                next: last,
                reported: None,
            });
            let call = Call {
                http: &http,
                pool: &pool,
                session: &session,
                endpoint: &endpoint,
                max_request,
            };
            push(&ctx, &call, zone, cursor, last).await;
        }
    }
}

struct Call<'a> {
    http: &'a reqwest::Client,
    pool: &'a ReadPool,
    session: &'a str,
    endpoint: &'a str,
    /// The largest request sent: this zone's `MESSAGE_SIZE`, which federated zones share.
    max_request: usize,
}

/// Sends zone `zone` the records from its cursor on, up to `last`.
async fn push(ctx: &TaskCtx, call: &Call<'_>, zone: i64, cursor: &mut Cursor, last: i64) {
    let report =
        |cursor: &mut Cursor, problem: Problem, what: &str, why: &dyn std::fmt::Display| {
            if cursor.reported != Some(problem) {
                ctx.warn(&format!("zone {zone}: {what}"), why);
                cursor.reported = Some(problem);
            }
        };
    for _ in 0..PER_ROUND {
        let index = cursor.next;
        if index > last {
            return;
        }
        let read = crate::db::read(call.pool, move |c| {
            use sqlstore::Optional;
            c.query_row(
                "SELECT body FROM fed_log WHERE fed_index = ?1",
                [index],
                |r| r.get::<String>(0),
            )
            .optional()
        })
        .await;
        let body = match read {
            Ok(Some(body)) => body,
            Ok(None) => {
                // Behind the records kept: the tables whole bring it up to date.
                tracing::info!(zone, needs = index, "zone is behind the federated log kept");
                snapshot(ctx, call, zone, cursor, &report).await;
                return;
            }
            Err(e) => {
                ctx.warn("reading the federated log failed", &e);
                return;
            }
        };
        match send(call, index, &body).await {
            Ok(Sent::Applied) => {
                cursor.next = index + 1;
                cursor.reported = None;
            }
            Ok(Sent::ResumeAfter(newest)) => {
                // Behind: resend from its newest record on; ahead (it holds this one already,
                // a new leader's first round): go on after it.
                tracing::info!(
                    zone,
                    newest,
                    sent = index,
                    "zone answered its newest federated record"
                );
                cursor.next = newest + 1;
            }
            Ok(Sent::ApplyFailed(message)) => {
                // Its tables differ from the master's (the record found no row to change): the
                // tables whole repair them.
                tracing::warn!(zone, index, %message, "zone could not apply a federated record");
                snapshot(ctx, call, zone, cursor, &report).await;
                return;
            }
            Ok(Sent::Refused(message)) => {
                report(
                    cursor,
                    Problem::Refused,
                    "refused a federated record",
                    &message,
                );
                return;
            }
            Err(e) => {
                report(cursor, Problem::Unreachable, "could not be reached", &e);
                return;
            }
        }
    }
}

/// Sends zone `zone` the master's federated tables whole; its cursor then follows them.
async fn snapshot(
    ctx: &TaskCtx,
    call: &Call<'_>,
    zone: i64,
    cursor: &mut Cursor,
    report: &impl Fn(&mut Cursor, Problem, &str, &dyn std::fmt::Display),
) {
    let read = crate::db::read(call.pool, sqlstore::federated_snapshot).await;
    let snapshot = match read {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return,
        Err(e) => {
            ctx.warn("reading the federated tables for a snapshot failed", &e);
            return;
        }
    };
    let index = snapshot.index;
    let body = match serde_json::to_string(&snapshot) {
        Ok(body) => body,
        Err(e) => {
            ctx.warn("encoding a federated snapshot failed", &e);
            return;
        }
    };
    let whole = request(
        call,
        wire::method::ONEHA_ZONE_FEDSNAPSHOT,
        vec![Value::I8(index), Value::String(body)],
    );
    let requests = if whole.len() <= call.max_request {
        vec![whole]
    } else {
        // Half the limit of rows a part: room for the XML escaping of the JSON text.
        let parts = snapshot.split(call.max_request / 2);
        let n = parts.len() as i32;
        let mut requests = Vec::with_capacity(parts.len());
        for (k, part) in parts.iter().enumerate() {
            let body = match serde_json::to_string(part) {
                Ok(body) => body,
                Err(e) => {
                    ctx.warn("encoding a federated snapshot part failed", &e);
                    return;
                }
            };
            let r = request(
                call,
                wire::method::ONEHA_ZONE_FEDSNAPSHOT,
                vec![
                    Value::I8(index),
                    Value::String(body),
                    Value::Int(k as i32),
                    Value::Int(n),
                ],
            );
            if r.len() > call.max_request {
                report(
                    cursor,
                    Problem::SnapshotTooLarge,
                    "needs the federated tables whole, and one of their rows is too large to send; restore them from `onedb backup --federated`",
                    &format!("{} bytes, more than MESSAGE_SIZE {}", r.len(), call.max_request),
                );
                return;
            }
            requests.push(r);
        }
        requests
    };
    let parts = requests.len();
    for (k, request) in requests.into_iter().enumerate() {
        match post(call, request, SNAPSHOT_TIMEOUT).await {
            Ok(Sent::Applied) => {}
            Ok(Sent::ResumeAfter(_) | Sent::ApplyFailed(_) | Sent::Refused(_)) => {
                // The next round sends the tables again, from part 0.
                report(
                    cursor,
                    Problem::SnapshotRefused,
                    "refused the federated tables whole",
                    &format!("part {k} of {parts}; see its log"),
                );
                return;
            }
            Err(e) => {
                report(cursor, Problem::Unreachable, "could not be reached", &e);
                return;
            }
        }
    }
    tracing::info!(zone, index, parts, "zone took the federated tables whole");
    cursor.next = index + 1;
    cursor.reported = None;
}

enum Sent {
    Applied,
    /// The zone could not apply the record (its tables differ from the master's).
    ApplyFailed(String),
    /// "Zone log is outdated": the zone's newest record.
    ResumeAfter(i64),
    Refused(String),
}

fn request(call: &Call<'_>, method: &str, params: Vec<Value>) -> String {
    let mut all = vec![Value::String(call.session.to_string())];
    all.extend(params);
    xmlrpc::write_call(&MethodCall {
        method: method.into(),
        params: all,
    })
}

async fn send(call: &Call<'_>, index: i64, body: &str) -> Result<Sent, String> {
    let request = request(
        call,
        wire::method::ZONE_FEDREPLICATE,
        vec![
            Value::I8(index),
            Value::I8(index - 1),
            Value::String(body.to_string()),
        ],
    );
    match post(call, request, CALL_TIMEOUT).await? {
        Sent::Refused(m) if m.contains(&format!("Error replicating log entry {index} ")) => {
            Ok(Sent::ApplyFailed(m))
        }
        sent => Ok(sent),
    }
}

async fn post(call: &Call<'_>, request: String, timeout: Duration) -> Result<Sent, String> {
    let sent = call
        .http
        .post(call.endpoint)
        .header(
            wire::header::FED_VERSION,
            sqlstore::versions::SHARED_DB_VERSION,
        )
        .timeout(timeout);
    let values = crate::api::master_client::post_call(sent, request).await?;
    if values.first().and_then(Value::as_bool) == Some(true) {
        return Ok(Sent::Applied);
    }
    let message = values
        .get(1)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let error_code = values.get(2).and_then(Value::as_i64);
    let newest = values.get(4).and_then(Value::as_i64);
    match (error_code, newest) {
        (Some(c), Some(n))
            if c == i64::from(code::REPLICATION) && n >= 0 && message.contains(OUTDATED) =>
        {
            Ok(Sent::ResumeAfter(n))
        }
        _ => Ok(Sent::Refused(message)),
    }
}
