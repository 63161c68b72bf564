//! Leader reads (`X-OneHA-Read: leader`) served by followers: a follower asks the leader for a
//! read index, applies up to it and answers from its own database, so it sees every write the
//! leader acknowledged before the read, without passing the read on. With no leader left, such
//! a read is refused with OpenNebula's words, as a write is.

use std::time::{Duration, Instant};

use cli::xml::Element;
use cli::Client;
use xmlrpc::Value;

use crate::zone::{allocate, one_error, Server, Zone, INTERNAL};

fn counter(s: &Server, name: &str) -> u64 {
    s.metric(name) as u64
}

fn reg(client: &Client, id: i64) -> Result<Option<String>, cli::CallError> {
    let xml = client.call_xml("one.user.info", vec![Value::Int(id as i32)])?;
    let user = Element::parse(&xml).unwrap().expect("USER").unwrap();
    Ok(user
        .child("TEMPLATE")
        .and_then(|t| t.child("REG"))
        .map(|e| e.text.clone()))
}

fn set_reg(client: &Client, id: i64, value: &str) {
    client
        .call(
            "one.user.update",
            vec![
                Value::Int(id as i32),
                Value::String(format!("REG = \"{value}\"")),
                Value::Int(1),
            ],
        )
        .unwrap();
}

fn leader_reads(s: &Server) -> Client {
    s.client().with_header("X-OneHA-Read", "leader")
}

#[test]
fn a_leader_read_through_either_follower_sees_the_write_acknowledged_just_before() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let id = allocate(&zone.servers[leader].client(), "linear").unwrap();
    let forwarded_before: Vec<u64> = followers
        .iter()
        .map(|&f| counter(&zone.servers[f], "oneha_forwarded_total"))
        .collect();
    let writer = zone.servers[leader].client();
    let via: Vec<Client> = followers
        .iter()
        .map(|&f| leader_reads(&zone.servers[f]))
        .collect();

    eprintln!("--- write on the leader, read at once through a follower, 60 rounds");
    for n in 0..60 {
        let value = format!("v{n}");
        set_reg(&writer, id, &value);
        let got = reg(&via[n % 2], id).unwrap();
        assert_eq!(got, Some(value), "round {n}, follower {}", followers[n % 2]);
    }

    eprintln!("--- the followers answered those reads themselves");
    for (k, &f) in followers.iter().enumerate() {
        let s = &zone.servers[f];
        assert!(
            counter(s, "oneha_follower_reads_total") >= 30,
            "server {f}:\n{}",
            s.scrape_metrics()
        );
        assert!(counter(s, "oneha_read_index_asked_total") >= 1);
        assert_eq!(
            counter(s, "oneha_forwarded_total"),
            forwarded_before[k],
            "server {f} forwarded none of them"
        );
    }
    assert!(counter(&zone.servers[leader], "oneha_read_index_served_total") >= 60);
}

/// Readers that share read index calls each still see their own latest write.
#[test]
fn concurrent_leader_reads_on_followers_each_see_their_own_latest_write() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let ids: Vec<i64> = (0..8)
        .map(|t| allocate(&zone.servers[leader].client(), &format!("reader{t}")).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for (t, &id) in ids.iter().enumerate() {
            let writer = zone.servers[leader].client();
            let reader = leader_reads(&zone.servers[followers[t % 2]]);
            scope.spawn(move || {
                for n in 0..15 {
                    let value = format!("t{t}-{n}");
                    set_reg(&writer, id, &value);
                    assert_eq!(reg(&reader, id).unwrap(), Some(value), "reader {t}");
                }
            });
        }
    });
    let reads: u64 = followers
        .iter()
        .map(|&f| counter(&zone.servers[f], "oneha_follower_reads_total"))
        .sum();
    assert!(reads >= 120, "{reads} reads answered by followers");
}

#[test]
fn a_leader_read_on_a_follower_without_a_leader_is_refused() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    let other = (0..3).find(|&i| i != leader && i != survivor).unwrap();
    let id = allocate(&zone.servers[leader].client(), "orphan").unwrap();
    zone.wait_caught_up();
    let strict = leader_reads(&zone.servers[survivor]);
    assert_eq!(
        reg(&strict, id).unwrap(),
        None,
        "served while the zone is whole"
    );

    eprintln!("--- kill the leader and the other follower: no leader can be elected");
    zone.servers[other].kill();
    zone.servers[leader].kill();
    let started = Instant::now();
    let (code, message) = one_error(reg(&strict, id));
    eprintln!(
        "leader read without a leader answered in {} ms: {message}",
        started.elapsed().as_millis()
    );
    assert_eq!(code, INTERNAL, "{message}");
    assert!(message.starts_with("[one.user.info]"), "{message}");
    assert!(
        message.contains("Cannot process request, no leader found")
            || message.contains("Cannot process request, oned cluster in election mode"),
        "{message}"
    );
    // Bounded: the wait for a new leader, not a hang.
    assert!(started.elapsed() < Duration::from_secs(20));

    eprintln!("--- a plain read is still served from the survivor's database");
    assert_eq!(reg(&zone.servers[survivor].client(), id).unwrap(), None);
}

/// The read index call is a peer call: over TLS it needs the zone's certificates like the rest.
#[test]
fn a_leader_read_through_a_follower_sees_the_latest_write_over_tls() {
    let ca = std::sync::Arc::new(testkit::tls::TestCa::new("OneHA zone CA"));
    let zone = Zone::bootstrap_custom(3, None, Some(ca.setup()));
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    assert!(zone.servers[follower].endpoint().starts_with("https://"));
    let id = allocate(&zone.servers[leader].client(), "tls-linear").unwrap();
    let writer = zone.servers[leader].client();
    let via = leader_reads(&zone.servers[follower]);
    for n in 0..10 {
        let value = format!("tls{n}");
        set_reg(&writer, id, &value);
        assert_eq!(reg(&via, id).unwrap(), Some(value), "round {n}");
    }
}

/// `readindex` is a peer call: a client, even one with a valid account, that posts to it
/// without the zone key's signature is refused before the leader runs a quorum round for it.
#[test]
fn a_read_index_asked_without_the_zone_key_is_refused() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let s = &zone.servers[leader];
    let url = format!(
        "http://{}:{}/raft/readindex.v{}",
        s.host,
        s.port,
        consensus::log_format::FORMAT
    );
    let asked_before = counter(s, "oneha_read_index_served_total");
    let refused = ureq::post(&url)
        .set("x-oneha-source", "1")
        .send_bytes(s.session().as_bytes());
    match refused {
        Err(ureq::Error::Status(403, resp)) => {
            let body = resp.into_string().unwrap();
            assert!(body.contains("missing or malformed x-oneha-"), "{body}");
        }
        other => panic!("an unsigned readindex was not refused: {other:?}"),
    }
    assert_eq!(
        counter(s, "oneha_read_index_served_total"),
        asked_before,
        "the leader served a read index to an unsigned caller"
    );
}
