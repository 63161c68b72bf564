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
    user_on(zone, 0, name)
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
                "NAME = big\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 16777216 ]",
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

/// `name`'s client on server `at`, once that server knows the user (a follower may not have
/// the leader's write yet).
fn user_on(zone: &Zone, at: usize, name: &str) -> Client {
    let c = zone.servers[at].client_as(name, "pw");
    zone.wait_until(DEADLINE, "the server knows the user", || {
        c.call_xml("one.user.info", vec![Value::Int(-1)]).is_ok()
    });
    c
}

// ---- Limits a user meets through the API: each refusal as the user sees it, nothing half-done.

/// The error code and message of a refused call.
fn refused<T: std::fmt::Debug>(r: Result<T, CallError>) -> (i32, String) {
    crate::zone::one_error(r)
}

const ACTION: i32 = 0x0800;
const XML_RPC_API: i32 = 0x1000;
const INTERNAL: i32 = 0x2000;

/// How many times `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// `one.vn.info` on a network filled by one reservation of MAX_LEASES_PER_CALL addresses lists
/// at most MAX_LEASES_PER_ANSWER leases (USED_LEASES still counts all of them), and so do the
/// pools' ALLOCATED: the answer no longer grows with what users take. Read through a follower.
#[test]
fn vn_info_lists_at_most_max_leases_per_answer_leases() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str("MAX_LEASES_PER_ANSWER = 100\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let follower = zone.servers[(leader + 1) % 3].client();
    let vn = admin
        .call(
            "one.vn.allocate",
            vec![s(
                "NAME = big\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 65536 ]\n\
                 AR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 10 ]",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let res = admin
        .call(
            "one.vn.reserve",
            vec![Value::Int(vn), s("SIZE = 65536\nNAME = slash16\nAR_ID = 0")],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    admin
        .call(
            "one.vn.reserve",
            vec![Value::Int(vn), s("SIZE = 3\nNAME = small\nAR_ID = 1")],
        )
        .unwrap();

    let mut body = String::new();
    zone.wait_until(DEADLINE, "the follower has both reservations", || {
        body = follower
            .call_xml("one.vn.info", vec![Value::Int(vn)])
            .unwrap();
        body.contains("<USED_LEASES>65539</USED_LEASES>")
    });
    assert_eq!(count(&body, "<LEASE>"), 100, "leases listed");
    assert!(body.contains("<USED_LEASES>65536</USED_LEASES>"));
    // The second range's count is exact, its list empty: the cap was spent on the first.
    assert!(
        body.contains("<USED_LEASES>3</USED_LEASES><LEASES></LEASES>"),
        "{}",
        &body[body.len().saturating_sub(1500)..]
    );
    assert!(body.contains(&format!("<VNET>{res}</VNET>")));
    assert!(body.len() < 64 << 10, "answer of {} bytes", body.len());

    let pool = follower
        .call_xml(
            "one.vnpool.info",
            vec![Value::Int(-2), Value::Int(vn), Value::Int(vn)],
        )
        .unwrap();
    let allocated = pool
        .split("<ALLOCATED><![CDATA[")
        .skip(1)
        .map(|a| a.split("]]>").next().unwrap_or(""))
        .map(|a| a.split_whitespace().count() / 2)
        .sum::<usize>();
    assert_eq!(allocated, 100, "leases in the pool's ALLOCATED");
    assert!(pool.len() < 64 << 10, "pool answer of {} bytes", pool.len());
}

/// `one.vmpool.info`'s query (5th parameter) is matched against every VM read: longer than
/// 1024 characters it is refused; 1024 is served.
#[test]
fn a_vm_pool_query_over_1024_characters_is_refused() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let mallory = ordinary_user(&zone, "mallory");
    let follower = user_on(&zone, (leader + 1) % 3, "mallory");
    let pool = |c: &Client, q: &str| {
        c.call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
                s(q),
            ],
        )
    };
    let (code, msg) = refused(pool(&follower, &"x".repeat(1025)));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.vmpool.info] The search query is longer than 1024 characters"
        )
    );
    let (code, _) = refused(pool(&mallory, &format!("NAME={}", "y".repeat(1020))));
    assert_eq!(code, XML_RPC_API);
    let body = pool(&follower, &"x".repeat(1024)).unwrap();
    assert_eq!(body, "<VM_POOL></VM_POOL>");
}

/// `one.vmpool.infoset` takes at most 10,000 distinct ids in one call.
#[test]
fn infoset_takes_at_most_ten_thousand_ids() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let _ = ordinary_user(&zone, "mallory");
    let c = user_on(&zone, (leader + 1) % 3, "mallory");
    let ids = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let (code, msg) = refused(c.call_xml(
        "one.vmpool.infoset",
        vec![s(&ids(10_001)), Value::Bool(false)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.vmpool.infoset] Too many VM ids: at most 10000 in one call"
        )
    );
    // Repeated ids count once.
    let body = c
        .call_xml(
            "one.vmpool.infoset",
            vec![
                s(&format!("{},{}", ids(10_000), ids(10_000))),
                Value::Bool(false),
            ],
        )
        .unwrap();
    assert_eq!(body, "<VM_POOL></VM_POOL>");
}

fn sched_actions(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "SCHED_ACTION = [ ACTION = \"reboot\", TIME = \"+{}\" ]\n",
                86400 + i
            )
        })
        .collect()
}

/// A VM holds at most 128 scheduled actions: a new VM with 129 is not created, and
/// `one.vm.schedadd` past 128 is refused, the list unchanged.
#[test]
fn a_vm_holds_at_most_128_scheduled_actions() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let mallory = ordinary_user(&zone, "mallory");
    let admin = zone.servers[leader].client();
    let template = |n: usize| {
        format!(
            "NAME = many-{n}\nCPU = 0.1\nMEMORY = 16\n{}",
            sched_actions(n)
        )
    };

    let (code, msg) = refused(mallory.call("one.vm.allocate", vec![s(&template(129))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.allocate] A VM holds at most 128 scheduled actions"
        )
    );
    let pool = admin
        .call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-2),
            ],
        )
        .unwrap();
    assert!(!pool.contains("many-129"), "{pool}");

    let vm = mallory
        .call("one.vm.allocate", vec![s(&template(128))])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let (code, msg) = refused(mallory.call(
        "one.vm.schedadd",
        vec![Value::Int(vm), s(&sched_actions(1))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.schedadd] A VM holds at most 128 scheduled actions"
        )
    );
    let body = admin.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    assert_eq!(count(&body, "<SCHED_ACTION>"), 128);
}

/// A security group rule names at most 15 ports (OpenNebula's iptables multiport limit).
#[test]
fn a_security_group_rule_names_at_most_15_ports() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let _ = ordinary_user(&zone, "mallory");
    let c = user_on(&zone, (leader + 1) % 3, "mallory");
    let rule = |n: usize| {
        let ports = (1..=n).map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        format!(
            "NAME = sg-{n}\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = \"{ports}\" ]"
        )
    };
    let (code, msg) = refused(c.call("one.secgroup.allocate", vec![s(&rule(16))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.secgroup.allocate] Not more than 15 ports can be specified in a RULE"
        )
    );
    let pool = c
        .call_xml(
            "one.secgrouppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains("sg-16"), "{pool}");
    c.call("one.secgroup.allocate", vec![s(&rule(15))]).unwrap();
}

/// A VM group is created with at most 32 roles.
#[test]
fn a_vm_group_is_created_with_at_most_32_roles() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let _ = ordinary_user(&zone, "mallory");
    let c = user_on(&zone, (leader + 1) % 3, "mallory");
    let group = |n: usize| {
        let roles: String = (0..n)
            .map(|i| format!("ROLE = [ NAME = r{i} ]\n"))
            .collect();
        format!("NAME = g{n}\n{roles}")
    };
    let (code, msg) = refused(c.call("one.vmgroup.allocate", vec![s(&group(33))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vmgroup.allocate] Maximum number of roles in a VM Group reached"
        )
    );
    let pool = c
        .call_xml(
            "one.vmgrouppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains("<NAME>g33</NAME>"), "{pool}");
    c.call("one.vmgroup.allocate", vec![s(&group(32))]).unwrap();
}

/// An address range holds at most 2^24 addresses (a /8).
#[test]
fn an_address_range_is_at_most_a_slash_8() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[(leader + 1) % 3].client();
    let net = |size: u64| {
        format!("NAME = n{size}\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = {size} ]")
    };
    // As OpenNebula's driver answer refuses a bad range: the network is made, in ERROR,
    // without it.
    let big = admin
        .call("one.vn.allocate", vec![s(&net((1 << 24) + 1))])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let body = admin
        .call_xml("one.vn.info", vec![Value::Int(big)])
        .unwrap();
    assert!(body.contains("<STATE>5</STATE>"), "{body}");
    assert!(
        body.contains(" : Wrong SIZE for address range]]></ERROR>"),
        "{body}"
    );
    assert_eq!(count(&body, "<AR>"), 0, "{body}");
    let vn = admin
        .call("one.vn.allocate", vec![s(&net(1 << 24))])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    zone.wait_until(DEADLINE, "the network is READY", || {
        admin
            .call_xml("one.vn.info", vec![Value::Int(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    let (code, msg) = refused(admin.call(
        "one.vn.add_ar",
        vec![Value::Int(vn), s("AR = [ TYPE = ETHER, SIZE = 16777217 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (INTERNAL, "[one.vn.add_ar] Wrong SIZE for address range")
    );
    let body = admin.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
    assert_eq!(count(&body, "<AR>"), 1);
}

/// A backup job holds at most 4096 VMs and 128 scheduled actions.
#[test]
fn a_backup_job_holds_at_most_4096_vms_and_128_actions() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[(leader + 1) % 3].client();
    let vms = (0..4097)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (code, msg) = refused(c.call(
        "one.backupjob.allocate",
        vec![s(&format!("NAME = huge\nBACKUP_VMS = \"{vms}\""))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.backupjob.allocate] A backup job holds at most 4096 VMs"
        )
    );
    let (code, msg) = refused(c.call(
        "one.backupjob.allocate",
        vec![s(&format!("NAME = busy\n{}", sched_actions(129)))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.backupjob.allocate] A backup job holds at most 128 scheduled actions"
        )
    );
    let pool = c
        .call_xml(
            "one.backupjobpool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains("huge") && !pool.contains("busy"), "{pool}");
}

/// A network has at most 1024 address ranges, however they come: at allocate, by
/// `one.vn.add_ar`, or through `one.vn.update`.
#[test]
fn a_network_has_at_most_1024_address_ranges() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let net = |name: &str, n: usize| {
        let ars: String = (0..n)
            .map(|_| "AR = [ TYPE = ETHER, SIZE = 1 ]\n".to_string())
            .collect();
        format!("NAME = {name}\nVN_MAD = dummy\nBRIDGE = br0\n{ars}")
    };
    let (code, msg) = refused(w.call("one.vn.allocate", vec![s(&net("wide", 1025))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vn.allocate] A virtual network has at most 1024 address ranges"
        )
    );
    let pool = admin
        .call_xml(
            "one.vnpool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains("wide"), "{pool}");

    let vn = w
        .call("one.vn.allocate", vec![s(&net("full", 1024))])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    zone.wait_until(DEADLINE, "the network is READY", || {
        admin
            .call_xml("one.vn.info", vec![Value::Int(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    let (code, msg) = refused(w.call(
        "one.vn.add_ar",
        vec![Value::Int(vn), s("AR = [ TYPE = ETHER, SIZE = 1 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vn.add_ar] A virtual network has at most 1024 address ranges"
        )
    );
    // `one.vn.update` leaves the ranges alone, as OpenNebula's: the AR given are dropped.
    admin
        .call(
            "one.vn.update",
            vec![Value::Int(vn), s(&net("full", 1100)), Value::Int(0)],
        )
        .unwrap();
    let body = admin.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
    assert_eq!(count(&body, "<AR>"), 1024);
}

/// A VM has at most 1024 NICs and 1024 DISKs: one `one.vm.allocate` cannot take more
/// addresses than that (MAX_LEASES_PER_CALL would not see them), and attaching one more is
/// refused with nothing taken.
#[test]
fn a_vm_has_at_most_1024_nics_and_1024_disks() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let _ = ordinary_user(&zone, "mallory");
    let mallory = user_on(&zone, (leader + 1) % 3, "mallory");
    let vn = admin
        .call(
            "one.vn.allocate",
            vec![s(
                "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4096 ]",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    admin
        .call("one.vn.chmod", {
            let mut p = vec![Value::Int(vn)];
            p.extend([1, 1, 0, 1, 0, 0, 1, 0, 0].map(Value::Int));
            p
        })
        .unwrap();
    zone.wait_until(DEADLINE, "the network is READY", || {
        admin
            .call_xml("one.vn.info", vec![Value::Int(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    let vm = |name: &str, nics: usize, disks: usize| {
        let mut t = format!("NAME = {name}\nCPU = 0.1\nMEMORY = 16\n");
        for _ in 0..nics {
            t.push_str(&format!("NIC = [ NETWORK_ID = {vn} ]\n"));
        }
        // Virtio disks: OpenNebula's own limits count only `hd` (4) and `sd` (256) disks.
        for _ in 0..disks {
            t.push_str("DISK = [ TYPE = fs, SIZE = 1, DEV_PREFIX = vd ]\n");
        }
        t
    };
    let (code, msg) = refused(mallory.call("one.vm.allocate", vec![s(&vm("nics", 1025, 0))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.allocate] A VM has at most 1024 NIC and NIC_ALIAS attributes, \
             the template has 1025"
        )
    );
    let (code, msg) = refused(mallory.call("one.vm.allocate", vec![s(&vm("disks", 0, 1025))]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.allocate] A VM has at most 1024 DISK attributes, the template has 1025"
        )
    );
    let body = admin.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
    assert!(
        body.contains("<USED_LEASES>0</USED_LEASES>"),
        "nothing leased"
    );

    let full = mallory
        .call("one.vm.allocate", vec![s(&vm("full", 1024, 1024))])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let body = admin.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
    assert!(body.contains("<USED_LEASES>1024</USED_LEASES>"));
    // Attaching needs a running or powered-off VM: put it on a host and power it off.
    admin
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap();
    let state = |vm: i32| admin.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM runs", || {
        state(full).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    admin
        .call("one.vm.action", vec![s("poweroff"), Value::Int(full)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || {
        state(full).contains("<STATE>8</STATE><LCM_STATE>0</LCM_STATE>")
    });
    let (code, msg) = refused(mallory.call(
        "one.vm.attachnic",
        vec![Value::Int(full), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.attachnic] A VM has at most 1024 NIC and NIC_ALIAS attributes, \
             the template has 1025"
        )
    );
    let (code, msg) = refused(mallory.call(
        "one.vm.attach",
        vec![Value::Int(full), s("DISK = [ TYPE = fs, SIZE = 1 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.attach] A VM has at most 1024 DISK attributes, the template has 1025"
        )
    );
    let body = state(full);
    assert_eq!(count(&body, "<NIC>"), 1024);
    assert_eq!(count(&body, "<DISK>"), 1024);
    let net = admin.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
    assert!(net.contains("<USED_LEASES>1024</USED_LEASES>"));
}

/// A dummy host and a running VM of mallory's with `extra` in its template; its id.
fn running_vm(zone: &Zone, admin: &Client, mallory: &Client, extra: &str) -> i32 {
    admin
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap();
    let vm = mallory
        .call(
            "one.vm.allocate",
            vec![s(&format!("CPU = 0.1\nMEMORY = 16\n{extra}"))],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    zone.wait_until(DEADLINE, "the VM runs", || {
        vm_body(admin, vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    vm
}

fn vm_body(c: &Client, vm: i32) -> String {
    c.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap()
}

/// The ids listed in the VM's BACKUP_IDS.
fn backup_ids(body: &str) -> Vec<i32> {
    body.split("<BACKUP_IDS>")
        .nth(1)
        .and_then(|r| r.split("</BACKUP_IDS>").next())
        .unwrap_or("")
        .split("</ID>")
        .filter_map(|p| p.trim_start_matches("<ID>").parse().ok())
        .collect()
}

/// A VM keeps at most KEEP_LAST backups (and never more than 1024): the oldest backup image
/// is deleted in the transaction that records the newest. Reaching the 1024 ceiling itself
/// takes 1025 backups, each a driver pass of the scheduler (300 ms): 5 minutes, too long for
/// this suite; the ceiling is the same code path with KEEP_LAST = 1024.
#[test]
fn a_vm_keeps_at_most_keep_last_backups() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let _ = ordinary_user(&zone, "mallory");
    let mallory = user_on(&zone, (leader + 1) % 3, "mallory");
    let ds = admin
        .call(
            "one.datastore.allocate",
            vec![
                s("NAME = backups\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = localhost\nRSYNC_USER = oneadmin\nTM_MAD = -"),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    admin
        .call("one.datastore.chmod", {
            let mut p = vec![Value::Int(ds)];
            p.extend([1, 1, 0, 1, 0, 0, 1, 0, 0].map(Value::Int));
            p
        })
        .unwrap();
    let vm = running_vm(
        &zone,
        &admin,
        &mallory,
        "DISK = [ TYPE = fs, SIZE = 8 ]\nBACKUP_CONFIG = [ KEEP_LAST = 2, BACKUP_VOLATILE = YES ]",
    );
    let mut taken = Vec::new();
    for n in 1..=3usize {
        admin
            .call(
                "one.vm.backup",
                vec![Value::Int(vm), Value::Int(ds), Value::Bool(false)],
            )
            .unwrap();
        zone.wait_until(DEADLINE, "the backup is done", || {
            let b = vm_body(&admin, vm);
            b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
                && backup_ids(&b).last().is_some_and(|id| !taken.contains(id))
        });
        let ids = backup_ids(&vm_body(&admin, vm));
        taken.push(*ids.last().unwrap());
        assert_eq!(ids.len(), n.min(2), "{ids:?}");
    }
    let ids = backup_ids(&vm_body(&admin, vm));
    assert_eq!(ids, taken[1..].to_vec());
    let (code, _) = refused(admin.call_xml("one.image.info", vec![Value::Int(taken[0])]));
    assert_eq!(code, 0x0400, "the oldest backup image is gone");
    admin
        .call_xml("one.image.info", vec![Value::Int(taken[1])])
        .unwrap();
}

/// A VM snapshot's name is at most 1024 bytes; a longer one is refused and no snapshot made.
#[test]
fn a_snapshot_name_is_at_most_1024_bytes() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let _ = ordinary_user(&zone, "mallory");
    let mallory = user_on(&zone, (leader + 1) % 3, "mallory");
    let vm = running_vm(&zone, &admin, &mallory, "");
    let (code, msg) = refused(mallory.call(
        "one.vm.snapshotcreate",
        vec![Value::Int(vm), s(&"n".repeat(1025))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.snapshotcreate] Snapshot name is too long")
    );
    let body = vm_body(&admin, vm);
    assert!(!body.contains("<SNAPSHOT>"), "{body}");
    assert!(body.contains("<LCM_STATE>3</LCM_STATE>"));
    mallory
        .call(
            "one.vm.snapshotcreate",
            vec![Value::Int(vm), s(&"n".repeat(1024))],
        )
        .unwrap();
}

/// `one.vmgroup.roleadd` lets a group reach at most 512 roles.
#[test]
fn a_vm_group_reaches_at_most_512_roles() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let _ = ordinary_user(&zone, "mallory");
    let mallory = user_on(&zone, leader, "mallory");
    let roles: String = (0..32)
        .map(|i| format!("ROLE = [ NAME = r{i} ]\n"))
        .collect();
    let g = mallory
        .call(
            "one.vmgroup.allocate",
            vec![s(&format!("NAME = g\n{roles}"))],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    for i in 32..512 {
        mallory
            .call(
                "one.vmgroup.roleadd",
                vec![Value::Int(g), s(&format!("ROLE = [ NAME = r{i} ]"))],
            )
            .unwrap();
    }
    let follower = user_on(&zone, (leader + 1) % 3, "mallory");
    let (code, msg) = refused(follower.call(
        "one.vmgroup.roleadd",
        vec![Value::Int(g), s("ROLE = [ NAME = one_more ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vmgroup.roleadd] Maximum number of roles in a VM Group reached"
        )
    );
    let body = mallory
        .call_xml("one.vmgroup.info", vec![Value::Int(g)])
        .unwrap();
    assert_eq!(count(&body, "<ROLE>"), 512);
    assert!(!body.contains("one_more"));
}

/// What each connection received within `within` (empty for none).
fn answers_of(conns: &[TcpStream], within: Duration) -> Vec<String> {
    conns
        .iter()
        .map(|c| {
            let _ = c.set_read_timeout(Some(within));
            let mut buf = [0u8; 4096];
            let mut r = c;
            match r.read(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) => String::new(),
            }
        })
        .collect()
}

/// Past MAX_CONN connections, all addresses together, a new connection is answered `503`
/// with the reason (after a reserve kept for the zone's own servers); the zone keeps its leader,
/// and once the connections close, clients are served again.
#[test]
fn connections_past_max_conn_are_refused_until_some_close() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf
            .push_str("TIMEOUT = 120\nMAX_CONN = 20\nMAX_CONN_PER_ADDRESS = 1000\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let term = zone.servers[leader].raft_status().unwrap().term;
    let target: SocketAddr = format!("127.0.0.1:{}", zone.servers[leader].port)
        .parse()
        .unwrap();
    let session = zone.servers[0].session();
    let call = xmlrpc::write_call(&xmlrpc::MethodCall {
        method: "one.userpool.info".into(),
        params: vec![s(&session)],
    });

    eprintln!("--- 100 slow connections from 127.0.0.2 to a leader of MAX_CONN = 20");
    let mut held = slow_connections("127.0.0.2", target, 100);
    assert_eq!(held.len(), 100);
    let answers = answers_of(&held, Duration::from_millis(200));
    let refused = answers
        .iter()
        .filter(|a| {
            a.contains("503") && a.contains("too many connections to this server (MAX_CONN = 20)")
        })
        .count();
    assert!(refused > 0, "{answers:?}");
    assert!(
        answers.iter().all(|a| !a.contains("MAX_CONN_PER_ADDRESS")),
        "{answers:?}"
    );

    eprintln!("--- another address is refused too: the limit counts every address");
    // The other servers of the zone hold some of the leader's places and may close one at any
    // moment; it goes to whoever connects next. Whenever another address was served, the slow
    // address takes the freed places back before it asks again.
    let mut answer = String::new();
    for _ in 0..10 {
        let mut other = TcpStream::connect(target).unwrap();
        answer = raw_call(&mut other, &call);
        if !answer.contains("USER_POOL") {
            break;
        }
        held.extend(slow_connections("127.0.0.2", target, 5));
    }
    assert!(
        answer.contains("503") && answer.contains("too many connections"),
        "{answer}"
    );

    eprintln!("--- the slow connections close: clients are served again, by the same leader");
    drop(held);
    zone.wait_until(DEADLINE, "a client is served", || {
        let mut c = TcpStream::connect(target).unwrap();
        raw_call(&mut c, &call).contains("USER_POOL")
    });
    let now = zone.servers[leader].raft_status().unwrap();
    assert_eq!((now.state, now.term), (crate::zone::LEADER, term));
}

/// Past MAX_REQUESTS calls in flight, all addresses together, a call is told the server is
/// busy, whatever its address.
#[test]
fn calls_in_flight_are_limited_in_total() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf
            .push_str("TIMEOUT = 120\nMAX_REQUESTS = 10\nMAX_REQUESTS_PER_ADDRESS = 100\n");
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

    eprintln!("--- 10 calls from 127.0.0.2 whose bodies never end hold every slot");
    let mut stalled = slow_connections("127.0.0.2", target, 10);
    assert_eq!(stalled.len(), 10);
    for c in &mut stalled {
        c.write_all(b"Content-Length: 100000\r\n\r\n<?xml").unwrap();
    }
    eprintln!("--- a call from another address is refused at once, naming MAX_REQUESTS");
    let mut answer = String::new();
    zone.wait_until(DEADLINE, "the stalled calls hold their slots", || {
        // A stalled call that came while another call (a follower's, the harness's) held a
        // slot was refused: it holds none, so another one takes its place.
        let refused: Vec<usize> = answers_of(&stalled, Duration::from_millis(5))
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_empty())
            .map(|(i, _)| i)
            .collect();
        for i in refused {
            let mut fresh = slow_connections("127.0.0.2", target, 1);
            if let Some(mut c) = fresh.pop() {
                c.write_all(b"Content-Length: 100000\r\n\r\n<?xml").unwrap();
                stalled[i] = c;
            }
        }
        let mut other = TcpStream::connect(target).unwrap();
        answer = raw_call(&mut other, &call);
        answer.contains("(MAX_REQUESTS)")
    });
    assert!(
        answer.contains("<fault>") && answer.contains("server busy: 10 calls in progress"),
        "{answer}"
    );
    assert!(answers_of(&stalled, Duration::from_millis(20))
        .iter()
        .all(String::is_empty));

    eprintln!("--- the stalled calls end: calls are served again");
    drop(stalled);
    zone.wait_until(DEADLINE, "a client is served", || {
        let mut c = TcpStream::connect(target).unwrap();
        raw_call(&mut c, &call).contains("USER_POOL")
    });
}

/// Reads one HTTP answer (head and Content-Length body) from `c`.
fn read_answer(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One connection carries at most KEEPALIVE_MAX_CONN calls: the last answer says
/// `Connection: close` and the server closes it.
#[test]
fn a_connection_carries_at_most_keepalive_max_conn_calls() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str("KEEPALIVE_MAX_CONN = 3\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let port = zone.servers[(leader + 1) % 3].port;
    let session = zone.servers[0].session();
    let body = xmlrpc::write_call(&xmlrpc::MethodCall {
        method: "one.userpool.info".into(),
        params: vec![s(&session)],
    });
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for n in 1..=3 {
        c.write_all(request.as_bytes()).unwrap();
        let answer = read_answer(&mut c);
        assert!(answer.contains("USER_POOL"), "call {n}: {answer}");
        let closes = answer
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("connection: close");
        assert_eq!(closes, n == 3, "call {n}: {answer}");
    }
    assert!(closed_within(&c, Duration::from_secs(5)));
}

/// A connection idle past KEEPALIVE_TIMEOUT is closed by the server.
#[test]
fn an_idle_connection_is_closed_after_keepalive_timeout() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str("KEEPALIVE_TIMEOUT = 1\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let port = zone.servers[(leader + 1) % 3].port;
    let session = zone.servers[0].session();
    let body = xmlrpc::write_call(&xmlrpc::MethodCall {
        method: "one.userpool.info".into(),
        params: vec![s(&session)],
    });
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    assert!(read_answer(&mut c).contains("USER_POOL"));
    let idle = Instant::now();
    assert!(closed_within(&c, Duration::from_secs(10)), "still open");
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        idle.elapsed()
    );
}

/// A change larger than any request (a 6 MiB template instantiated with 6 MiB more) is refused
/// before it is proposed, within MESSAGE_SIZE + 1 MiB; no VM is made, and writes go on.
#[test]
fn a_change_over_message_size_and_a_mib_is_refused_before_it_is_proposed() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let _ = ordinary_user(&zone, "mallory");
    // On the leader: forwarding 12 MiB through a follower only adds time on a loaded machine.
    let mallory = user_on(&zone, leader, "mallory");
    let blob = |c: char| c.to_string().repeat(6 << 20);
    let t = mallory
        .call(
            "one.template.allocate",
            vec![s(&format!(
                "NAME = big\nCPU = 0.1\nMEMORY = 16\nBLOB = \"{}\"",
                blob('a')
            ))],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let (code, msg) = refused(mallory.call(
        "one.template.instantiate",
        vec![
            Value::Int(t),
            s("twelve"),
            Value::Bool(true),
            s(&format!("BLOB2 = \"{}\"", blob('b'))),
            Value::Bool(false),
        ],
    ));
    assert_eq!(code, INTERNAL, "{msg}");
    assert!(
        msg.starts_with(
            "[one.template.instantiate] Cannot process request, the change is too large to \
             replicate: "
        ) && msg.ends_with("the limit is 9437184 bytes"),
        "{msg}"
    );
    let pool = admin
        .call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-2),
            ],
        )
        .unwrap();
    assert_eq!(pool, "<VM_POOL></VM_POOL>");
    admin
        .call(
            "one.user.allocate",
            vec![s("after"), s("pw"), s(""), Value::Array(vec![])],
        )
        .unwrap();
}

/// An object's name is at most 128 characters (`PoolObjectSQL::name_is_valid`).
#[test]
fn an_object_name_is_at_most_128_characters() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let _ = ordinary_user(&zone, "mallory");
    let mallory = user_on(&zone, (leader + 1) % 3, "mallory");
    let long = "n".repeat(129);
    let (code, msg) = refused(mallory.call(
        "one.template.allocate",
        vec![s(&format!("NAME = {long}\nCPU = 1"))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.template.allocate] Invalid NAME, max length is 128 chars"
        )
    );
    let t = mallory
        .call(
            "one.template.allocate",
            vec![s(&format!("NAME = {}\nCPU = 1", &long[..128]))],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let (code, msg) = refused(mallory.call("one.template.rename", vec![Value::Int(t), s(&long)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.template.rename] Invalid NAME, max length is 128 chars"
        )
    );
    let body = mallory
        .call_xml("one.template.info", vec![Value::Int(t)])
        .unwrap();
    assert!(
        body.contains(&format!("<NAME>{}</NAME>", &long[..128])),
        "{body}"
    );
}

/// One user's VMs that no host can take, however many, never keep the scheduler from placing
/// another user's VM: it used to look only at the 16 oldest PENDING VMs, so 16 VMs too large
/// for any host stopped every placement in the zone for good.
#[test]
fn vms_no_host_can_take_never_starve_the_others() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let host = admin
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap();
    zone.wait_until(DEADLINE, "the host is monitored", || {
        admin
            .call_xml("one.host.info", vec![host.clone()])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });
    let mallory = ordinary_user(&zone, "mallory");
    // More than the scheduler reads in one period: every window of them is unplaceable.
    for _ in 0..600 {
        mallory
            .call("one.vm.allocate", vec![s("CPU = 64\nMEMORY = 16")])
            .unwrap();
    }
    let alice = ordinary_user(&zone, "alice");
    let vm = alice
        .call("one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")])
        .unwrap();
    zone.wait_until(DEADLINE, "alice's VM runs", || {
        admin
            .call_xml("one.vm.info", vec![vm.clone()])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    let first = admin.call_xml("one.vm.info", vec![Value::Int(0)]).unwrap();
    assert!(first.contains("<STATE>1</STATE>"), "still PENDING: {first}");
}

/// NICs in auto mode make the scheduler read the networks and try each against each host, and
/// NETWORK = YES writes 22 variables per NIC: a user's VMs of 1,024 auto NICs (more than there
/// are networks, so they never run) neither stall the scheduler nor hold back another user's
/// VM, and a VM of 1,024 leased NICs gets its 22,528 context variables at once.
#[test]
fn vms_of_a_thousand_auto_nics_never_hold_back_the_others() {
    let zone = Zone::bootstrap(1);
    let admin = zone.servers[0].client();
    let host = admin
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap();
    zone.wait_until(DEADLINE, "the host is monitored", || {
        admin
            .call_xml("one.host.info", vec![host.clone()])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });
    for n in 0..4 {
        let vn = admin
            .call(
                "one.vn.allocate",
                vec![s(&format!(
                    "NAME = net{n}\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.{n}.0.1, SIZE = 2000 ]"
                ))],
            )
            .unwrap();
        zone.wait_until(DEADLINE, "the network is READY", || {
            admin
                .call_xml("one.vn.info", vec![vn.clone()])
                .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
        });
    }
    let mallory = ordinary_user(&zone, "mallory");
    let auto = "NIC = [ NETWORK_MODE = auto ]\n".repeat(1024);
    for _ in 0..8 {
        mallory
            .call(
                "one.vm.allocate",
                vec![s(&format!(
                    "CPU = 0.1\nMEMORY = 16\nCONTEXT = [ NETWORK = YES ]\n{auto}"
                ))],
            )
            .unwrap();
    }
    let leased = "NIC = [ NETWORK_ID = 0 ]\n".repeat(1024);
    let many = mallory
        .call(
            "one.vm.allocate",
            vec![
                s(&format!(
                    "CPU = 0.1\nMEMORY = 16\nCONTEXT = [ NETWORK = YES ]\n{leased}"
                )),
                Value::Bool(true),
            ],
        )
        .unwrap();
    let body = admin.call_xml("one.vm.info", vec![many]).unwrap();
    let want = "<ETH1023_IP><![CDATA[10.0.4.0]]></ETH1023_IP>";
    let eth = body
        .find("<ETH1023_IP>")
        .map(|at| &body[at..(at + want.len()).min(body.len())]);
    assert_eq!(eth, Some(want));
    let alice = ordinary_user(&zone, "alice");
    let vm = alice
        .call(
            "one.vm.allocate",
            vec![s("CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto ]")],
        )
        .unwrap();
    zone.wait_until(DEADLINE, "alice's VM runs", || {
        admin
            .call_xml("one.vm.info", vec![vm.clone()])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    let first = admin.call_xml("one.vm.info", vec![Value::Int(0)]).unwrap();
    assert!(first.contains("<STATE>1</STATE>"), "still PENDING: {first}");
    assert!(first.contains("limit of free leases reached"), "{first}");
}

/// Each resize of a placed VM closes its history record and opens a copy, as OpenNebula's
/// `close_cp_history`, as fast as its owner calls: a read of the VM, and its `one.vm.info`,
/// carry its latest 1024 records, accounting every one.
#[test]
fn a_vm_read_carries_at_most_its_latest_1024_history_records() {
    let zone = Zone::bootstrap(1);
    let admin = zone.servers[0].client();
    let host = admin
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let mallory = ordinary_user(&zone, "mallory");
    let vm = mallory
        .call("one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let state = |st: i32, lcm: i32| {
        admin
            .call_xml("one.vm.info", vec![Value::Int(vm)])
            .is_ok_and(|b| b.contains(&format!("<STATE>{st}</STATE><LCM_STATE>{lcm}</LCM_STATE>")))
    };
    zone.wait_until(DEADLINE, "the VM runs", || state(3, 3));
    mallory
        .call("one.vm.action", vec![s("poweroff"), Value::Int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || state(8, 0));
    let resizes = 1100;
    for n in 0..resizes {
        let cpu = if n % 2 == 0 { "0.2" } else { "0.1" };
        mallory
            .call(
                "one.vm.resize",
                vec![
                    Value::Int(vm),
                    s(&format!("CPU = {cpu}\nMEMORY = 16")),
                    Value::Bool(false),
                ],
            )
            .unwrap();
    }
    let body = admin.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    assert_eq!(count(&body, "<HISTORY>"), 1024);
    assert!(
        body.contains(&format!(
            "<SEQ>{resizes}</SEQ><HOSTNAME>node</HOSTNAME><HID>{host}</HID>"
        )),
        "the latest record is there"
    );
    let records = admin
        .call_xml(
            "one.vmpool.accounting",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert_eq!(count(&records, "<HISTORY>"), resizes + 1);
}

/// The leader reads groups for VMs that left them 1,024 at a time: one user's 1,030 groups
/// holding VMs must not keep a DONE VM of a later group in its role for good.
#[test]
fn a_pile_of_vm_groups_never_keeps_a_done_vm_in_a_later_groups_role() {
    let zone = Zone::bootstrap(1);
    let mallory = ordinary_user(&zone, "mallory");
    let admin = zone.servers[0].client();
    let id = |v: Value| v.as_i64().unwrap() as i32;
    let group_with_vm = |c: &Client, n: usize| {
        let g = id(c
            .call(
                "one.vmgroup.allocate",
                vec![s(&format!("NAME = pile-{n}\nROLE = [ NAME = r ]"))],
            )
            .unwrap());
        let vm = id(c
            .call(
                "one.vm.allocate",
                vec![
                    s(&format!(
                        "CPU = 0.1\nMEMORY = 16\nVMGROUP = [ VMGROUP_ID = {g}, ROLE = r ]"
                    )),
                    Value::Bool(true),
                ],
            )
            .unwrap());
        (g, vm)
    };
    for n in 0..1030 {
        group_with_vm(&mallory, n);
    }
    let (g, vm) = group_with_vm(&admin, 9999);
    let role_vms = || {
        let body = admin
            .call_xml("one.vmgroup.info", vec![Value::Int(g)])
            .unwrap();
        body.contains(&format!("<VMS><![CDATA[{vm}]]></VMS>"))
    };
    assert!(role_vms(), "the VM joined its role");
    admin
        .call("one.vm.action", vec![s("terminate"), Value::Int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the DONE VM leaves its role", || !role_vms());
}
