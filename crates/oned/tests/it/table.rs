//! The method table decides routing, not method names: on a follower cut off from its leader
//! (no quorum left), every read-kind method is answered from the local database and every
//! write-kind one goes to the leader (so it fails for want of one), never run locally.

use std::thread;

use oned::api::method::{self, Kind};
use xmlrpc::Value;

use crate::zone::Zone;

/// Parameters that every method accepts the types of, or answers with a local fault: what
/// matters is where the call is answered, not what it answers.
fn params() -> Vec<Value> {
    vec![Value::Int(0), Value::Int(0), Value::Int(0)]
}

/// A routing failure: the server had to reach a leader and could not.
fn needed_a_leader(message: &str) -> bool {
    message.contains("Cannot process request")
}

#[test]
fn issue_11_reads_stay_local_and_writes_go_to_the_leader_for_every_method_of_the_table() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    zone.wait_caught_up();
    let survivor = (leader + 1) % 3;
    for i in (0..3).filter(|&i| i != survivor) {
        zone.servers[i].kill();
    }
    let client = zone.servers[survivor].client();

    let (writes, reads): (Vec<&method::Method>, Vec<&method::Method>) =
        method::all().partition(|m| m.kind == Kind::Write);
    for m in &reads {
        let answer = client.call_xml(m.name, params());
        let text = format!("{answer:?}");
        assert!(
            !needed_a_leader(&text),
            "{} is a {:?} method but needed a leader: {text}",
            m.name,
            m.kind
        );
    }
    // Each write waits for a leader a bounded time: ask them many at once, within the
    // server's limit of calls in flight from one address (MAX_REQUESTS_PER_ADDRESS, 128).
    let answers: Vec<(&str, String)> = writes
        .chunks(100)
        .flat_map(|chunk| {
            thread::scope(|s| {
                let calls: Vec<_> = chunk
                    .iter()
                    .map(|m| {
                        let client = client.clone();
                        s.spawn(move || (m.name, format!("{:?}", client.call(m.name, params()))))
                    })
                    .collect();
                calls
                    .into_iter()
                    .map(|c| c.join().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (name, text) in answers {
        assert!(
            needed_a_leader(&text),
            "{name} is a write but was answered without a leader: {text}"
        );
    }
}
