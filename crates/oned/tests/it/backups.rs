//! VM backups into a backup datastore and restores, and backup jobs run on demand and on their
//! schedule, called through a follower: the leader's dummy driver finishes each backup with a
//! BACKUP image, and a job's scheduled run happens once across a leader change.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL, LEADER};

const ACTION: i32 = 0x800;
const NO_EXISTS: i32 = 0x400;
const AUTHORIZATION: i32 = 0x200;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn in_state(c: &cli::Client, vm: i32, state: i32, lcm: i32) -> bool {
    info(c, "one.vm.info", vm).contains(&format!(
        "<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>"
    ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The text of `<tag>` in `body` (first one).
fn field(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(
        body[start..end]
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .to_string(),
    )
}

/// The ids listed in `<tag>` of `body`.
fn ids(body: &str, tag: &str) -> Vec<i32> {
    field(body, tag)
        .unwrap_or_default()
        .split("</ID>")
        .filter_map(|p| p.trim_start_matches("<ID>").parse().ok())
        .collect()
}

/// A dummy host, a 16 MB image, a backup datastore and `n` running VMs with a disk of that
/// image and a volatile one; the backup datastore's id and the VMs.
fn setup(zone: &Zone, c: &cli::Client, n: usize) -> (i32, Vec<i32>) {
    ok(
        c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = ok(
        c,
        "one.image.allocate",
        vec![s("NAME = root\nTYPE = DATABLOCK\nSIZE = 16"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let ds = ok(
        c,
        "one.datastore.allocate",
        vec![
            s("NAME = backups\nTYPE = BACKUP_DS\nDS_MAD = rsync\nTM_MAD = -"),
            i(-1),
        ],
    );
    assert!(info(c, "one.datastore.info", ds).contains("<TYPE>3</TYPE>"));
    let vms = (0..n)
        .map(|_| {
            ok(
                c,
                "one.vm.allocate",
                vec![s(
                    "CPU = 0.1\nMEMORY = 64\nDISK = [ IMAGE = root ]\nDISK = [ TYPE = fs, SIZE = 8 ]",
                )],
            )
        })
        .collect::<Vec<_>>();
    for vm in &vms {
        zone.wait_until(DEADLINE, "the VM runs", || in_state(c, *vm, 3, 3));
    }
    (ds, vms)
}

#[test]
fn a_vm_is_backed_up_into_a_backup_datastore_and_restored() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, vms) = setup(&zone, &c, 1);
    let vm = vms[0];

    eprintln!("--- refusals: an image datastore, no such VM, no such datastore");
    let (code, msg) = one_error(w.call("one.vm.backup", vec![i(vm), i(1), Value::Bool(false)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.backup] Datastore needs to be of type BACKUP"
        )
    );
    let (code, _) = one_error(w.call("one.vm.backup", vec![i(99), i(ds), Value::Bool(false)]));
    assert_eq!(code, NO_EXISTS);
    let (code, _) = one_error(w.call("one.vm.backup", vec![i(vm), i(77), Value::Bool(false)]));
    assert_eq!(code, NO_EXISTS);
    let (code, msg) = one_error(w.call("one.vm.backupcancel", vec![i(vm)]));
    assert_eq!(
        (code, msg),
        (
            INTERNAL,
            format!(
                "[one.vm.backupcancel] Could not cancel backup for VM {vm}, no backup in progress"
            )
        )
    );

    eprintln!("--- a running VM's backup");
    assert_eq!(
        ok(&w, "one.vm.backup", vec![i(vm), i(ds), Value::Bool(false)]),
        vm
    );
    zone.wait_until(DEADLINE, "the backup is done", || {
        in_state(&c, vm, 3, 3) && !ids(&info(&c, "one.vm.info", vm), "BACKUP_IDS").is_empty()
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<BACKUPS><BACKUP_CONFIG></BACKUP_CONFIG><BACKUP_IDS><ID>"),
        "{body}"
    );
    let first = ids(&body, "BACKUP_IDS")[0];
    let image = info(&c, "one.image.info", first);
    assert_eq!(field(&image, "TYPE").as_deref(), Some("6"), "{image}");
    assert_eq!(field(&image, "SIZE").as_deref(), Some("16"), "{image}");
    assert_eq!(field(&image, "STATE").as_deref(), Some("1"), "{image}");
    assert_eq!(field(&image, "DATASTORE_ID"), Some(ds.to_string()));
    assert!(
        image.contains(&format!("<VM_ID><![CDATA[{vm}]]></VM_ID>")),
        "{image}"
    );
    let dsb = info(&c, "one.datastore.info", ds);
    assert_eq!(field(&dsb, "USED_MB").as_deref(), Some("16"), "{dsb}");

    eprintln!("--- restore needs POWEROFF and a BACKUP image");
    let (code, msg) = one_error(w.call("one.vm.restore", vec![i(vm), i(first), i(-1), i(-1)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.restore] Could not restore VM, it must be in poweroff"
        )
    );
    let (code, msg) = one_error(w.call("one.vm.restore", vec![i(vm), i(0), i(-1), i(-1)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.restore] Image has to be of type BACKUP")
    );
    let (code, msg) = one_error(w.call("one.vm.restore", vec![i(vm), i(first), i(-1), i(7)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.restore] VM disk does not exist")
    );

    eprintln!("--- a powered-off VM's backup and restore");
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    ok(&w, "one.vm.backup", vec![i(vm), i(ds), Value::Bool(true)]);
    zone.wait_until(DEADLINE, "the second backup", || {
        in_state(&c, vm, 8, 0) && ids(&info(&c, "one.vm.info", vm), "BACKUP_IDS").len() == 2
    });
    // A reset backup restarts the increment chain.
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<BACKUP_CONFIG><INCREMENTAL_BACKUP_ID><![CDATA[-1]]></INCREMENTAL_BACKUP_ID><LAST_INCREMENT_ID><![CDATA[-1]]></LAST_INCREMENT_ID></BACKUP_CONFIG>"),
        "{body}"
    );
    assert_eq!(
        ok(&w, "one.vm.restore", vec![i(vm), i(first), i(-1), i(-1)]),
        vm
    );
    zone.wait_until(DEADLINE, "the restore is done", || in_state(&c, vm, 8, 0));

    eprintln!("--- only an administrator of the VM backs it up");
    ok(
        &c,
        "one.user.allocate",
        vec![s("bob"), s("pw-bob"), s(""), Value::Array(vec![])],
    );
    let bob = zone.servers[leader].client_as("bob", "pw-bob");
    let (code, _) = one_error(bob.call("one.vm.backup", vec![i(vm), i(ds), Value::Bool(false)]));
    assert_eq!(code, AUTHORIZATION);
}

#[test]
fn a_backup_job_backs_up_its_vms_on_demand_and_is_managed() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, vms) = setup(&zone, &c, 2);
    let (a, b) = (vms[0], vms[1]);

    let job = ok(
        &w,
        "one.backupjob.allocate",
        vec![s(&format!(
            "NAME = nightly\nBACKUP_VMS = \"{a},{b}\"\nDATASTORE_ID = {ds}\nPRIORITY = 60\nKEEP_LAST = 1"
        ))],
    );
    let body = info(&c, "one.backupjob.info", job);
    assert!(
        body.starts_with(&format!("<BACKUPJOB><ID>{job}</ID>")),
        "{body}"
    );
    assert!(
        body.contains("<PRIORITY>60</PRIORITY><LAST_BACKUP_TIME>0</LAST_BACKUP_TIME><LAST_BACKUP_DURATION>0</LAST_BACKUP_DURATION><SCHED_ACTIONS></SCHED_ACTIONS><UPDATED_VMS></UPDATED_VMS><OUTDATED_VMS></OUTDATED_VMS><BACKING_UP_VMS></BACKING_UP_VMS><ERROR_VMS></ERROR_VMS><TEMPLATE>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<BACKUP_VMS><![CDATA[{a},{b}]]></BACKUP_VMS>")),
        "{body}"
    );
    assert!(
        body.contains("<EXECUTION><![CDATA[SEQUENTIAL]]></EXECUTION>"),
        "{body}"
    );
    assert!(info(&c, "one.vm.info", a)
        .contains(&format!("<BACKUP_JOB_ID><![CDATA[{job}]]></BACKUP_JOB_ID>")));

    eprintln!("--- a VM of a job is backed up only by it, and only by one job");
    let (code, msg) = one_error(w.call("one.vm.backup", vec![i(a), i(ds), Value::Bool(false)]));
    assert_eq!(
        (code, msg),
        (
            INTERNAL,
            format!("[one.vm.backup] Unable to start an individual backup for the Virtual Machine, it is part of Backup Job ID {job}")
        )
    );
    let (code, msg) = one_error(w.call(
        "one.backupjob.allocate",
        vec![s(&format!("NAME = other\nBACKUP_VMS = \"{a}\""))],
    ));
    assert_eq!(code, INTERNAL);
    assert!(
        msg.contains(&format!(
            "Unable to add VM {a} to Backup Job {}. It's already in Backup Job {job}",
            job + 1
        )),
        "{msg}"
    );

    eprintln!("--- a run now: both VMs, one after the other");
    assert_eq!(ok(&w, "one.backupjob.backup", vec![i(job)]), job);
    zone.wait_until(DEADLINE, "both VMs are backed up", || {
        ids(&info(&c, "one.backupjob.info", job), "UPDATED_VMS") == vec![a, b]
    });
    for vm in [a, b] {
        zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
        let body = info(&c, "one.vm.info", vm);
        assert_eq!(ids(&body, "BACKUP_IDS").len(), 1, "{body}");
        assert!(
            body.contains("<KEEP_LAST><![CDATA[1]]></KEEP_LAST>"),
            "{body}"
        );
    }
    let body = info(&c, "one.backupjob.info", job);
    assert_ne!(
        field(&body, "LAST_BACKUP_TIME").as_deref(),
        Some("0"),
        "{body}"
    );
    // KEEP_LAST = 1: a second run leaves one backup per VM.
    ok(&w, "one.backupjob.backup", vec![i(job)]);
    zone.wait_until(DEADLINE, "the second run", || {
        let body = info(&c, "one.vm.info", b);
        in_state(&c, b, 3, 3)
            && ids(&body, "BACKUP_IDS").len() == 1
            && ids(&body, "BACKUP_IDS")[0] > 1
    });

    eprintln!("--- priority, retry, cancel, owned calls");
    let (code, msg) = one_error(w.call("one.backupjob.priority", vec![i(job), i(100)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.backupjob.priority] Wrong priority value")
    );
    assert_eq!(ok(&w, "one.backupjob.priority", vec![i(job), i(90)]), job);
    assert!(info(&c, "one.backupjob.info", job).contains("<PRIORITY>90</PRIORITY>"));
    assert_eq!(ok(&w, "one.backupjob.retry", vec![i(job)]), job);
    assert_eq!(ok(&w, "one.backupjob.cancel", vec![i(job)]), job);
    ok(&w, "one.backupjob.rename", vec![i(job), s("weekly")]);
    assert!(info(&c, "one.backupjob.info", job).contains("<NAME>weekly</NAME>"));
    ok(
        &w,
        "one.backupjob.update",
        vec![i(job), s(&format!("BACKUP_VMS = \"{b}\"")), i(1)],
    );
    zone.wait_until(DEADLINE, "VM a left the job", || {
        !info(&c, "one.vm.info", a).contains("BACKUP_JOB_ID")
    });
    let pool = c
        .call_xml("one.backupjobpool.info", vec![i(-2), i(-1), i(-1)])
        .unwrap();
    assert!(pool.starts_with("<BACKUPJOB_POOL><BACKUPJOB>"), "{pool}");

    eprintln!("--- a user may not raise a priority above 49, nor touch another's job");
    ok(
        &c,
        "one.user.allocate",
        vec![s("carol"), s("pw-carol"), s(""), Value::Array(vec![])],
    );
    let carol = zone.servers[leader].client_as("carol", "pw-carol");
    let mine = ok(&carol, "one.backupjob.allocate", vec![s("NAME = mine")]);
    assert_eq!(
        ok(&carol, "one.backupjob.priority", vec![i(mine), i(49)]),
        mine
    );
    let (code, _) = one_error(carol.call("one.backupjob.priority", vec![i(mine), i(50)]));
    assert_eq!(code, AUTHORIZATION);
    let (code, _) = one_error(carol.call(
        "one.backupjob.allocate",
        vec![s("NAME = urgent\nPRIORITY = 80")],
    ));
    assert_eq!(code, AUTHORIZATION);
    let (code, _) = one_error(carol.call("one.backupjob.backup", vec![i(job)]));
    assert_eq!(code, AUTHORIZATION);

    eprintln!("--- delete: the VMs leave the job");
    assert_eq!(ok(&w, "one.backupjob.delete", vec![i(job)]), job);
    zone.wait_until(DEADLINE, "VM b left the job", || {
        !info(&c, "one.vm.info", b).contains("BACKUP_JOB_ID")
    });
    let (code, _) = one_error(c.call("one.backupjob.info", vec![i(job)]));
    assert_eq!(code, NO_EXISTS);
}

#[test]
fn a_scheduled_backup_job_runs_once_across_a_leader_change() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, vms) = setup(&zone, &c, 1);
    let vm = vms[0];
    let job = ok(
        &w,
        "one.backupjob.allocate",
        vec![s(&format!(
            "NAME = timed\nBACKUP_VMS = \"{vm}\"\nDATASTORE_ID = {ds}"
        ))],
    );
    let at = now() + 3;
    assert_eq!(
        ok(
            &w,
            "one.backupjob.schedadd",
            vec![
                i(job),
                s(&format!(
                    "SCHED_ACTION = [ ACTION = \"backup\", TIME = \"{at}\" ]"
                )),
            ],
        ),
        0
    );
    let body = info(&c, "one.backupjob.info", job);
    assert!(
        body.contains("<SCHED_ACTIONS><ID>0</ID></SCHED_ACTIONS>"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<SCHED_ACTION><ID>0</ID><PARENT_ID>{job}</PARENT_ID><TYPE>BACKUPJOB</TYPE><ACTION>backup</ACTION>"
        )),
        "{body}"
    );
    let (code, _) = one_error(w.call("one.backupjob.scheddelete", vec![i(job), i(5)]));
    assert_eq!(code, NO_EXISTS);

    // Killed around the due time: either the run started and recorded it, or the next leader
    // starts it.
    while now() < at {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut zone = zone;
    zone.servers[leader].kill();
    let new = zone.wait_for(DEADLINE, "a new leader", || {
        (0..3).filter(|&n| n != leader).find(|&n| {
            zone.servers[n]
                .raft_status()
                .is_some_and(|r| r.state == LEADER)
        })
    });
    let c = zone.servers[new].client();
    zone.wait_until(DEADLINE, "the scheduled run backed the VM up", || {
        ids(&info(&c, "one.backupjob.info", job), "UPDATED_VMS") == vec![vm]
            && in_state(&c, vm, 3, 3)
    });
    // Give a second run every chance to happen before checking there was none.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let body = info(&c, "one.vm.info", vm);
    assert_eq!(ids(&body, "BACKUP_IDS").len(), 1, "{body}");
    let jb = info(&c, "one.backupjob.info", job);
    assert!(
        field(&jb, "DONE").and_then(|d| d.parse::<i64>().ok()) >= Some(at),
        "{jb}"
    );
    zone.servers[leader].start();
}

#[test]
fn onevm_backup_and_onebackupjob_work_as_opennebulas() {
    use cli::objects::Kind;
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let c = server.client();
    let (ds, vms) = setup(&zone, &c, 2);
    let (a, b) = (vms[0].to_string(), vms[1].to_string());
    let dsn = ds.to_string();
    let onevm = |args: &[&str]| server.cli(Kind::Vm, args).ok();
    let job = |args: &[&str]| server.cli(Kind::BackupJob, args).ok();

    assert_eq!(onevm(&["backup", &a, "-d", "backups"]), "");
    zone.wait_until(DEADLINE, "the backup is done", || {
        in_state(&c, vms[0], 3, 3)
            && !ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS").is_empty()
    });
    let (code, _, err) = server.cli(Kind::Vm, &["backup-cancel", &a]).parts();
    assert_eq!(code, 255);
    assert!(err.contains("no backup in progress"), "{err}");
    onevm(&["poweroff", &a]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vms[0], 8, 0));
    let image = ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS")[0].to_string();
    assert_eq!(onevm(&["restore", &a, &image]), "");
    zone.wait_until(DEADLINE, "the restore is done", || {
        in_state(&c, vms[0], 8, 0)
    });

    assert_eq!(
        job(&["create", "--name", "nightly", "--vms", &b, "--keep", "2"]),
        "ID: 0\n"
    );
    job(&["update", "nightly", "--append", &{
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ds.tpl");
        std::fs::write(&p, format!("DATASTORE_ID = {dsn}")).unwrap();
        // The directory must outlive the call: leak it for the test's life.
        let p = p.display().to_string();
        std::mem::forget(dir);
        p
    }]);
    let list = job(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].contains("PRIO") && lines[0].contains("VMS"),
        "{list}"
    );
    assert!(
        lines[1].contains("nightly") && lines[1].contains(&b),
        "{list}"
    );
    job(&["backup", "nightly"]);
    zone.wait_until(DEADLINE, "the job backed the VM up", || {
        ids(&info(&c, "one.backupjob.info", 0), "UPDATED_VMS") == vec![vms[1]]
    });
    let show = job(&["show", "nightly"]);
    assert!(
        show.starts_with(
            "BACKUP JOB 0 INFORMATION\nID             : 0\nNAME           : nightly\n"
        ),
        "{show}"
    );
    assert!(show.contains(&format!("UPDATED        : {b}\n")), "{show}");
    job(&["backup", "nightly", "--schedule", "+100000"]);
    let show = job(&["show", "nightly"]);
    assert!(show.contains("SCHEDULED ACTIONS\n ID ACTION"), "{show}");
    assert!(show.contains("  0 backup "), "{show}");
    job(&["sched-delete", "nightly", "0"]);
    job(&["priority", "nightly", "70"]);
    job(&["retry", "nightly"]);
    job(&["cancel", "nightly"]);
    job(&["rename", "nightly", "weekly"]);
    job(&["chmod", "weekly", "640"]);
    job(&["lock", "weekly"]);
    job(&["unlock", "weekly"]);
    let x = job(&["show", "weekly", "-x"]);
    assert!(
        x.contains("<PRIORITY>70</PRIORITY>") && x.contains("<GROUP_U>1</GROUP_U>"),
        "{x}"
    );
    job(&["delete", "weekly"]);
    let (code, _, err) = server.cli(Kind::BackupJob, &["show", "weekly"]).parts();
    assert_eq!(code, 255);
    assert!(err.contains("BACKUPJOB named weekly not found."), "{err}");
}
