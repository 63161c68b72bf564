//! The figures a server keeps, by the crate that bumps them. Names are printed with the
//! `oneha_` prefix by oned's `/metrics`.

use std::sync::{Arc, LazyLock};

use crate::{Counter, Histogram, Series, LATENCY_BUCKETS, SIZE_BUCKETS};

/// Distinct (method, outcome) series kept: every method of the API answered three ways, with room.
const MAX_CALL_SERIES: usize = 2048;
static OTHER_CALL: &[&str] = &["other", "other", "other"];

// ---- the API (oned) ----

/// `/RPC2` calls answered here, by method, kind (`read`, `write`, `status`) and outcome (`ok`,
/// `error`, `forwarded`), and how long each took to answer.
pub static CALLS: Series = Series::new(LATENCY_BUCKETS, MAX_CALL_SERIES, OTHER_CALL);
/// Calls that named no method of the table, or did not parse.
pub static BAD_CALLS: Counter = Counter::new();
/// Calls this follower passed on to the leader.
pub static FORWARDED: Counter = Counter::new();
/// Forwarded calls the leader could not be reached for.
pub static FORWARD_FAILURES: Counter = Counter::new();
/// Forwarded writes the leader held until it had applied what the forwarding server had.
pub static WRITE_CATCH_UPS: Counter = Counter::new();
/// Forwarded writes answered before this follower had applied them (its wait ran out).
pub static FORWARDED_ANSWERED_UNAPPLIED: Counter = Counter::new();
/// VM pool calls answered with the answer kept from an earlier call (`vm_pool_answers`).
pub static POOL_ANSWERS_REUSED: Counter = Counter::new();
/// VM pool calls answered by reading again only the VMs changed since an earlier call's answer.
pub static POOL_ANSWERS_PATCHED: Counter = Counter::new();

// ---- consensus ----

/// Transactions per log entry the proposer made.
pub static PROPOSER_BATCH: LazyLock<Arc<Histogram>> =
    LazyLock::new(|| Arc::new(Histogram::new(SIZE_BUCKETS)));
/// Proposed log entries whose writers the state database's thread answered as the apply committed.
pub static WRITES_ANSWERED_AT_APPLY: Counter = Counter::new();
/// Proposed log entries whose writers were answered from openraft's result instead (the entry was
/// read back from the database before its apply).
pub static WRITES_ANSWERED_BY_RAFT: Counter = Counter::new();
/// Writes refused at once because the proposer's queue was full.
pub static PROPOSER_OVERLOADED: Counter = Counter::new();
/// Time the state database took to apply one batch of committed entries.
pub static APPLY_SECONDS: LazyLock<Arc<Histogram>> =
    LazyLock::new(|| Arc::new(Histogram::new(LATENCY_BUCKETS)));
/// Applies begun without a savepoint per write transaction and done again with them, because one
/// of those transactions failed (`sqlstore::Undo`).
pub static APPLIES_REDONE: Counter = Counter::new();
/// Committed entries applied to the state database.
pub static APPLIED_ENTRIES: Counter = Counter::new();
/// Snapshots this server built, and installed from a leader.
pub static SNAPSHOTS_BUILT: Counter = Counter::new();
pub static SNAPSHOTS_INSTALLED: Counter = Counter::new();

/// Campaigns this server started at once because its leader's port refused connections
/// (`consensus::failover`).
pub static FAST_ELECTIONS: Counter = Counter::new();
/// Times this server, stopping as leader, handed leadership over (`consensus::handover`).
pub static HANDOVERS: Counter = Counter::new();
/// `readindex` calls this follower made, and those this leader answered or refused
/// (`consensus::follower_read`); one call serves every leader read that arrived together.
pub static READ_INDEX_ASKED: Counter = Counter::new();
pub static READ_INDEX_SERVED: Counter = Counter::new();
/// Leader reads this follower answered from its own database after a read index.
pub static FOLLOWER_READS: Counter = Counter::new();

// ---- oned's leader duties ----

/// Times this server became leader, and stopped being one.
pub static BECAME_LEADER: Counter = Counter::new();
pub static STEP_DOWNS: Counter = Counter::new();
/// Terms this server saw begin (each is an election somewhere in the zone).
pub static TERMS_SEEN: Counter = Counter::new();
/// Log purges asked for by the retention task, and the records they dropped.
pub static PURGES: Counter = Counter::new();
pub static PURGED_RECORDS: Counter = Counter::new();
/// Hook executions run here, by outcome.
pub static HOOK_SUCCESSES: Counter = Counter::new();
pub static HOOK_FAILURES: Counter = Counter::new();
