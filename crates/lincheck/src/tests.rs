use std::collections::BTreeSet;
use std::time::Instant;

use crate::*;

const MS: u64 = 1_000_000;

fn ev(client: usize, from: u64, to: u64, op: RegOp, outcome: Outcome) -> RegEvent {
    RegEvent {
        client,
        invoke: from * MS,
        complete: to * MS,
        op,
        outcome,
    }
}

fn w(client: usize, from: u64, to: u64, v: &str) -> RegEvent {
    ev(client, from, to, RegOp::Write(v.into()), Outcome::Ok)
}

fn w_with(client: usize, from: u64, to: u64, v: &str, outcome: Outcome) -> RegEvent {
    ev(client, from, to, RegOp::Write(v.into()), outcome)
}

fn r(client: usize, from: u64, to: u64, v: Option<&str>) -> RegEvent {
    ev(
        client,
        from,
        to,
        RegOp::Read(v.map(Into::into)),
        Outcome::Ok,
    )
}

fn rejected(history: &[RegEvent], initial: Option<&str>) -> Violation {
    match check_register(history, initial) {
        Ok(stats) => panic!("accepted: {stats:?}"),
        Err(v) => v,
    }
}

fn assert_rejected_with(history: &[RegEvent], initial: Option<&str>, what: &str) {
    let v = rejected(history, initial);
    assert!(v.what.contains(what), "expected {what:?}, got:\n{v}");
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn empty_history_passes() {
    check_register(&[], None).unwrap();
}

#[test]
fn valid_sequential_history_passes() {
    let h = [
        r(0, 0, 1, None),
        w(0, 2, 3, "a"),
        r(1, 4, 5, Some("a")),
        w(1, 6, 7, "b"),
        r(0, 8, 9, Some("b")),
        r(1, 10, 11, Some("b")),
    ];
    let stats = check_register(&h, None).unwrap();
    assert_eq!(stats.ops, 6);
}

#[test]
fn initial_value_can_be_read_when_given() {
    let h = [
        r(0, 0, 1, Some("init")),
        w(0, 2, 3, "a"),
        r(1, 4, 5, Some("a")),
    ];
    check_register(&h, Some("init")).unwrap();
}

#[test]
fn concurrent_read_may_see_the_old_value() {
    let h = [
        w(0, 0, 1, "a"),
        w(0, 2, 10, "b"),
        r(1, 3, 5, Some("a")),
        r(1, 11, 12, Some("b")),
    ];
    check_register(&h, None).unwrap();
}

#[test]
fn concurrent_read_may_see_the_new_value() {
    let h = [
        w(0, 0, 1, "a"),
        w(0, 2, 10, "b"),
        r(1, 3, 5, Some("b")),
        r(1, 11, 12, Some("b")),
    ];
    check_register(&h, None).unwrap();
}

#[test]
fn overlapping_reads_may_see_old_and_new_values_in_either_order() {
    // Both reads overlap each other and the write, so r2 may be ordered
    // before r1 even though it saw the older value.
    let h = [
        w(0, 0, 1, "a"),
        w(0, 2, 10, "b"),
        r(1, 3, 8, Some("b")),
        r(2, 4, 9, Some("a")),
    ];
    check_register(&h, None).unwrap();
}

#[test]
fn touching_intervals_count_as_overlapping() {
    let h = [w(0, 0, 5, "a"), r(1, 5, 6, None)];
    check_register(&h, None).unwrap();
}

#[test]
fn concurrent_writes_may_be_ordered_either_way() {
    for last in ["a", "b"] {
        let h = [
            w(0, 0, 10, "a"),
            w(1, 1, 9, "b"),
            r(2, 20, 21, Some(last)),
            r(2, 22, 23, Some(last)),
        ];
        check_register(&h, None).unwrap();
    }
}

#[test]
fn lost_write_is_rejected_as_stale_read() {
    let h = [w(0, 0, 1, "a"), r(1, 2, 3, None)];
    assert_rejected_with(&h, None, "stale read");
    let h = [w(0, 0, 1, "a"), r(1, 2, 3, Some("init"))];
    assert_rejected_with(&h, Some("init"), "lost write");
}

#[test]
fn stale_read_after_acknowledged_write_is_rejected() {
    let h = [w(0, 0, 1, "a"), w(0, 2, 3, "b"), r(1, 4, 5, Some("a"))];
    let v = rejected(&h, None);
    assert!(v.what.starts_with("stale read"), "{v}");
    assert_eq!(v.ops.len(), 3, "{v}");
}

#[test]
fn read_of_a_value_never_written_is_rejected() {
    let h = [w(0, 0, 1, "a"), r(1, 2, 3, Some("zzz"))];
    assert_rejected_with(&h, None, "read of a value never written");
}

#[test]
fn read_of_absent_attribute_is_rejected_when_initial_is_set() {
    let h = [r(1, 2, 3, None)];
    assert_rejected_with(&h, Some("init"), "read of a value never written");
}

#[test]
fn read_of_a_failed_writes_value_is_rejected() {
    let h = [w_with(0, 0, 1, "a", Outcome::Failed), r(1, 2, 3, Some("a"))];
    assert_rejected_with(&h, None, "read of a value never written: its write failed");
}

#[test]
fn read_that_saw_a_value_before_its_write_was_invoked_is_rejected() {
    let h = [r(1, 0, 1, Some("a")), w(0, 2, 3, "a")];
    assert_rejected_with(&h, None, "read saw a value before it was written");
}

#[test]
fn duplicate_write_value_is_rejected_as_malformed() {
    let h = [w(0, 0, 1, "a"), w(1, 2, 3, "a")];
    assert_rejected_with(&h, None, "malformed history: value written twice");
}

#[test]
fn operation_completing_before_its_invoke_is_rejected_as_malformed() {
    let h = [w(0, 5, 1, "a")];
    assert_rejected_with(&h, None, "malformed history");
}

#[test]
fn failed_and_unknown_reads_are_ignored() {
    let h = [
        w(0, 0, 1, "a"),
        ev(
            1,
            2,
            3,
            RegOp::Read(Some("nonsense".into())),
            Outcome::Failed,
        ),
        ev(1, 4, 5, RegOp::Read(None), Outcome::Unknown),
        r(1, 6, 7, Some("a")),
    ];
    let stats = check_register(&h, None).unwrap();
    assert_eq!(stats.ignored, 2);
}

#[test]
fn failed_write_that_is_not_read_is_fine() {
    let h = [
        w(0, 0, 1, "a"),
        w_with(0, 2, 3, "b", Outcome::Failed),
        r(1, 4, 5, Some("a")),
    ];
    check_register(&h, None).unwrap();
}

#[test]
fn read_may_see_an_unknown_writes_value() {
    let h = [
        w(0, 0, 1, "a"),
        w_with(0, 2, 3, "b", Outcome::Unknown),
        r(1, 2, 4, Some("b")),
    ];
    let stats = check_register(&h, None).unwrap();
    assert_eq!(stats.unknown_kept, 1);
}

#[test]
fn read_may_see_an_unknown_write_long_after_the_writer_gave_up() {
    let h = [
        w(0, 0, 1, "a"),
        w_with(0, 2, 3, "b", Outcome::Unknown),
        r(1, 10, 11, Some("a")),
        w(0, 20, 21, "c"),
        r(1, 30, 31, Some("c")),
        r(1, 1000, 1001, Some("b")),
        r(2, 1002, 1003, Some("b")),
    ];
    check_register(&h, None).unwrap();
}

#[test]
fn unknown_write_that_is_never_read_is_fine() {
    let h = [
        w(0, 0, 1, "a"),
        w_with(0, 2, 3, "b", Outcome::Unknown),
        r(1, 4, 5, Some("a")),
        r(1, 1000, 1001, Some("a")),
    ];
    let stats = check_register(&h, None).unwrap();
    assert_eq!(stats.unknown_dropped, 1);
}

#[test]
fn reading_an_older_value_after_an_unknown_writes_value_is_rejected() {
    let h = [
        w(0, 0, 1, "a"),
        w_with(0, 2, 3, "b", Outcome::Unknown),
        r(1, 40, 41, Some("b")),
        r(1, 50, 51, Some("a")),
    ];
    assert_rejected_with(&h, None, "stale read");
}

#[test]
fn reading_an_older_value_after_a_concurrent_unknown_writes_value_is_rejected() {
    // The unknown write overlaps the Ok one, so only the search sees that "a"
    // cannot come back once "b" was read.
    let h = [
        w(0, 0, 10, "a"),
        w_with(1, 5, 8, "b", Outcome::Unknown),
        r(2, 40, 41, Some("b")),
        r(2, 50, 51, Some("a")),
    ];
    assert_rejected_with(&h, None, "no linearization");
}

#[test]
fn sequential_reads_after_concurrent_writes_must_agree_on_their_order() {
    let h = [
        w(0, 0, 10, "a"),
        w(1, 0, 10, "b"),
        r(2, 20, 30, Some("b")),
        r(3, 40, 50, Some("a")),
    ];
    let v = rejected(&h, None);
    assert!(v.what.starts_with("no linearization"), "{v}");
    println!("{v}");
    assert!(v.ops.iter().any(|o| o.contains("#3 client 3")), "{v}");
}

#[test]
fn violation_display_lists_involved_ops_one_per_line() {
    let h = [w(0, 0, 1, "a"), w(0, 2, 3, "b"), r(7, 4, 5, Some("a"))];
    let text = rejected(&h, None).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("stale read"), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].contains("client 7 read \"a\" ok, 4.000..5.000 ms"),
        "{text}"
    );
}

#[test]
fn set_with_every_outcome_passes() {
    let adds = [
        SetAdd {
            name: "a".into(),
            outcome: Outcome::Ok,
        },
        SetAdd {
            name: "b".into(),
            outcome: Outcome::Failed,
        },
        SetAdd {
            name: "c".into(),
            outcome: Outcome::Unknown,
        },
        SetAdd {
            name: "d".into(),
            outcome: Outcome::Unknown,
        },
    ];
    let stats = check_set(&adds, &names(&["a", "c"])).unwrap();
    assert_eq!(
        stats,
        SetStats {
            ok: 1,
            failed: 1,
            unknown_present: 1,
            unknown_absent: 1
        }
    );
}

#[test]
fn set_reports_lost_creates_applied_failures_and_unknown_objects() {
    let adds = [
        SetAdd {
            name: "a".into(),
            outcome: Outcome::Ok,
        },
        SetAdd {
            name: "b".into(),
            outcome: Outcome::Failed,
        },
    ];
    let errs = check_set(&adds, &names(&["b", "x"])).unwrap_err();
    let whats: Vec<&str> = errs.iter().map(|v| v.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "acknowledged create lost (1)",
            "failed create applied (1)",
            "object never created (1)"
        ]
    );
}

#[test]
fn monotonic_follower_reads_pass() {
    let allowed = names(&["a", "b", "c"]);
    let reads = [names(&[]), names(&["a"]), names(&["a", "c"])];
    check_monotonic_set_reads(&reads, &allowed).unwrap();
}

#[test]
fn follower_read_going_backwards_is_rejected() {
    let allowed = names(&["a", "b", "c"]);
    let reads = [names(&["a", "b"]), names(&["a"])];
    let v = check_monotonic_set_reads(&reads, &allowed).unwrap_err();
    assert!(v.what.starts_with("follower read went backwards"), "{v}");
    assert!(v.ops[0].contains("\"b\""), "{v}");
}

#[test]
fn follower_showing_an_object_never_created_is_rejected() {
    let allowed = names(&["a"]);
    let reads = [names(&["a", "z"])];
    let v = check_monotonic_set_reads(&reads, &allowed).unwrap_err();
    assert!(
        v.what
            .starts_with("follower showed an object never created"),
        "{v}"
    );
}

#[test]
fn stale_follower_register_values_pass() {
    let written = names(&["a", "b"]);
    let reads = [None, Some("b".to_string()), Some("a".to_string())];
    check_register_values_seen(&reads, &written, None).unwrap();
    let reads = [Some("init".to_string()), Some("a".to_string())];
    check_register_values_seen(&reads, &written, Some("init")).unwrap();
}

#[test]
fn follower_register_value_never_written_is_rejected() {
    let written = names(&["a"]);
    let reads = [Some("a".to_string()), Some("failed".to_string())];
    let v = check_register_values_seen(&reads, &written, None).unwrap_err();
    assert!(v.what.starts_with("follower showed a value never written"));
    assert_eq!(v.ops, ["read #1 returned \"failed\""]);
}

/// xorshift64: deterministic and good enough to shuffle schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs `clients` clients against a real register: every operation takes
/// effect at a random instant inside its interval (unknown writes possibly
/// much later, or never), so the history is linearizable by construction.
fn simulate(seed: u64, clients: usize, total: usize) -> Vec<RegEvent> {
    let mut rng = Rng(seed);
    let mut history = Vec::with_capacity(total);
    let mut effects: Vec<(u64, usize)> = Vec::new();
    for c in 0..clients {
        let mut t = rng.below(MS);
        for k in 0..total / clients {
            let invoke = t + rng.below(2 * MS);
            let latency = MS / 10 + rng.below(5 * MS);
            let complete = invoke + latency;
            let at = invoke + rng.below(latency + 1);
            let roll = rng.below(100);
            let (op, outcome, effect) = if rng.below(10) < 3 {
                let op = RegOp::Write(format!("c{c}-{k}"));
                if roll < 2 {
                    (op, Outcome::Failed, None)
                } else if roll < 6 {
                    let late = invoke + rng.below(latency + 50 * MS);
                    (op, Outcome::Unknown, (roll < 4).then_some(late))
                } else {
                    (op, Outcome::Ok, Some(at))
                }
            } else if roll < 3 {
                (RegOp::Read(None), Outcome::Unknown, None)
            } else {
                (RegOp::Read(None), Outcome::Ok, Some(at))
            };
            if let Some(at) = effect {
                effects.push((at, history.len()));
            }
            history.push(RegEvent {
                client: c,
                invoke,
                complete,
                op,
                outcome,
            });
            t = complete;
        }
    }
    effects.sort_unstable();
    let mut value: Option<String> = None;
    for (_, i) in effects {
        match &mut history[i].op {
            RegOp::Write(v) => value = Some(v.clone()),
            RegOp::Read(got) => got.clone_from(&value),
        }
    }
    history
}

#[test]
fn perf_random_valid_history_of_20000_ops_is_accepted() {
    let history = simulate(0x9e37_79b9_7f4a_7c15, 5, 20_000);
    let start = Instant::now();
    let stats = check_register(&history, None).unwrap_or_else(|v| panic!("{v}"));
    println!("20000 ops checked in {:?}: {stats:?}", start.elapsed());
    assert!(stats.unknown_kept > 0, "{stats:?}");
}

#[test]
fn perf_random_history_with_injected_stale_read_is_rejected() {
    let mut history = simulate(42, 5, 20_000);
    let first_write = history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .filter_map(|e| match &e.op {
            RegOp::Write(v) => Some((e.invoke, v.clone())),
            RegOp::Read(_) => None,
        })
        .min()
        .map(|(_, v)| v)
        .unwrap();
    let late_read = history
        .iter_mut()
        .filter(|e| e.outcome == Outcome::Ok && matches!(e.op, RegOp::Read(_)))
        .max_by_key(|e| e.invoke)
        .unwrap();
    late_read.op = RegOp::Read(Some(first_write));
    let start = Instant::now();
    let v = rejected(&history, None);
    println!("rejected in {:?}: {v}", start.elapsed());
    assert!(v.what.starts_with("stale read"), "{v}");
}

#[test]
fn random_history_with_swapped_reads_is_rejected_by_the_search() {
    // Two reads that see the last two values in the wrong order, overlapping
    // their writes so that the precise pre-checks cannot tell.
    let mut history = simulate(7, 5, 5_000);
    let end = history.iter().map(|e| e.complete).max().unwrap() + MS;
    history.extend([
        ev(9, 0, 0, RegOp::Write("x".into()), Outcome::Ok),
        ev(10, 0, 0, RegOp::Write("y".into()), Outcome::Ok),
        ev(11, 0, 0, RegOp::Read(Some("y".into())), Outcome::Ok),
        ev(12, 0, 0, RegOp::Read(Some("x".into())), Outcome::Ok),
    ]);
    let n = history.len();
    for (i, (from, to)) in [(0, 10), (0, 10), (20, 30), (40, 50)]
        .into_iter()
        .enumerate()
    {
        history[n - 4 + i].invoke = end + from * MS;
        history[n - 4 + i].complete = end + to * MS;
    }
    let v = rejected(&history, None);
    assert!(v.what.starts_with("no linearization"), "{v}");
}

/// Decides linearizability straight from the definition, trying every order,
/// for cross-checking the search on tiny histories.
fn brute_force(history: &[RegEvent], initial: Option<&str>) -> bool {
    let ops: Vec<&RegEvent> = history
        .iter()
        .filter(|e| {
            matches!(
                (&e.op, e.outcome),
                (_, Outcome::Ok) | (RegOp::Write(_), Outcome::Unknown)
            )
        })
        .collect();
    let required: u32 = ops
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == Outcome::Ok)
        .fold(0, |m, (i, _)| m | 1 << i);

    fn go(ops: &[&RegEvent], required: u32, used: u32, value: Option<&str>) -> bool {
        if used & required == required {
            return true;
        }
        for (i, op) in ops.iter().enumerate() {
            if used & 1 << i != 0 {
                continue;
            }
            // Every Ok op that completed before this one started goes first.
            let blocked = ops.iter().enumerate().any(|(j, p)| {
                used & 1 << j == 0 && p.outcome == Outcome::Ok && p.complete < op.invoke
            });
            if blocked {
                continue;
            }
            let next = match &op.op {
                RegOp::Write(v) => Some(v.as_str()),
                RegOp::Read(got) if got.as_deref() == value => value,
                RegOp::Read(_) => continue,
            };
            if go(ops, required, used | 1 << i, next) {
                return true;
            }
        }
        false
    }
    go(&ops, required, 0, initial)
}

#[test]
fn search_agrees_with_brute_force_on_small_random_histories() {
    let mut rng = Rng(12345);
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..4_000 {
        let n = 2 + rng.below(6) as usize;
        let is_write: Vec<bool> = (0..n).map(|_| rng.below(2) == 0).collect();
        let written: Vec<usize> = (0..n).filter(|&i| is_write[i]).collect();
        let history: Vec<RegEvent> = (0..n)
            .map(|i| {
                let from = rng.below(20);
                let to = from + rng.below(8);
                let outcome = match rng.below(10) {
                    0 => Outcome::Failed,
                    1 | 2 => Outcome::Unknown,
                    _ => Outcome::Ok,
                };
                let op = if is_write[i] {
                    RegOp::Write(format!("v{i}"))
                } else {
                    // Only values some write produces: reads of anything else
                    // are trivially rejected by the pre-checks.
                    let j = rng.below(written.len() as u64 + 1) as usize;
                    RegOp::Read(written.get(j).map(|w| format!("v{w}")))
                };
                RegEvent {
                    client: i,
                    invoke: from,
                    complete: to,
                    op,
                    outcome,
                }
            })
            .collect();
        let expected = brute_force(&history, None);
        let got = check_register(&history, None);
        assert_eq!(
            got.is_ok(),
            expected,
            "case {case}: {history:#?}\nchecker: {got:?}"
        );
        if expected {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    println!("{accepted} accepted, {rejected} rejected");
    assert!(accepted > 500 && rejected > 500);
}
