//! Monitoring records taken by the leader (they appear on every server and expire), accounting
//! from the VMs' placement records, and showback costs for known VM lifetimes.

use xmlrpc::Value;

use crate::zone::{allocate, one_error, Server, Zone, DEADLINE};

const AUTHORIZATION: i32 = 0x200;
const NO_EXISTS: i32 = 0x0400;
const XML_RPC_API: i32 = 0x1000;

const FAST: &str = "PROBES_PERIOD = [ MONITOR_VM = 1, MONITOR_HOST = 1 ]
VM_MONITORING_EXPIRATION_TIME = 3
HOST_MONITORING_EXPIRATION_TIME = 3
DEFAULT_COST = [ CPU_COST = 0, MEMORY_COST = 3600, DISK_COST = 0 ]
";

fn fast(_: usize, s: &mut Server) {
    s.extra_conf = FAST.to_string();
}

type CliMain = fn(&[String], &mut dyn std::io::Write, &mut dyn std::io::Write) -> i32;

/// A CLI of `cli::acct` in-process as oneadmin against `server`: (exit code, stdout, stderr).
fn run_cli(server: &Server, main: CliMain, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend([
        "--endpoint".to_string(),
        server.endpoint(),
        "--user".to_string(),
        "oneadmin".to_string(),
        "--password".to_string(),
        server.password(),
    ]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main(&all, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn xml(c: &cli::Client, method: &str, params: Vec<Value>) -> String {
    c.call_xml(method, params).unwrap()
}

/// Every value of `<tag>` in `body`, in order.
fn values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    body.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &body[at + open.len()..];
            rest.find(&close).map(|end| rest[..end].to_string())
        })
        .collect()
}

fn count(body: &str, tag: &str) -> usize {
    body.matches(&format!("<{tag}>")).count()
}

fn running(c: &cli::Client, vm: i32) -> bool {
    xml(c, "one.vm.info", vec![Value::Int(vm)]).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
}

fn done(c: &cli::Client, vm: i32) -> bool {
    xml(c, "one.vm.info", vec![Value::Int(vm)]).contains("<STATE>6</STATE>")
}

#[test]
fn records_of_running_vms_and_hosts_appear_on_every_server_and_expire() {
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(fast)));
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let f = zone.servers[(leader + 1) % 3].client();
    let host = int(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vm = int(&c, "one.vm.allocate", vec![s("CPU = 1\nMEMORY = 64")]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));

    tracing::info!("--- records appear on a follower");
    let vm_records = || xml(&f, "one.vm.monitoring", vec![Value::Int(vm)]);
    zone.wait_until(DEADLINE, "two VM records on a follower", || {
        count(&vm_records(), "MONITORING") >= 2
    });
    let body = vm_records();
    assert!(
        body.starts_with("<MONITORING_DATA><MONITORING><CPU>"),
        "{body}"
    );
    for id in values(&body, "ID") {
        assert_eq!(id, vm.to_string(), "{body}");
    }
    // The dummy probe: 5-100 % of one CPU, 20-100 % of 64 MiB in KiB.
    for cpu in values(&body, "CPU") {
        let cpu: i64 = cpu.parse().unwrap();
        assert!((5..=100).contains(&cpu), "{body}");
    }
    for mem in values(&body, "MEMORY") {
        let mem: i64 = mem.parse().unwrap();
        assert!((13107..=65536).contains(&mem), "{body}");
    }
    let stamps: Vec<i64> = values(&body, "TIMESTAMP")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{body}");

    let info = xml(&f, "one.vm.info", vec![Value::Int(vm)]);
    assert!(info.contains("<MONITORING><CPU>"), "{info}");
    // The short body's MONITORING (`VirtualMachineMonitorInfo::to_xml_short`): CPU, MEMORY
    // and STATE, which the dummy probe does not report, so OpenNebula prints it empty.
    let short = xml(
        &f,
        "one.vmpool.info",
        vec![
            Value::Int(-2),
            Value::Int(vm),
            Value::Int(vm),
            Value::Int(-1),
        ],
    );
    let mon = short
        .split("<MONITORING>")
        .nth(1)
        .and_then(|r| r.split("</MONITORING>").next())
        .unwrap_or_default();
    assert!(mon.starts_with("<CPU>"), "{short}");
    assert!(mon.contains("</CPU><MEMORY>"), "{short}");
    assert!(mon.ends_with("</MEMORY><STATE></STATE>"), "{short}");
    let cpu: i64 = values(mon, "CPU")[0].parse().unwrap();
    assert!((5..=100).contains(&cpu), "{short}");
    let last = xml(
        &c,
        "one.vmpool.monitoring",
        vec![Value::Int(-2), Value::Int(0)],
    );
    assert_eq!(count(&last, "MONITORING"), 1, "{last}");
    let recent = xml(
        &c,
        "one.vmpool.monitoring",
        vec![Value::Int(-2), Value::Int(3600)],
    );
    assert!(count(&recent, "MONITORING") >= 2, "{recent}");

    zone.wait_until(DEADLINE, "a host record on a follower", || {
        xml(&f, "one.host.monitoring", vec![Value::Int(host)]).contains("<CAPACITY>")
    });
    let body = xml(&f, "one.host.monitoring", vec![Value::Int(host)]);
    assert!(
        body.starts_with(&format!(
            "<MONITORING_DATA><MONITORING><TIMESTAMP>{}",
            values(&body, "TIMESTAMP")[0]
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("</TIMESTAMP><ID>{host}</ID><CAPACITY><FREE_CPU>")),
        "{body}"
    );
    assert!(body.contains("<SYSTEM><NETRX>"), "{body}");
    let pool = xml(&c, "one.hostpool.monitoring", vec![Value::Int(0)]);
    assert_eq!(count(&pool, "MONITORING"), 1, "{pool}");
    let hinfo = xml(&c, "one.host.info", vec![Value::Int(host)]);
    assert!(hinfo.contains("<MONITORING><TIMESTAMP>"), "{hinfo}");

    tracing::info!("--- onehost monitoring");
    let host_s = host.to_string();
    let (code, out, err) = zone.servers[leader]
        .cli(
            cli::objects::Kind::Host,
            &["monitoring", &host_s, "used_cpu", "--csv", ";", "--n", "1"],
        )
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "TIME;VALUE");
    let (time, used) = lines[1].split_once(';').unwrap();
    assert_eq!(time.len(), 5, "{out}");
    assert!((0..=800).contains(&used.parse::<i64>().unwrap()), "{out}");
    let (code, out, err) = zone.servers[leader]
        .cli(
            cli::objects::Kind::Host,
            &[
                "monitoring",
                "node",
                "FREE_MEMORY",
                "--table",
                "--unit",
                "M",
            ],
        )
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("\nHost {host} FREE_MEMORY in MB from ")),
        "{out}"
    );
    assert!(out.contains("\n\n    TIME    VALUE\n"), "{out}");
    // VALUE is 8 wide and cut, as ShowTable cuts it: `997.79 M`, but `16351.28` for the 16 GB
    // a larger machine has free (the dummy probe reports this machine's memory).
    let last = out
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .trim_start();
    let value = last.split_once(' ').map_or("", |(_, v)| v.trim_start());
    let number = value.split(' ').next().unwrap_or_default();
    assert!(value.len() <= 8, "{out}");
    assert!(number.parse::<f64>().is_ok(), "{out}");
    assert!(
        [
            number.to_string(),
            format!("{number} M"),
            format!("{number} MB")
        ]
        .contains(&value.to_string()),
        "{out}"
    );

    tracing::info!("--- refusals");
    let (code, msg) = one_error(c.call("one.vm.monitoring", vec![Value::Int(999)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            NO_EXISTS,
            "[one.vm.monitoring] Error getting virtual machine [999]."
        )
    );
    let (code, msg) = one_error(c.call("one.host.monitoring", vec![Value::Int(999)]));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.host.monitoring] Error getting host [999].")
    );
    let (code, msg) =
        one_error(c.call("one.vmpool.monitoring", vec![Value::Int(-5), Value::Int(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (XML_RPC_API, "[one.vmpool.monitoring] Incorrect filter_flag")
    );
    allocate(&c, "alice").unwrap();
    let alice = zone.servers[leader].client_as("alice", "pw-alice");
    let (code, msg) = one_error(alice.call("one.vm.monitoring", vec![Value::Int(vm)]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    let mine = xml(
        &alice,
        "one.vmpool.monitoring",
        vec![Value::Int(-2), Value::Int(-1)],
    );
    assert_eq!(mine, "<MONITORING_DATA></MONITORING_DATA>");

    tracing::info!("--- a VM that ends stops being recorded; its records expire");
    int(
        &c,
        "one.vm.action",
        vec![s("terminate-hard"), Value::Int(vm)],
    );
    zone.wait_until(DEADLINE, "the VM is done", || done(&c, vm));
    zone.wait_until(DEADLINE, "its records expire on the follower", || {
        count(&vm_records(), "MONITORING") == 0
    });
    // The host is still monitored: its newest records stay.
    assert!(
        count(
            &xml(&c, "one.host.monitoring", vec![Value::Int(host)]),
            "MONITORING"
        ) >= 1
    );
}

#[test]
fn accounting_and_showback_follow_the_vms_placements() {
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(fast)));
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let f = zone.servers[(leader + 1) % 3].client();
    int(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    // One cost unit per running second: CPU 2 at 1800 an hour; MEMORY_COST 0 of its own.
    let priced = int(
        &c,
        "one.vm.allocate",
        vec![s(
            "NAME = priced\nCPU = 2\nMEMORY = 64\nCPU_COST = 1800\nMEMORY_COST = 0",
        )],
    );
    // DEFAULT_COST: MEMORY_COST 3600 per MB an hour, so 2 units a second for 2 MB.
    let default = int(
        &c,
        "one.vm.allocate",
        vec![s("NAME = plain\nCPU = 1\nMEMORY = 2")],
    );
    zone.wait_until(DEADLINE, "the VMs run", || {
        running(&c, priced) && running(&c, default)
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    for vm in [priced, default] {
        int(
            &c,
            "one.vm.action",
            vec![s("terminate-hard"), Value::Int(vm)],
        );
    }
    zone.wait_until(DEADLINE, "the VMs are done", || {
        done(&c, priced) && done(&c, default)
    });

    tracing::info!("--- accounting through a follower");
    let acct = || {
        xml(
            &f,
            "one.vmpool.accounting",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
    };
    zone.wait_until(DEADLINE, "the follower has both records closed", || {
        let a = acct();
        count(&a, "HISTORY") == 2 && !values(&a, "ETIME").contains(&"0".to_string())
    });
    let a = acct();
    assert!(a.starts_with("<HISTORY_RECORDS><HISTORY><OID>"), "{a}");
    assert!(a.contains(&format!("<VM><ID>{priced}</ID>")), "{a}");
    let oids = values(&a, "OID");
    assert_eq!(oids, vec![priced.to_string(), default.to_string()], "{a}");
    // HISTORY's STIME/ETIME come first in each record, before its VM's.
    let records: Vec<&str> = a.split("<HISTORY><OID>").skip(1).collect();
    let life = |r: &str| -> i64 {
        let st: i64 = values(r, "STIME")[0].parse().unwrap();
        let et: i64 = values(r, "ETIME")[0].parse().unwrap();
        et - st
    };
    let (life_priced, life_default) = (life(records[0]), life(records[1]));
    assert!(life_priced >= 2 && life_default >= 2, "{a}");
    let etime: i64 = values(records[0], "ETIME")[0].parse().unwrap();
    let later = xml(
        &f,
        "one.vmpool.accounting",
        vec![
            Value::Int(-2),
            Value::Int((etime + 100) as i32),
            Value::Int(-1),
        ],
    );
    assert_eq!(later, "<HISTORY_RECORDS></HISTORY_RECORDS>");

    tracing::info!("--- showback, calculated through a follower");
    let (code, msg) = one_error(f.call(
        "one.vmpool.showback",
        vec![
            Value::Int(-5),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (XML_RPC_API, "[one.vmpool.showback] Incorrect filter_flag")
    );
    let none = vec![
        Value::Int(-1),
        Value::Int(-1),
        Value::Int(-1),
        Value::Int(-1),
    ];
    let r = f
        .call("one.vmpool.calculateshowback", none.clone())
        .unwrap();
    assert_eq!(r, Value::String(String::new()));
    let mut all = vec![Value::Int(-2)];
    all.extend(none.clone());
    let sb = xml(&c, "one.vmpool.showback", all.clone());
    assert_eq!(count(&sb, "SHOWBACK"), 2, "{sb}");
    assert_eq!(
        values(&sb, "VMID"),
        vec![priced.to_string(), default.to_string()],
        "{sb}"
    );
    assert_eq!(values(&sb, "VMNAME"), vec!["priced", "plain"], "{sb}");
    // Costs are single-precision sums, as OpenNebula's.
    let near = |tag: &str, i: usize, want: i64| {
        let got: f64 = values(&sb, tag)[i].parse().unwrap();
        assert!(
            (got - want as f64).abs() < 0.02,
            "{tag} {got} != {want}: {sb}"
        );
    };
    near("TOTAL_COST", 0, life_priced);
    near("CPU_COST", 0, life_priced);
    near("MEMORY_COST", 0, 0);
    near("TOTAL_COST", 1, 2 * life_default);
    near("MEMORY_COST", 1, 2 * life_default);
    // A window of months before any VM ran has none.
    let early = xml(
        &c,
        "one.vmpool.showback",
        vec![
            Value::Int(-2),
            Value::Int(1),
            Value::Int(2000),
            Value::Int(12),
            Value::Int(2000),
        ],
    );
    assert_eq!(early, "<SHOWBACK_RECORDS></SHOWBACK_RECORDS>");

    tracing::info!("--- oneacct and oneshowback");
    let server = &zone.servers[(leader + 1) % 3];
    let (code, out, err) = run_cli(server, cli::acct::oneacct, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("\x1b[1m\x1b[4m{:<80}", "# User 0"),
        "{out}"
    );
    assert_eq!(lines[1], "\x1b[0m", "{out}");
    assert_eq!(
        lines[2],
        " VID HOSTNAME        ACTION               START_TIME       END_TIME MEMORY CPU  NETRX  NETTX   DISK",
        "{out}"
    );
    assert!(
        // The record names the action that ended it, as oned's history does.
        lines[3].starts_with(&format!("{priced:>4} node            terminate-hard   ")),
        "{out}"
    );
    assert!(lines[3].contains("    64M   2 "), "{out}");
    assert!(lines[4].contains("     2M   1 "), "{out}");
    let (code, out, err) = run_cli(server, cli::acct::oneacct, &["--csv", "-l", "UID,VID,SEQ"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("UID,VID,SEQ\n0,{priced},0\n0,{default},0\n"));
    let (code, out, err) = run_cli(server, cli::acct::oneshowback, &["calculate"]);
    assert_eq!((code, out.as_str()), (0, "\n"), "{err}");
    let (code, out, err) = run_cli(
        server,
        cli::acct::oneshowback,
        &["list", "--csv", "-l", "VM_ID,VM_NAME"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!("VM_ID,VM_NAME\n{priced},priced\n{default},plain\n")
    );
    let (code, out, err) = run_cli(server, cli::acct::oneshowback, &["list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("\x1b[1m\x1b[4m# Showback for "), "{out}");
    assert!(
        out.contains(
            "USER_NAM GROUP_NA  VM_ID VM_NAME         MONTH  YEAR  HOURS RUNNING            COST"
        ),
        "{out}"
    );

    tracing::info!("--- users see their own VMs only; only group oneadmin calculates");
    allocate(&c, "alice").unwrap();
    let alice = zone.servers[leader].client_as("alice", "pw-alice");
    let mut mine = vec![Value::Int(-1)];
    mine.extend(none.clone());
    assert_eq!(
        xml(&alice, "one.vmpool.showback", mine),
        "<SHOWBACK_RECORDS></SHOWBACK_RECORDS>"
    );
    assert_eq!(
        xml(
            &alice,
            "one.vmpool.accounting",
            vec![Value::Int(-1), Value::Int(-1), Value::Int(-1)]
        ),
        "<HISTORY_RECORDS></HISTORY_RECORDS>"
    );
    let (code, msg) = one_error(alice.call("one.vmpool.calculateshowback", none));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            "[one.vmpool.calculateshowback] Action reserved for group 0 only"
        )
    );

    tracing::info!("--- infoset");
    let set = xml(
        &f,
        "one.vmpool.infoset",
        vec![
            s(&format!("{default},x,{priced},{default}")),
            Value::Bool(false),
        ],
    );
    assert_eq!(count(&set, "VM"), 2, "{set}");
    assert_eq!(
        xml(&f, "one.vmpool.infoset", vec![s(""), Value::Bool(true)]),
        "<VM_POOL></VM_POOL>"
    );
}
