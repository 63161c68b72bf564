//! An orderly shutdown (SIGTERM) stops every background task, waits for each, and only then
//! stops Raft.

use std::time::Instant;

use crate::zone::{allocate, Zone, DEADLINE};

/// The background tasks of a server in a zone that run until shutdown.
const TASKS: &[&str] = &[
    "state-logger",
    "membership",
    "retention",
    "hooks",
    "monitor",
    "scheduler",
];

#[test]
fn sigterm_stops_every_background_task_before_raft() {
    let mut zone = Zone::bootstrap(1);
    allocate(&zone.servers[0].client(), "before-shutdown").unwrap();

    eprintln!("--- SIGTERM the only server");
    let asked = Instant::now();
    zone.servers[0].stop();
    let took = asked.elapsed();
    assert!(took < DEADLINE, "the shutdown took {took:?}");

    let log = std::fs::read_to_string(zone.servers[0].log_path()).unwrap();
    // The log holds every start of the server (solo first): read the last shutdown only.
    let last = log
        .rfind("shutting down")
        .unwrap_or_else(|| panic!("no shutdown in the log:\n{log}"));
    let shutdown = &log[last..];
    let line_of = |needle: &str| {
        shutdown
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no \"{needle}\" after the shutdown:\n{shutdown}"))
    };
    let tasks_done = line_of("background tasks stopped");
    for task in TASKS {
        let stopped = shutdown
            .lines()
            .position(|l| l.contains("task stopped") && l.contains(&format!("task=\"{task}\"")))
            .unwrap_or_else(|| panic!("task {task} not reported stopped:\n{shutdown}"));
        assert!(stopped < tasks_done, "{shutdown}");
    }
    assert!(tasks_done < line_of("Raft stopped"), "{shutdown}");
    assert!(
        !shutdown.contains("did not stop in time"),
        "a task had to be aborted:\n{shutdown}"
    );
}
