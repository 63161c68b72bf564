//! What one ordinary user with a valid account can do to a zone, tried as an attacker would
//! (issue 10): large writes, oversized requests, connection floods and slow senders. Each test
//! fails on the code before the fix and holds after it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli::{CallError, Client};
use xmlrpc::Value;

use crate::zone::{Zone, CALL_TIMEOUT, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// A non-admin user (group `users`): the default ACL lets it create templates.
fn ordinary_user(zone: &Zone, name: &str) -> Client {
    let admin = zone.servers[zone.leader()].client();
    admin
        .call(
            "one.user.allocate",
            vec![s(name), s("pw"), s(""), Value::Array(vec![])],
        )
        .unwrap();
    zone.servers[0].client_as(name, "pw")
}

/// The attack of issue 10: twelve concurrent `one.template.allocate` from a non-admin, each with
/// a 7 MiB attribute. Before the fix the proposer put them in one 58 MB entry that no
/// AppendEntries could carry within BROADCAST_TIMEOUT_MS: the zone stopped committing for good.
#[test]
fn large_template_writes_of_one_user_never_stall_the_zone() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let mallory = ordinary_user(&zone, "mallory");
    let blob = "x".repeat(7 << 20);
    let big_template = |i: usize| format!("NAME = \"big-{i}\"\nBLOB = \"{blob}\"\n");

    eprintln!("--- 12 concurrent 7 MiB templates from an ordinary user, small writes beside them");
    let admin = zone.servers[leader].client();
    let attacking = Arc::new(AtomicBool::new(true));
    let small_ok = Arc::new(AtomicUsize::new(0));
    let small = {
        let (attacking, small_ok, admin) = (attacking.clone(), small_ok.clone(), admin.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut i = 0;
            while attacking.load(Ordering::Relaxed) || i < 5 {
                let name = format!("bystander-{i}");
                match admin.call(
                    "one.user.allocate",
                    vec![s(&name), s("pw"), s(""), Value::Array(vec![])],
                ) {
                    Ok(_) => {
                        small_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
                i += 1;
            }
            failures
        })
    };
    let big: Vec<_> = (0..12)
        .map(|i| {
            let (mallory, text) = (mallory.clone(), big_template(i));
            std::thread::spawn(move || mallory.call("one.template.allocate", vec![s(&text)]))
        })
        .collect();
    let results: Vec<Result<Value, CallError>> =
        big.into_iter().map(|t| t.join().unwrap()).collect();
    attacking.store(false, Ordering::Relaxed);
    let small_failures = small.join().unwrap();
    eprintln!(
        "--- {} small writes went through beside the attack",
        small_ok.load(Ordering::Relaxed)
    );
    assert!(
        small_failures.is_empty(),
        "small writes failed during the attack: {small_failures:?}"
    );
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "7 MiB template {i} was not written: {r:?}");
    }
    zone.wait_caught_up();
    zone.wait_identical();

    eprintln!("--- a follower that missed large entries catches up by itself");
    let late = (zone.leader() + 1) % 3;
    zone.servers[late].stop();
    let leader_client = zone.servers[zone.leader()].client();
    for i in 12..15 {
        leader_client
            .call("one.template.allocate", vec![s(&big_template(i))])
            .unwrap();
    }
    zone.servers[late].start();
    zone.wait_caught_up();
    zone.wait_identical();
    zone.servers[zone.leader()]
        .client()
        .call(
            "one.user.allocate",
            vec![s("after"), s("pw"), s(""), Value::Array(vec![])],
        )
        .unwrap();
}

/// A request larger than MESSAGE_SIZE is refused with a clear fault before anything is read or
/// proposed, and the server goes on serving.
#[test]
fn a_request_over_message_size_is_refused_with_a_clear_error() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[(leader + 1) % 3].client();
    let text = format!("NAME = \"huge\"\nBLOB = \"{}\"\n", "y".repeat(9 << 20));
    match c.call("one.template.allocate", vec![s(&text)]) {
        Err(CallError::Fault { code, message, .. }) => {
            assert_eq!(code, -509, "{message}");
            assert!(message.contains("MESSAGE_SIZE"), "{message}");
        }
        other => panic!("a 9 MiB request must be refused, got {other:?}"),
    }
    let pool = c
        .call_xml(
            "one.templatepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains("huge"), "{pool}");
    c.call(
        "one.user.allocate",
        vec![s("still"), s("pw"), s(""), Value::Array(vec![])],
    )
    .unwrap();
}

/// Opens up to `n` connections from `source` (another loopback address, so the server sees a
/// distinct client) that send half a request head and then nothing: slowloris.
fn slow_connections(source: &str, target: SocketAddr, n: usize) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local: SocketAddr = format!("{source}:0").parse().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let conn = rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().ok()?;
            sock.bind(local).ok()?;
            let stream = tokio::time::timeout(Duration::from_secs(2), sock.connect(target))
                .await
                .ok()?
                .ok()?;
            let std = stream.into_std().ok()?;
            std.set_nonblocking(false).ok()?;
            Some(std)
        });
        // Out of descriptors in this test process: hold what we have.
        let Some(mut c) = conn else { break };
        let _ = c.write_all(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n");
        out.push(c);
    }
    out
}

/// Whether a connection is closed by the server (EOF or reset) within `within`.
fn closed_within(c: &TcpStream, within: Duration) -> bool {
    let _ = c.set_read_timeout(Some(within));
    let mut c = c;
    let mut buf = [0u8; 512];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// 2,000 slow or idle connections from one hostile address: the server holds at most
/// MAX_CONN_PER_ADDRESS of them, answers the rest with 503, closes the slow ones after TIMEOUT,
/// and meanwhile serves other clients and keeps its zone's heartbeats: no election, writes flow.
#[test]
fn connection_floods_and_slow_senders_are_bounded_and_the_zone_keeps_its_leader() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str(
            "TIMEOUT = 2\nKEEPALIVE_TIMEOUT = 2\nMAX_CONN_PER_ADDRESS = 100\nMAX_CONN = 400\n",
        );
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let term = zone.servers[leader].raft_status().unwrap().term;
    let admin = zone.servers[leader].client();
    let target: SocketAddr = format!("127.0.0.1:{}", zone.servers[leader].port)
        .parse()
        .unwrap();

    eprintln!("--- 2,000 slow connections from 127.0.0.2 and 127.0.0.3 to the leader");
    let started = Instant::now();
    let mut held: Vec<TcpStream> = slow_connections("127.0.0.2", target, 1000);
    held.extend(slow_connections("127.0.0.3", target, 1000));
    assert!(!held.is_empty());
    let refused = held
        .iter()
        .filter(|c| closed_within(c, Duration::from_millis(1)))
        .count();
    eprintln!(
        "--- {} connections opened, {refused} refused at once",
        held.len()
    );

    eprintln!("--- other clients are served and writes commit meanwhile");
    for i in 0..20 {
        admin
            .call(
                "one.user.allocate",
                vec![
                    s(&format!("during-{i}")),
                    s("pw"),
                    s(""),
                    Value::Array(vec![]),
                ],
            )
            .unwrap();
    }
    let follower = zone.servers[(leader + 1) % 3].client();
    follower.call_xml("one.userpool.info", vec![]).unwrap();

    eprintln!("--- the slow connections are closed after TIMEOUT");
    let open_after = held
        .iter()
        .filter(|c| !closed_within(c, Duration::from_millis(10)))
        .count();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut still_open = open_after;
    while still_open > 0 && Instant::now() < deadline {
        still_open = held
            .iter()
            .filter(|c| !closed_within(c, Duration::from_millis(5)))
            .count();
    }
    assert_eq!(
        still_open,
        0,
        "slow connections still open {:?} after they began",
        started.elapsed()
    );
    let now = zone.servers[leader].raft_status().unwrap();
    assert_eq!(
        now.state,
        crate::zone::LEADER,
        "the leader lost its leadership"
    );
    assert_eq!(now.term, term, "an election happened under the flood");
    let _ = CALL_TIMEOUT;
}

/// Sends a whole `/RPC2` call on `c` and returns the raw HTTP answer.
fn raw_call(c: &mut TcpStream, body: &str) -> String {
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

/// Calls that hold their slot (a body that never ends) count against MAX_REQUESTS_PER_ADDRESS:
/// past it, that address is told the server is busy, while other clients are served.
#[test]
fn calls_in_flight_are_limited_per_address() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf
            .push_str("TIMEOUT = 120\nMAX_REQUESTS_PER_ADDRESS = 10\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let target: SocketAddr = format!("127.0.0.1:{}", zone.servers[leader].port)
        .parse()
        .unwrap();
    let session = zone.servers[0].session();
    let call = xmlrpc::write_call(&xmlrpc::MethodCall {
        method: "one.userpool.info".into(),
        params: vec![s(&session)],
    });

    eprintln!("--- 30 calls from 127.0.0.2 whose bodies never end: 10 hold a slot, 20 are refused");
    let mut stalled = slow_connections("127.0.0.2", target, 30);
    assert_eq!(stalled.len(), 30);
    for c in &mut stalled {
        c.write_all(b"Content-Length: 100000\r\n\r\n<?xml").unwrap();
    }
    // Refusals come at once; the calls that hold a slot never answer while their body is open.
    let mut answers = vec![String::new(); stalled.len()];
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline
        && answers
            .iter()
            .filter(|a| a.contains("MAX_REQUESTS_PER_ADDRESS"))
            .count()
            < 20
    {
        for (c, answer) in stalled.iter().zip(answers.iter_mut()) {
            c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 4096];
            let mut r = c;
            if let Ok(n) = r.read(&mut buf) {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }
    let refused = answers
        .iter()
        .filter(|a| a.contains("MAX_REQUESTS_PER_ADDRESS") && a.contains("<fault>"))
        .count();
    let silent = answers.iter().filter(|a| a.is_empty()).count();
    assert_eq!(
        (silent, refused),
        (10, 20),
        "calls holding a slot, calls refused"
    );

    eprintln!("--- another address is served meanwhile");
    let mut other = TcpStream::connect(target).unwrap();
    let answer = raw_call(&mut other, &call);
    assert!(answer.contains("USER_POOL"), "{answer}");
    let now = zone.servers[leader].raft_status().unwrap();
    assert_eq!(now.state, crate::zone::LEADER);
}

/// One `one.vn.reserve` of a user's own /8: before the limit, SIZE = 2^24 built 16 million
/// guarded statements on the leader (gigabytes) and, had they replicated, 16 million rows on every
/// server in one apply. Now a call takes at most MAX_LEASES_PER_CALL addresses, as one statement.
#[test]
fn one_reservation_cannot_take_millions_of_addresses_in_one_call() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let mallory = ordinary_user(&zone, "mallory");
    let vn = admin
        .call(
            "one.vn.allocate",
            vec![s(
                "NAME = big\nVN_MAD = dummy\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 16777216 ]",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let me = mallory
        .call_xml("one.user.info", vec![Value::Int(-1)])
        .unwrap();
    let uid: i32 = me
        .split("<ID>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    admin
        .call(
            "one.vn.chown",
            vec![Value::Int(vn as i32), Value::Int(uid), Value::Int(-1)],
        )
        .unwrap();

    let err = mallory
        .call(
            "one.vn.reserve",
            vec![Value::Int(vn as i32), s("SIZE = 16777216\nNAME = all")],
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "Reservation SIZE 16777216 is above the 65536 addresses one call may take \
             (MAX_LEASES_PER_CALL in oned.conf)"
        ),
        "{msg}"
    );

    let res = mallory
        .call(
            "one.vn.reserve",
            vec![Value::Int(vn as i32), s("SIZE = 65536\nNAME = slash16")],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let body = admin
        .call_xml("one.vn.info", vec![Value::Int(vn as i32)])
        .unwrap();
    assert!(
        body.contains("<USED_LEASES>65536</USED_LEASES>"),
        "{}",
        &body[..2000.min(body.len())]
    );
    assert!(body.contains(&format!("<VNET>{res}</VNET>")));
    // The zone writes on at once.
    admin
        .call(
            "one.user.allocate",
            vec![s("after"), s("pw"), s(""), Value::Array(vec![])],
        )
        .unwrap();
}
