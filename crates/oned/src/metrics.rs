//! `GET /metrics`: the server's figures in Prometheus' text format, on every server of the zone.
//!
//! Raft's figures (state, term, indexes, each follower's replication lag on the leader) are read
//! when scraped; the rest are the counters and histograms the code keeps as it works
//! (`telemetry::m`). Served without credentials, as etcd serves its own: the figures name no
//! object, user or secret, only methods and counts.

use std::sync::atomic::Ordering;

use telemetry::{m, Exposition};
use wire::RaftState;

use crate::cluster::Cluster;

/// The content type Prometheus asks for (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole scrape.
pub async fn render(cluster: &Cluster, server_id: i64) -> String {
    let mut e = Exposition::new();
    raft(&mut e, cluster, server_id).await;
    api(&mut e);
    consensus(&mut e);
    duties(&mut e);
    e.finish()
}

async fn raft(e: &mut Exposition, cluster: &Cluster, server_id: i64) {
    let status = cluster.status(server_id).await;
    e.gauge(
        "oneha_server_id",
        "This server's id in the zone.",
        status.server_id as f64,
    );
    let states: Vec<(&str, f64)> = RaftState::ALL
        .iter()
        .map(|s| (s.name(), f64::from(u8::from(s.as_i64() == status.state))))
        .collect();
    let labels: Vec<[(&str, &str); 1]> = states.iter().map(|(n, _)| [("state", *n)]).collect();
    let samples: Vec<_> = labels
        .iter()
        .zip(states.iter())
        .map(|(l, (_, v))| (&l[..], *v))
        .collect();
    e.gauges(
        "oneha_raft_state",
        "1 for the Raft state this server is in (as raftstatus STATE), 0 for the others.",
        &samples,
    );
    e.gauge("oneha_raft_term", "Current Raft term.", status.term as f64);
    e.gauge(
        "oneha_raft_commit_index",
        "Index of the last committed log record.",
        status.commit as f64,
    );
    e.gauge(
        "oneha_raft_log_index",
        "Index of the last log record.",
        status.log_index as f64,
    );
    let Some(raft) = cluster.raft() else {
        return;
    };
    let metrics = raft.metrics().borrow().clone();
    let index = |l: Option<openraft::LogId<u64>>| l.map_or(-1.0, |l| l.index as f64);
    e.gauge(
        "oneha_raft_applied_index",
        "Index of the last log record applied to the state database.",
        index(metrics.last_applied),
    );
    e.gauge(
        "oneha_raft_purged_index",
        "Index of the last log record purged (-1: none).",
        index(metrics.purged),
    );
    e.gauge(
        "oneha_raft_snapshot_index",
        "Index of the last log record in this server's snapshot (-1: none).",
        index(metrics.snapshot),
    );
    e.gauge(
        "oneha_raft_leader_id",
        "Id of the server this one knows as leader (-1: none).",
        metrics.current_leader.map_or(-1.0, |l| l as f64),
    );
    let last = metrics.last_log_index.unwrap_or(0);
    let lags: Vec<(String, f64)> = metrics
        .replication
        .iter()
        .flat_map(|r| r.iter())
        .filter(|(id, _)| **id != metrics.id)
        .map(|(id, matched)| {
            let matched = matched.map_or(0, |l| l.index + 1);
            (id.to_string(), (last + 1).saturating_sub(matched) as f64)
        })
        .collect();
    let labels: Vec<[(&str, &str); 1]> =
        lags.iter().map(|(id, _)| [("peer", id.as_str())]).collect();
    let samples: Vec<_> = labels
        .iter()
        .zip(lags.iter())
        .map(|(l, (_, v))| (&l[..], *v))
        .collect();
    e.gauges(
        "oneha_raft_replication_lag",
        "Log records the leader holds that a follower has not acknowledged (on the leader only).",
        &samples,
    );
}

fn api(e: &mut Exposition) {
    e.histograms(
        "oneha_rpc_duration_seconds",
        "/RPC2 calls answered by this server, by method, kind and outcome, and the time to answer.",
        &["method", "kind", "outcome"],
        &m::CALLS.snapshot(),
    );
    e.counter(
        "oneha_rpc_malformed_total",
        "/RPC2 calls that did not parse or named no method.",
        m::BAD_CALLS.get(),
    );
    e.counter(
        "oneha_forwarded_total",
        "Calls this server passed on to the leader.",
        m::FORWARDED.get(),
    );
    e.counter(
        "oneha_forward_failures_total",
        "Calls this server could not pass on to the leader.",
        m::FORWARD_FAILURES.get(),
    );
    e.counter(
        "oneha_forwarded_write_catch_ups_total",
        "Forwarded writes this leader held until it had applied what the forwarding server had.",
        m::WRITE_CATCH_UPS.get(),
    );
    e.counter(
        "oneha_forwarded_writes_answered_unapplied_total",
        "Forwarded writes this follower answered before it had applied them (the wait ran out).",
        m::FORWARDED_ANSWERED_UNAPPLIED.get(),
    );
    e.counter(
        "oneha_vm_pool_answers_reused_total",
        "VM pool calls answered with an earlier call's answer: nothing they read had changed.",
        m::POOL_ANSWERS_REUSED.get(),
    );
    e.counter(
        "oneha_vm_pool_answers_patched_total",
        "VM pool calls answered from an earlier call's answer with only the VMs changed since read again.",
        m::POOL_ANSWERS_PATCHED.get(),
    );
    e.counter(
        "oneha_follower_reads_total",
        "Leader reads this follower answered itself, after the leader confirmed a read index.",
        m::FOLLOWER_READS.get(),
    );
    e.counter(
        "oneha_read_index_asked_total",
        "Read index calls this follower made (one serves every leader read that arrived together).",
        m::READ_INDEX_ASKED.get(),
    );
    e.counter(
        "oneha_read_index_served_total",
        "Read index calls of followers this server answered or refused.",
        m::READ_INDEX_SERVED.get(),
    );
    e.counter(
        "oneha_corrupt_templates_total",
        "Stored templates that did not parse when an answer was built.",
        crate::api::xml::CORRUPT_TEMPLATES.load(Ordering::Relaxed),
    );
    e.counter(
        "oneha_federated_statements_reading_local_tables_total",
        "Statements on the federated tables applied that also read this zone's own tables (a bug: zones may part; each is logged with its SQL).",
        sqlstore::federated::LOCAL_READS.load(Ordering::Relaxed),
    );
}

fn consensus(e: &mut Exposition) {
    e.histogram(
        "oneha_proposer_batch_size",
        "Transactions carried by each log entry this server proposed.",
        &m::PROPOSER_BATCH,
    );
    e.counter(
        "oneha_records_answered_at_apply_total",
        "Log records this leader proposed whose writers were answered as their apply committed.",
        m::WRITES_ANSWERED_AT_APPLY.get(),
    );
    e.counter(
        "oneha_applies_redone_total",
        "Applies done again with a savepoint per write transaction because one of them failed.",
        m::APPLIES_REDONE.get(),
    );
    e.counter(
        "oneha_records_answered_by_raft_total",
        "Log records this leader proposed whose writers were answered from Raft's result instead.",
        m::WRITES_ANSWERED_BY_RAFT.get(),
    );
    e.counter(
        "oneha_proposer_overloaded_total",
        "Writes refused at once because the proposer's queue was full.",
        m::PROPOSER_OVERLOADED.get(),
    );
    e.histogram(
        "oneha_apply_duration_seconds",
        "Time the state database (SQLite or MySQL) took to apply each batch of committed records.",
        &m::APPLY_SECONDS,
    );
    e.counter(
        "oneha_applied_records_total",
        "Committed log records applied to the state database.",
        m::APPLIED_ENTRIES.get(),
    );
    e.counter(
        "oneha_snapshots_built_total",
        "Snapshots of the state database this server built.",
        m::SNAPSHOTS_BUILT.get(),
    );
    e.counter(
        "oneha_snapshots_installed_total",
        "Snapshots this server installed from a leader.",
        m::SNAPSHOTS_INSTALLED.get(),
    );
}

fn duties(e: &mut Exposition) {
    e.counter(
        "oneha_elections_total",
        "Terms this server saw begin: each is an election in the zone.",
        m::TERMS_SEEN.get(),
    );
    e.counter(
        "oneha_leader_wins_total",
        "Times this server became leader (and ran its leader hook).",
        m::BECAME_LEADER.get(),
    );
    e.counter(
        "oneha_step_downs_total",
        "Times this server stopped leading (and ran its follower hook).",
        m::STEP_DOWNS.get(),
    );
    e.counter(
        "oneha_fast_elections_total",
        "Campaigns this server started at once because its leader's port refused connections.",
        m::FAST_ELECTIONS.get(),
    );
    e.counter(
        "oneha_handovers_total",
        "Times this server, stopping as leader, handed leadership over to a follower.",
        m::HANDOVERS.get(),
    );
    e.counter(
        "oneha_log_purges_total",
        "Log purges asked for by the retention task.",
        m::PURGES.get(),
    );
    e.counter(
        "oneha_log_purged_records_total",
        "Log records those purges dropped.",
        m::PURGED_RECORDS.get(),
    );
    e.counters(
        "oneha_hook_runs_total",
        "Hook executions run by this server, by outcome (exit code 0 or not).",
        &[
            (&[("outcome", "success")], m::HOOK_SUCCESSES.get()),
            (&[("outcome", "failure")], m::HOOK_FAILURES.get()),
        ],
    );
    e.counter(
        "oneha_hook_events_lost_total",
        "API hook events that could not be written (their hooks did not run).",
        crate::api::hook::LOST_EVENTS.load(Ordering::Relaxed),
    );
}
