//! The scheduler and a VM's own placement terms: AUTOMATIC_REQUIREMENTS written at allocate,
//! SCHED_REQUIREMENTS keeping hosts (and one that does not parse left PENDING with
//! OpenNebula's SCHED_MESSAGE), SCHED_RANK choosing among them, a `one.vm.update` of the
//! requirements taking effect; and `resched` with `LIVE_RESCHEDS = 1` moving a VM live
//! (RUNNING -> MIGRATE -> RUNNING) only to a host its requirements keep. Written through a
//! follower of a three-server zone, read through the leader.

use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn body(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![i(oid)]).unwrap_or_default()
}

/// Hosts `names`, allocated through `w`, once `c` sees them MONITORED.
fn monitored_hosts(zone: &Zone, w: &cli::Client, c: &cli::Client, names: &[&str]) -> Vec<i32> {
    let hosts: Vec<i32> = names
        .iter()
        .map(|n| {
            ok(
                w,
                "one.host.allocate",
                vec![s(n), s("dummy"), s("dummy"), i(-1)],
            )
        })
        .collect();
    for h in &hosts {
        zone.wait_until(DEADLINE, "the host is monitored", || {
            body(c, "one.host.info", *h).contains("<STATE>2</STATE>")
        });
    }
    hosts
}

/// The text of the first `<tag>` of `body`, CDATA or not.
fn elem(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    let v = &body[start..end];
    Some(
        v.strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(v)
            .to_string(),
    )
}

/// The host a RUNNING VM runs on.
fn running_on(c: &cli::Client, vm: i32) -> Option<i32> {
    let b = body(c, "one.vm.info", vm);
    if !b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>") {
        return None;
    }
    let last = b.rsplit("<HISTORY>").next()?;
    elem(last, "HID")?.parse().ok()
}

fn vm(extra: &str) -> Value {
    s(&format!("CPU = 0.1\nMEMORY = 16\n{extra}"))
}

/// Waits until PENDING VM `v` carries a SCHED_MESSAGE ending in `message`; checks it is
/// still PENDING.
fn wait_message(zone: &Zone, c: &cli::Client, v: i32, message: &str) {
    zone.wait_until(DEADLINE, "the VM has the scheduler's message", || {
        elem(&body(c, "one.vm.info", v), "SCHED_MESSAGE").is_some_and(|m| m.ends_with(message))
    });
    let b = body(c, "one.vm.info", v);
    assert!(b.contains("<STATE>1</STATE>"), "still PENDING: {b}");
}

#[test]
fn the_scheduler_keeps_requirements_and_ranks_hosts() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let hosts = monitored_hosts(&zone, &w, &c, &["node-a", "node-b", "node-c"]);
    assert_eq!(hosts, [0, 1, 2]);

    eprintln!("--- SCHED_REQUIREMENTS = \"ID = 2\" lands on host 2, not the least loaded");
    let on_2 = ok(
        &w,
        "one.vm.allocate",
        vec![vm("SCHED_REQUIREMENTS = \"ID = 2\"")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || running_on(&c, on_2).is_some());
    assert_eq!(running_on(&c, on_2), Some(2));
    let b = body(&c, "one.vm.info", on_2);
    assert!(
        b.contains(
            "<AUTOMATIC_REQUIREMENTS><![CDATA[!(PIN_POLICY = PINNED)]]></AUTOMATIC_REQUIREMENTS>"
        ),
        "{b}"
    );
    assert!(
        b.contains("<SCHED_REQUIREMENTS><![CDATA[ID = 2]]></SCHED_REQUIREMENTS>"),
        "{b}"
    );
    assert!(
        !b.contains("AUTOMATIC_DS_REQUIREMENTS"),
        "no cluster named: {b}"
    );

    eprintln!("--- SCHED_RANK = PRIORITY picks the host with the highest PRIORITY");
    ok(&w, "one.host.update", vec![i(1), s("PRIORITY = 10"), i(1)]);
    zone.wait_until(DEADLINE, "the leader has the host's PRIORITY", || {
        body(&c, "one.host.info", 1).contains("<PRIORITY><![CDATA[10]]></PRIORITY>")
    });
    let ranked = ok(&w, "one.vm.allocate", vec![vm("SCHED_RANK = \"PRIORITY\"")]);
    zone.wait_until(DEADLINE, "the ranked VM runs", || {
        running_on(&c, ranked).is_some()
    });
    assert_eq!(
        running_on(&c, ranked),
        Some(1),
        "host 0 is the least loaded"
    );
    eprintln!("--- without a rank: the least loaded host, as OpenNebula's striping policy");
    let plain = ok(&w, "one.vm.allocate", vec![vm("")]);
    zone.wait_until(DEADLINE, "the plain VM runs", || {
        running_on(&c, plain).is_some()
    });
    assert_eq!(running_on(&c, plain), Some(0));

    eprintln!("--- requirements no host meets: PENDING with OpenNebula's message");
    let none = ok(
        &w,
        "one.vm.allocate",
        vec![vm("SCHED_REQUIREMENTS = \"NAME = \\\"db-*\\\"\"")],
    );
    wait_message(
        &zone,
        &c,
        none,
        "Cannot dispatch VM: No host meets SCHED_REQUIREMENTS",
    );

    eprintln!("--- requirements that do not parse: PENDING with the parser's error");
    let bad = ok(
        &w,
        "one.vm.allocate",
        vec![vm("SCHED_REQUIREMENTS = \"ID = = 2\"")],
    );
    wait_message(
        &zone,
        &c,
        bad,
        "Cannot dispatch VM: Error in SCHED_REQUIREMENTS: '!(PIN_POLICY = PINNED) & ( ID = = 2 )', \
         error: syntax error, unexpected '=' at line 1, columns 33:34",
    );

    eprintln!("--- one.vm.update of the requirements: the VM is placed, its message gone");
    // Quoted: OpenNebula's scanner ends a bare name at `-`.
    ok(
        &w,
        "one.vm.update",
        vec![
            i(none),
            s("SCHED_REQUIREMENTS = \"NAME = \\\"node-c\\\"\""),
            i(0),
        ],
    );
    zone.wait_until(DEADLINE, "the updated VM runs", || {
        running_on(&c, none).is_some()
    });
    assert_eq!(running_on(&c, none), Some(2));
    let b = body(&c, "one.vm.info", none);
    assert!(!b.contains("SCHED_MESSAGE"), "cleared on deploy: {b}");
}

#[test]
fn resched_with_live_rescheds_migrates_live_within_the_requirements() {
    let zone = Zone::bootstrap_custom(
        3,
        None,
        Some(Box::new(|_, s| {
            s.extra_conf.push_str("LIVE_RESCHEDS = 1\n")
        })),
    );
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    monitored_hosts(&zone, &w, &c, &["node-a", "node-b"]);
    let pinned = ok(
        &w,
        "one.vm.allocate",
        vec![vm("SCHED_REQUIREMENTS = \"ID = 0\"")],
    );
    zone.wait_until(DEADLINE, "the pinned VM runs", || {
        running_on(&c, pinned).is_some()
    });
    let free = ok(
        &w,
        "one.vm.allocate",
        vec![vm("SCHED_REQUIREMENTS = \"ID = 0\"")],
    );
    zone.wait_until(DEADLINE, "the second VM runs", || {
        running_on(&c, free).is_some()
    });
    assert_eq!(running_on(&c, pinned), Some(0));
    assert_eq!(running_on(&c, free), Some(0));
    // The second may go anywhere now.
    ok(
        &w,
        "one.vm.update",
        vec![i(free), s("SCHED_REQUIREMENTS = \"ID > -1\""), i(0)],
    );

    // MIGRATE lasts one scheduler period, which a poll may miss: a state hook records it.
    let migrating = ok(
        &c,
        "one.hook.allocate",
        vec![s(
            "NAME = migrating\nTYPE = state\nCOMMAND = \"/bin/true\"\nRESOURCE = VM\n\
                ON = CUSTOM\nSTATE = ACTIVE\nLCM_STATE = MIGRATE",
        )],
    );

    eprintln!("--- resched both: the pinned one stays flagged, the other moves live to host 1");
    for v in [pinned, free] {
        c.call("one.vm.action", vec![s("resched"), i(v)]).unwrap();
    }
    let mut seen = Vec::new();
    zone.wait_until(DEADLINE, "the free VM runs on host 1", || {
        let b = body(&c, "one.vm.info", free);
        if let Some(l) = elem(&b, "LCM_STATE") {
            if seen.last() != Some(&l) {
                seen.push(l);
            }
        }
        running_on(&c, free) == Some(1)
    });
    let log = || {
        c.call_xml("one.hooklog.info", vec![i(-1), i(-1), i(migrating), i(0)])
            .unwrap_or_default()
    };
    zone.wait_until(DEADLINE, "the VM went through MIGRATE", || {
        log().contains("<HOOK_EXECUTION_RECORD>")
    });
    assert_eq!(
        log().matches("<HOOK_EXECUTION_RECORD>").count(),
        1,
        "{}",
        log()
    );
    assert!(
        !seen.iter().any(|l| l == "7" || l == "8"),
        "never SAVE_MIGRATE or PROLOG_MIGRATE: {seen:?}"
    );
    let b = body(&c, "one.vm.info", free);
    assert!(b.contains("<RESCHED>0</RESCHED>"), "flag cleared: {b}");
    let p = body(&c, "one.vm.info", pinned);
    assert_eq!(
        running_on(&c, pinned),
        Some(0),
        "no other host meets ID = 0"
    );
    assert!(p.contains("<RESCHED>1</RESCHED>"), "still flagged: {p}");
}

#[test]
fn onecluster_show_prints_the_plan_as_the_ruby_cli() {
    use cli::objects::Kind;
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let c = server.client();
    let hosts = monitored_hosts(&zone, &c, &c, &["node-a", "node-b"]);
    let shown = server.cli(Kind::Cluster, &["show", "0"]).ok();
    assert!(
        shown.starts_with("CLUSTER 0 INFORMATION\nID                : 0\nNAME              : default\n\nCLUSTER RESOURCES\nTOTAL CPUs: "),
        "{shown}"
    );
    assert!(!shown.contains("PLAN"), "no plan yet: {shown}");
    assert!(shown.contains("\nHOSTS\n0\n1\n\nVNETS\n"), "{shown}");

    eprintln!("--- two VMs kept on node-a by their requirements");
    let vms: Vec<i32> = (0..2)
        .map(|_| {
            ok(
                &c,
                "one.vm.allocate",
                vec![vm("SCHED_REQUIREMENTS = \"ID = 0\"")],
            )
        })
        .collect();
    zone.wait_until(DEADLINE, "the VMs run on node-a", || {
        vms.iter().all(|v| running_on(&c, *v) == Some(hosts[0]))
    });
    eprintln!("--- optimize keeps them there: nothing to move, no plan");
    assert_eq!(ok(&c, "one.cluster.optimize", vec![i(0)]), 0);
    let shown = server.cli(Kind::Cluster, &["show", "0"]).ok();
    assert!(!shown.contains("PLAN"), "requirements keep them: {shown}");

    eprintln!("--- without requirements one of them goes to node-b");
    for v in &vms {
        ok(&c, "one.vm.update", vec![i(*v), s(""), i(0)]);
    }
    assert_eq!(ok(&c, "one.cluster.optimize", vec![i(0)]), 0);
    let shown = server.cli(Kind::Cluster, &["show", "0"]).ok();
    let plan = shown
        .split("\nPLAN: ")
        .nth(1)
        .unwrap_or_else(|| panic!("a PLAN section: {shown}"));
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines[0], "READY", "{shown}");
    assert_eq!(
        lines[1],
        "    VM ACTION       HOST     DS    STATE       START_TIME"
    );
    assert_eq!(
        lines[2],
        format!(
            "{:>6} migrate    {:>6}      0    READY                -",
            vms[0], hosts[1]
        ),
        "{shown}"
    );
}
