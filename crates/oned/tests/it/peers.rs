//! Server-to-server calls prove they hold the zone key without sending it (issue 10).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::zone::*;

/// A fake "server": a plain HTTP listener that records every byte it receives and answers every
/// request `200 OK` with eight zero bytes, bincode for `Ok(Success)` to an AppendEntries: a
/// forged ack, which would get it promoted to voter if answers were not signed.
struct FakeServer {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r, q) = (received.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (r, q) = (r.clone(), q.clone());
                std::thread::spawn(move || serve_fake(stream, &r, &q));
            }
        });
        FakeServer {
            port,
            received,
            requests,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/RPC2", self.port)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn serve_fake(mut stream: TcpStream, received: &Mutex<Vec<u8>>, requests: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        received.lock().unwrap().extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            buf.drain(..end + 4 + len);
            requests
                .lock()
                .unwrap()
                .push(head.lines().next().unwrap_or("").to_string());
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\0\0\0\0\0\0\0\0";
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    }
}

/// `voters:[...]` of each "membership changed" line of a server's log.
fn voter_sets(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("membership changed"))
        .filter_map(|l| {
            let start = l.find("voters:[")?;
            let end = l[start..].find("], learners")? + start;
            Some(l[start..end].to_string())
        })
        .collect()
}

#[test]
fn issue_10_a_fake_server_added_to_the_zone_never_receives_the_zone_key() {
    let zone = Zone::bootstrap(3);
    let key = std::fs::read_to_string(zone.servers[0].location().join("var/.one/one_key"))
        .unwrap()
        .trim()
        .to_string();
    assert!(key.len() >= 16, "zone key {key:?}");
    let fake = FakeServer::start();
    let leader = zone.leader();

    eprintln!("--- one.zone.addserver pointing at a fake server");
    zone.onezone_ok(
        leader,
        &[
            "server-add",
            "0",
            "--name",
            "fake",
            "--rpc",
            &fake.endpoint(),
        ],
    );
    zone.wait_until(
        DEADLINE,
        "the leader sends the fake server AppendEntries",
        || {
            fake.requests
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.starts_with("POST /raft/append"))
                .count()
                >= 5
        },
    );

    eprintln!("--- the zone keeps committing writes");
    let client = zone.servers[zone.leader()].client();
    for n in 0..20 {
        allocate(&client, &format!("with-fake-{n}")).unwrap();
    }
    zone.wait_caught_up();

    eprintln!("--- no byte the fake received holds the key, and it never became a voter");
    let received = fake.received.lock().unwrap().clone();
    assert!(received.len() > 1000, "{} bytes received", received.len());
    assert_eq!(
        find(&received, key.as_bytes()),
        None,
        "the zone key was sent"
    );
    let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(!text.contains("x-oneha-zone-key"));
    assert!(text.contains("x-oneha-mac"));
    let log = std::fs::read_to_string(zone.servers[zone.leader()].log_path()).unwrap();
    let fake_port = format!(":{}/RPC2", fake.port);
    let sets = voter_sets(&log);
    assert!(!sets.is_empty(), "no membership lines in the leader's log");
    for voters in sets {
        assert!(
            !voters.contains(&fake_port),
            "the fake server's forged acks made it a voter: {voters}"
        );
    }
    assert!(
        log.contains("refused a peer's answer"),
        "the leader logs the refused answers"
    );
}
