//! Grow-only sets and stale-allowed follower reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Outcome, Violation};

/// One attempt to create a uniquely named object (never deleted).
#[derive(Debug, Clone)]
pub struct SetAdd {
    pub name: String,
    pub outcome: Outcome,
}

/// How the adds of a successful [`check_set`] ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetStats {
    pub ok: usize,
    pub failed: usize,
    /// Unknown adds that took effect.
    pub unknown_present: usize,
    /// Unknown adds that did not take effect.
    pub unknown_absent: usize,
}

/// Checks the final contents `present` of a grow-only set against the adds
/// done on it; returns one violation per kind of problem found.
pub fn check_set(adds: &[SetAdd], present: &BTreeSet<String>) -> Result<SetStats, Vec<Violation>> {
    let mut by_name: BTreeMap<&str, Outcome> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for add in adds {
        if by_name.insert(&add.name, add.outcome).is_some() {
            duplicates.push(format!("create {:?}", add.name));
        }
    }

    let mut stats = SetStats::default();
    let mut lost = Vec::new();
    let mut applied = Vec::new();
    for (&name, &outcome) in &by_name {
        let here = present.contains(name);
        match (outcome, here) {
            (Outcome::Ok, true) => stats.ok += 1,
            (Outcome::Ok, false) => lost.push(format!("create {name:?} ok, absent")),
            (Outcome::Failed, false) => stats.failed += 1,
            (Outcome::Failed, true) => applied.push(format!("create {name:?} failed, present")),
            (Outcome::Unknown, true) => stats.unknown_present += 1,
            (Outcome::Unknown, false) => stats.unknown_absent += 1,
        }
    }
    let never: Vec<String> = present
        .iter()
        .filter(|n| !by_name.contains_key(n.as_str()))
        .map(|n| format!("{n:?} present, never created"))
        .collect();

    let violations: Vec<Violation> = [
        ("malformed history: object name created twice", duplicates),
        ("acknowledged create lost", lost),
        ("failed create applied", applied),
        ("object never created", never),
    ]
    .into_iter()
    .filter(|(_, ops)| !ops.is_empty())
    .map(|(what, ops)| Violation {
        what: format!("{what} ({})", ops.len()),
        ops,
    })
    .collect();
    if violations.is_empty() {
        Ok(stats)
    } else {
        Err(violations)
    }
}

/// Checks successive reads of a grow-only set made by one client on one
/// server, each finishing before the next starts: every read only shows
/// `allowed` names (those of non-failed adds) and keeps everything the
/// previous read showed.
pub fn check_monotonic_set_reads(
    reads: &[BTreeSet<String>],
    allowed: &BTreeSet<String>,
) -> Result<(), Violation> {
    for (i, read) in reads.iter().enumerate() {
        let unknown: Vec<String> = read
            .difference(allowed)
            .map(|n| format!("read #{i} showed {n:?}"))
            .collect();
        if !unknown.is_empty() {
            return Err(Violation {
                what: format!("follower showed an object never created (read #{i})"),
                ops: unknown,
            });
        }
        if let Some(before) = i.checked_sub(1).map(|p| &reads[p]) {
            let vanished: Vec<String> = before
                .difference(read)
                .map(|n| format!("{n:?} shown by read #{}, gone in read #{i}", i - 1))
                .collect();
            if !vanished.is_empty() {
                return Err(Violation {
                    what: format!(
                        "follower read went backwards: read #{i} lost {} object(s) shown by read #{}",
                        vanished.len(),
                        i - 1
                    ),
                    ops: vanished,
                });
            }
        }
    }
    Ok(())
}

/// Checks reads of one register that may be stale (follower reads): each
/// must return `initial` (`None`: absent) or a value in `written`, the values
/// of non-failed writes.
pub fn check_register_values_seen(
    reads: &[Option<String>],
    written: &BTreeSet<String>,
    initial: Option<&str>,
) -> Result<(), Violation> {
    let bad: Vec<String> = reads
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.as_deref() != initial && !v.as_ref().is_some_and(|s| written.contains(s))
        })
        .map(|(i, v)| match v {
            Some(s) => format!("read #{i} returned {s:?}"),
            None => format!("read #{i} returned <absent>"),
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Violation {
            what: format!(
                "follower showed a value never written ({} read(s))",
                bad.len()
            ),
            ops: bad,
        })
    }
}
