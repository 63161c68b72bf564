//! `GET /metrics` on every server: Prometheus' text format, with Raft's figures read at scrape
//! time and counters that move with the zone's work.

use crate::zone::{allocate, Server, Zone, DEADLINE};

fn scrape(s: &Server) -> String {
    let resp = ureq::get(&format!("http://{}:{}/metrics", s.host, s.port))
        .call()
        .unwrap();
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    resp.into_string().unwrap()
}

/// The value of the sample named exactly `series` (with its labels), if the scrape has it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Every sample line is `name{labels} value`, with a number Prometheus reads.
fn assert_well_formed(text: &str) {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(
            v.parse::<f64>().is_ok() || v == "+Inf" || v == "NaN",
            "value of {line}"
        );
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            name.starts_with("oneha_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name of {line}"
        );
    }
}

const ALLOCATED_OK: &str =
    r#"oneha_rpc_duration_seconds_count{method="one.user.allocate",kind="write",outcome="ok"}"#;
const ALLOCATED_FORWARDED: &str = r#"oneha_rpc_duration_seconds_count{method="one.user.allocate",kind="write",outcome="forwarded"}"#;

#[test]
fn a_scrape_of_each_server_shows_the_zone_and_its_figures_move() {
    let zone = Zone::bootstrap(3);
    let l = zone.leader();
    let f = (0..3).find(|i| *i != l).unwrap();
    let leader_before = scrape(&zone.servers[l]);
    let follower_before = scrape(&zone.servers[f]);
    assert_well_formed(&leader_before);
    assert_well_formed(&follower_before);
    assert_eq!(
        must(&leader_before, r#"oneha_raft_state{state="leader"}"#),
        1.0
    );
    assert_eq!(
        must(&leader_before, r#"oneha_raft_state{state="follower"}"#),
        0.0
    );
    assert_eq!(
        must(&follower_before, r#"oneha_raft_state{state="follower"}"#),
        1.0
    );
    assert_eq!(
        must(&follower_before, "oneha_raft_leader_id"),
        zone.servers[l].id as f64
    );
    let peers = leader_before
        .lines()
        .filter(|l| l.starts_with("oneha_raft_replication_lag{peer="))
        .count();
    assert_eq!(
        peers, 2,
        "one lag per follower on the leader:\n{leader_before}"
    );

    let via = zone.servers[f].client();
    for i in 0..5 {
        allocate(&via, &format!("scraped-{i}")).unwrap();
    }

    let leader_after = scrape(&zone.servers[l]);
    let follower_after = scrape(&zone.servers[f]);
    assert!(must(&leader_after, ALLOCATED_OK) >= 5.0, "{leader_after}");
    assert!(
        must(&follower_after, ALLOCATED_FORWARDED) >= 5.0,
        "{follower_after}"
    );
    assert!(
        must(&follower_after, "oneha_forwarded_total")
            >= must(&follower_before, "oneha_forwarded_total") + 5.0
    );
    assert!(
        must(&leader_after, "oneha_raft_commit_index")
            >= must(&leader_before, "oneha_raft_commit_index") + 5.0
    );
    assert!(
        must(&leader_after, "oneha_proposer_batch_size_count")
            > must(&leader_before, "oneha_proposer_batch_size_count")
    );
    // Each write was answered by the leader's state database thread as its apply committed,
    // none through Raft's result (its record was still in memory when applied).
    const AT_APPLY: &str = "oneha_records_answered_at_apply_total";
    const BY_RAFT: &str = "oneha_records_answered_by_raft_total";
    assert!(
        must(&leader_after, AT_APPLY) >= must(&leader_before, AT_APPLY) + 5.0,
        "{leader_after}"
    );
    assert_eq!(
        must(&leader_after, BY_RAFT),
        must(&leader_before, BY_RAFT),
        "{leader_after}"
    );
    // Followers apply in the background: wait for the five records to reach this one.
    let applied_before = must(&follower_before, "oneha_applied_records_total");
    zone.wait_until(DEADLINE, "the follower's applied records to move", || {
        must(&scrape(&zone.servers[f]), "oneha_applied_records_total") >= applied_before + 5.0
    });
    assert!(must(&leader_after, "oneha_apply_duration_seconds_count") > 0.0);
    assert!(must(&leader_after, "oneha_elections_total") >= 1.0);
    assert_eq!(must(&leader_after, "oneha_leader_wins_total"), 1.0);
}
