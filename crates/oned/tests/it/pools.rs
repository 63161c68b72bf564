//! Bounded memory of pool calls (issue 10, point 2): a pool call reads only the rows its caller
//! will see, so its memory follows the answer, not the table. Measured on a real follower's
//! `VmHWM` (peak resident set) from `/proc/<pid>/status`, reset first through `clear_refs`.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{allocate, Zone};

const MIB: u64 = 1 << 20;
/// What 20 concurrent pool calls answering about 1 KB each may add to a follower's resident set:
/// reading connections' page caches, threads' stacks and allocator arenas, never the table.
const POOL_CALLS_BOUND: u64 = 150 * MIB;
/// Templates of oneadmin's the ordinary user cannot see: one of 7 MiB (the largest a call
/// carries under the 8 MiB body limit), whose write is measured on its own, then 23 x 4 MiB:
/// 99 MiB in all.
const FIRST_SIZE: usize = 7 << 20;
const BIG_TEMPLATES: usize = 23;
const BIG_SIZE: usize = 4 << 20;
const CONCURRENT_CALLS: usize = 20;

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, `VmRSS`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    kb * 1024
}

/// Resets the process's peak resident set (`VmHWM`) to its current one (proc(5), clear_refs 5).
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

fn big_template(n: usize, size: usize) -> String {
    let mut t = String::with_capacity(size + 64);
    t.push_str(&format!("NAME = \"big-{n}\"\nDATA = \""));
    // Varied text, so nothing compresses it away.
    let mut x: u32 = n as u32 + 1;
    while t.len() < size {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        t.push(char::from(b'a' + ((x >> 16) % 26) as u8));
    }
    t.push_str("\"\n");
    t
}

#[test]
fn pool_calls_of_a_user_seeing_little_stay_small_on_a_follower_holding_much() {
    let zone = Zone::bootstrap(2);
    let leader = zone.leader();
    let follower = 1 - leader;
    let admin = zone.servers[leader].client();

    eprintln!("--- alice, an ordinary user, with one small template");
    allocate(&admin, "alice").unwrap();
    let alice_leader = zone.servers[leader].client_as("alice", "pw-alice");
    let mine = alice_leader
        .call(
            "one.template.allocate",
            vec![Value::String("NAME = mine\nCPU = 1\nMEMORY = 64".into())],
        )
        .unwrap()
        .as_i64()
        .unwrap();

    let leader_pid = zone.servers[leader].pid().unwrap();
    eprintln!("--- oneadmin stores a template of {FIRST_SIZE} bytes");
    let first = big_template(BIG_TEMPLATES, FIRST_SIZE);
    reset_peak(leader_pid);
    let leader_rss = status_bytes(leader_pid, "VmRSS");
    admin
        .call("one.template.allocate", vec![Value::String(first)])
        .unwrap();
    let leader_hwm = status_bytes(leader_pid, "VmHWM");
    eprintln!(
        "--- leader VmRSS before {} MiB, VmHWM during the write {} MiB (+{} MiB)",
        leader_rss / MIB,
        leader_hwm / MIB,
        leader_hwm.saturating_sub(leader_rss) / MIB
    );

    eprintln!("--- oneadmin stores {BIG_TEMPLATES} templates of {BIG_SIZE} bytes");
    let started = Instant::now();
    for n in 0..BIG_TEMPLATES {
        admin
            .call(
                "one.template.allocate",
                vec![Value::String(big_template(n, BIG_SIZE))],
            )
            .unwrap();
    }
    eprintln!(
        "--- writes took {:?}; leader VmHWM {} MiB",
        started.elapsed(),
        status_bytes(leader_pid, "VmHWM") / MIB
    );
    zone.wait_caught_up();

    eprintln!("--- {CONCURRENT_CALLS} concurrent one.templatepool.info as alice on the follower");
    let pid = zone.servers[follower].pid().unwrap();
    reset_peak(pid);
    let baseline = status_bytes(pid, "VmRSS");
    let barrier = Arc::new(Barrier::new(CONCURRENT_CALLS));
    let started = Instant::now();
    let calls: Vec<_> = (0..CONCURRENT_CALLS)
        .map(|_| {
            let client = zone.servers[follower].client_as("alice", "pw-alice");
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                client.call_xml(
                    "one.templatepool.info",
                    vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
                )
            })
        })
        .collect();
    let answers: Vec<String> = calls
        .into_iter()
        .map(|c| c.join().unwrap().unwrap())
        .collect();
    let peak = status_bytes(pid, "VmHWM");
    eprintln!(
        "--- calls took {:?}; follower VmRSS before {} MiB, VmHWM during {} MiB (+{} MiB)",
        started.elapsed(),
        baseline / MIB,
        peak / MIB,
        peak.saturating_sub(baseline) / MIB
    );

    for a in &answers {
        let pool = Element::parse(a).unwrap();
        let ids: Vec<&str> = pool
            .children_named("VMTEMPLATE")
            .map(|t| t.text_of("ID").unwrap())
            .collect();
        assert_eq!(ids, vec![mine.to_string().as_str()], "{a}");
        assert!(a.len() < 4096, "answer of {} bytes", a.len());
    }
    assert!(
        peak.saturating_sub(baseline) < POOL_CALLS_BOUND,
        "{CONCURRENT_CALLS} pool calls raised the follower's peak RSS from {} MiB to {} MiB \
         (bound: +{} MiB)",
        baseline / MIB,
        peak / MIB,
        POOL_CALLS_BOUND / MIB
    );

    eprintln!("--- oneadmin still sees every template, paged as before");
    let admin_follower = zone.servers[follower].client();
    let page = admin_follower
        .call_xml(
            "one.templatepool.info",
            vec![Value::Int(-2), Value::Int(1), Value::Int(-2)],
        )
        .unwrap();
    let pool = Element::parse(&page).unwrap();
    let names: Vec<&str> = pool
        .children_named("VMTEMPLATE")
        .map(|t| t.text_of("NAME").unwrap())
        .collect();
    assert_eq!(
        names,
        // Newest first (API_LIST_ORDER): the page skips big-22, the last one made.
        vec![
            format!("big-{}", BIG_TEMPLATES - 2),
            format!("big-{}", BIG_TEMPLATES - 3)
        ]
    );
}
