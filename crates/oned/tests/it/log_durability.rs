//! The log's durability on the write path (issue 16): the log append is fsynced before it counts
//! toward the quorum, while the committed index, the state database and the in-memory copy of
//! the newest entries are rebuilt from the log after a crash.

use crate::zone::{allocate, user_name, Zone, DEADLINE};

/// Clients writing at once, so that entries carry several writes and appends follow each
/// other closely.
const WRITERS: usize = 4;
const WRITES_EACH: usize = 10;

/// Every server SIGKILLed the moment the last write is acknowledged (no server had time to
/// store anything more than what acknowledged it), then started again: every acknowledged
/// write is served by every server.
#[test]
fn writes_acknowledged_just_before_every_server_is_killed_are_all_there_after_the_restart() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let clients: Vec<_> = (0..WRITERS)
        .map(|_| zone.servers[leader].client())
        .collect();
    let acked: Vec<(i64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(w, client)| {
                s.spawn(move || {
                    (0..WRITES_EACH)
                        .map(|k| {
                            let name = format!("durable-{w}-{k}");
                            (allocate(&client, &name).unwrap(), name)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    eprintln!("--- SIGKILL every server right after the last acknowledgement");
    for s in &mut zone.servers {
        s.kill();
    }
    for s in &mut zone.servers {
        s.spawn();
    }
    for s in &mut zone.servers {
        // Already spawned together: wait for /RPC2 without spawning again.
        s.wait_serving();
    }
    let leader = zone.leader();
    for (i, s) in zone.servers.iter().enumerate() {
        let client = s.client();
        for (id, name) in &acked {
            zone.wait_until(
                DEADLINE,
                &format!("server {i} serves user {id} ({name})"),
                || user_name(&client, *id).as_deref() == Some(name.as_str()),
            );
        }
    }

    eprintln!("--- the zone takes writes again, and a follower killed alone catches up");
    let follower = (leader + 1) % 3;
    zone.servers[follower].kill();
    let id = allocate(&zone.servers[leader].client(), "after-the-kill").unwrap();
    zone.servers[follower].start();
    let client = zone.servers[follower].client();
    zone.wait_until(DEADLINE, "the killed follower serves the new write", || {
        user_name(&client, id).as_deref() == Some("after-the-kill")
    });
    zone.wait_identical();
}
