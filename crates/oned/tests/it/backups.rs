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
            s("NAME = backups\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = localhost\nRSYNC_USER = oneadmin\nTM_MAD = -"),
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

/// Kills server `leader` once the clock reaches `at` (a due time); the new leader.
fn kill_leader_at(zone: &mut Zone, leader: usize, at: i64) -> usize {
    while now() < at {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    zone.servers[leader].kill();
    zone.wait_for(DEADLINE, "a new leader", || {
        (0..3).filter(|&n| n != leader).find(|&n| {
            zone.servers[n]
                .raft_status()
                .is_some_and(|r| r.state == LEADER)
        })
    })
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
    // `Image::insert` takes VM_ID into the running set for good; the disks are listed.
    assert!(
        image.contains("<RUNNING_VMS>1</RUNNING_VMS><CLONING_OPS>0</CLONING_OPS>")
            && image.contains(&format!("<VMS><ID>{vm}</ID></VMS>")),
        "{image}"
    );
    assert!(image.contains("<TEMPLATE></TEMPLATE>"), "{image}");
    assert!(
        image.contains("<BACKUP_DISK_IDS><ID>0</ID></BACKUP_DISK_IDS>"),
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
    // `post_update_template` drops PRIORITY: it changes through `priority` only.
    ok(
        &w,
        "one.backupjob.update",
        vec![i(job), s("PRIORITY = 99"), i(1)],
    );
    let body = info(&c, "one.backupjob.info", job);
    assert!(body.contains("<PRIORITY>90</PRIORITY>"), "{body}");
    assert!(!body.contains("<PRIORITY><![CDATA["), "{body}");
    // A backup job's scheduled action is a backup whatever ACTION says (goca's template has
    // none); a bad one is refused as ACTION.
    let later = now() + 1_000_000;
    for (n, text) in [
        format!("SCHED_ACTION = [ REPEAT = \"3\", DAYS = \"1\", TIME = \"{later}\" ]"),
        format!("SCHED_ACTION = [ ACTION = \"poweroff\", TIME = \"{later}\" ]"),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            ok(&w, "one.backupjob.schedadd", vec![i(job), s(text)]),
            n as i32
        );
    }
    let body = info(&c, "one.backupjob.info", job);
    assert_eq!(body.matches("<ACTION>backup</ACTION>").count(), 2, "{body}");
    let (code, msg) = one_error(w.call(
        "one.backupjob.schedadd",
        vec![
            i(job),
            s(&format!(
                "SCHED_ACTION = [ REPEAT = \"7\", TIME = \"{later}\" ]"
            )),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.backupjob.schedadd] Wrong REPEAT value: 7")
    );
    // The pool shows the actions' ids only (`to_xml`, not `to_xml_extended`).
    let pool = c
        .call_xml("one.backupjobpool.info", vec![i(-2), i(-1), i(-1)])
        .unwrap();
    assert!(
        pool.contains("<SCHED_ACTIONS><ID>0</ID><ID>1</ID></SCHED_ACTIONS>")
            && !pool.contains("<SCHED_ACTION>"),
        "{pool}"
    );
    for sa in [0, 1] {
        ok(&w, "one.backupjob.scheddelete", vec![i(job), i(sa)]);
    }
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
    let mut zone = zone;
    let new = kill_leader_at(&mut zone, leader, at);
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
    // oneimage restore: the dummy datastore driver's answer (a template and an image of its
    // own, creating nothing), after OpenNebula's checks.
    let oneimage = |args: &[&str]| server.cli(Kind::Image, args).parts();
    assert_eq!(
        oneimage(&["restore", &image, "-d", "default"]),
        (
            0,
            "VM Template: 0\nImages: dummy_image\n".to_string(),
            String::new()
        )
    );
    assert_eq!(
        oneimage(&["restore", &image, "-d", "system"]),
        (
            255,
            "[one.image.restore] Destination can be only an image datastore\n".to_string(),
            String::new()
        )
    );

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

/// `n` times `<tag>` in `body`.
fn count(body: &str, tag: &str) -> usize {
    body.matches(tag).count()
}

/// A running VM with the `root` image and an incremental BACKUP_CONFIG keeping `keep`.
fn incremental_vm(zone: &Zone, c: &cli::Client, keep: u32) -> i32 {
    let vm = ok(
        c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 64\nDISK = [ IMAGE = root ]\n\
             BACKUP_CONFIG = [ MODE = \"INCREMENT\", KEEP_LAST = \"{keep}\" ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(c, vm, 3, 3));
    vm
}

/// Backs `vm` up into `ds` through `w` and waits (on the leader's `c`) for its chain to reach
/// `last`, the VM running again.
fn backup_until(
    zone: &Zone,
    w: &cli::Client,
    c: &cli::Client,
    vm: i32,
    ds: i32,
    reset: bool,
    last: &str,
) {
    assert_eq!(
        ok(w, "one.vm.backup", vec![i(vm), i(ds), Value::Bool(reset)]),
        vm
    );
    zone.wait_until(DEADLINE, &format!("increment {last} is made"), || {
        let body = info(c, "one.vm.info", vm);
        in_state(c, vm, 3, 3) && field(&body, "LAST_INCREMENT_ID").as_deref() == Some(last)
    });
}

#[test]
fn an_incremental_chain_grows_merges_resets_and_restores_an_increment() {
    use cli::objects::Kind;
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, _) = setup(&zone, &c, 0);
    let vm = incremental_vm(&zone, &c, 3);

    eprintln!("--- the first backup makes an image holding a FULL increment");
    backup_until(&zone, &w, &c, vm, ds, false, "0");
    let body = info(&c, "one.vm.info", vm);
    let chain = ids(&body, "BACKUP_IDS");
    assert_eq!(chain.len(), 1, "{body}");
    let image = chain[0];
    assert_eq!(
        field(&body, "INCREMENTAL_BACKUP_ID"),
        Some(image.to_string()),
        "{body}"
    );
    let ib = info(&c, "one.image.info", image);
    assert_eq!(field(&ib, "SIZE").as_deref(), Some("16"), "{ib}");
    assert!(
        ib.contains("<BACKUP_INCREMENTS><INCREMENT><DATE><![CDATA["),
        "{ib}"
    );
    assert!(
        ib.contains(
            "</DATE><ID><![CDATA[0]]></ID><PARENT_ID><![CDATA[-1]]></PARENT_ID>\
             <SIZE><![CDATA[16]]></SIZE><SOURCE><![CDATA["
        ) && ib.contains("<TYPE><![CDATA[FULL]]></TYPE></INCREMENT></BACKUP_INCREMENTS>"),
        "{ib}"
    );

    eprintln!("--- later backups append increments to the same image");
    // The chain's datastore is used whatever the call names (OpenNebula's rule).
    backup_until(&zone, &w, &c, vm, ds, false, "1");
    let ib = info(&c, "one.image.info", image);
    assert_eq!(count(&ib, "<INCREMENT>"), 2, "{ib}");
    assert!(
        ib.contains(
            "<ID><![CDATA[1]]></ID><PARENT_ID><![CDATA[0]]></PARENT_ID><SIZE><![CDATA[16]]></SIZE>"
        ) && ib.contains("<TYPE><![CDATA[INCREMENT]]></TYPE>"),
        "{ib}"
    );
    assert_eq!(field(&ib, "SIZE").as_deref(), Some("32"), "{ib}");
    assert_eq!(ids(&info(&c, "one.vm.info", vm), "BACKUP_IDS"), vec![image]);
    backup_until(&zone, &w, &c, vm, ds, false, "2");
    backup_until(&zone, &w, &c, vm, ds, false, "3");

    eprintln!("--- KEEP_LAST = 3 merged the oldest into a new FULL");
    let ib = info(&c, "one.image.info", image);
    assert_eq!(count(&ib, "<INCREMENT>"), 3, "{ib}");
    assert!(
        ib.contains(
            "<ID><![CDATA[1]]></ID><PARENT_ID><![CDATA[-1]]></PARENT_ID><SIZE><![CDATA[16]]></SIZE>"
        ) && !ib.contains("<ID><![CDATA[0]]></ID>"),
        "{ib}"
    );
    assert_eq!(field(&ib, "SIZE").as_deref(), Some("48"), "{ib}");
    let dsb = info(&c, "one.datastore.info", ds);
    assert_eq!(field(&dsb, "USED_MB").as_deref(), Some("48"), "{dsb}");

    eprintln!("--- restore an increment; a bad one is refused");
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    let (code, msg) = one_error(w.call("one.vm.restore", vec![i(vm), i(image), i(4), i(-1)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.restore] Wrong increment")
    );
    assert_eq!(
        ok(&w, "one.vm.restore", vec![i(vm), i(image), i(2), i(-1)]),
        vm
    );
    zone.wait_until(DEADLINE, "the restore is done", || in_state(&c, vm, 8, 0));
    ok(&c, "one.vm.action", vec![s("resume"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));

    eprintln!("--- reset starts a new chain in a new image");
    backup_until(&zone, &w, &c, vm, ds, true, "0");
    let body = info(&c, "one.vm.info", vm);
    let both = ids(&body, "BACKUP_IDS");
    assert_eq!(both.len(), 2, "{body}");
    assert_eq!(both[0], image);
    assert_eq!(
        field(&body, "INCREMENTAL_BACKUP_ID"),
        Some(both[1].to_string())
    );
    let ib = info(&c, "one.image.info", both[1]);
    assert_eq!(count(&ib, "<INCREMENT>"), 1, "{ib}");

    eprintln!("--- onevm backup --reset");
    let server = &zone.servers[leader];
    let (code, out, err) = server
        .cli(
            Kind::Vm,
            &["backup", &vm.to_string(), "-d", "backups", "--reset"],
        )
        .parts();
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    zone.wait_until(DEADLINE, "a third chain", || {
        in_state(&c, vm, 3, 3) && ids(&info(&c, "one.vm.info", vm), "BACKUP_IDS").len() == 3
    });
    let (code, out, err) = server
        .cli(
            Kind::Vm,
            &[
                "restore",
                &vm.to_string(),
                &image.to_string(),
                "--increment",
                "9",
            ],
        )
        .parts();
    assert_eq!(code, 255, "{out}");
    assert!(err.contains("Wrong increment"), "{err}");

    eprintln!("--- onevm backup --schedule: a backup action the leader runs");
    let (code, out, err) = server
        .cli(
            Kind::Vm,
            &[
                "backup",
                &vm.to_string(),
                "-d",
                "backups",
                "--schedule",
                "now",
            ],
        )
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("VM {vm}: backup scheduled at ")),
        "{out}"
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains(&format!("<ACTION>backup</ACTION><ARGS>{ds},0</ARGS>")),
        "{body}"
    );
    zone.wait_until(DEADLINE, "the scheduled increment", || {
        let body = info(&c, "one.vm.info", vm);
        in_state(&c, vm, 3, 3) && field(&body, "LAST_INCREMENT_ID").as_deref() == Some("1")
    });
}

#[test]
fn a_backup_holds_its_quota_from_its_start_and_gives_it_back_on_cancel() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, vms) = setup(&zone, &c, 2);
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s(""), Value::Array(vec![])],
    );
    ok(
        &c,
        "one.user.quota",
        vec![
            i(alice),
            s(&format!(
                "DATASTORE = [ ID = {ds}, SIZE = 20, IMAGES = -1 ]"
            )),
        ],
    );
    for vm in &vms {
        ok(&c, "one.vm.chown", vec![i(*vm), i(alice), i(-1)]);
    }
    let used = || {
        let body = info(&c, "one.user.info", alice);
        let q = field(&body, "DATASTORE_QUOTA").unwrap_or_default();
        (field(&q, "SIZE_USED"), field(&q, "IMAGES_USED"))
    };

    eprintln!("--- a backup cancelled at once holds nothing after");
    // The leader's driver may finish the backup before the cancel: then the image counts.
    loop {
        let before = ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS").len();
        ok(
            &c,
            "one.vm.backup",
            vec![i(vms[0]), i(ds), Value::Bool(false)],
        );
        // Reserved from the start, or already the image's: 16 MB and one image either way.
        assert_eq!(used(), (Some("16".into()), Some("1".into())));
        let cancelled = c.call("one.vm.backupcancel", vec![i(vms[0])]).is_ok();
        zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vms[0], 3, 3));
        let made = ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS").len();
        if cancelled {
            eprintln!("--- cancelled: the reservation is given back");
            assert_eq!(made, before);
            assert_eq!(used(), (Some("0".into()), Some("0".into())));
            break;
        }
        assert_eq!(made, before + 1);
        assert_eq!(used(), (Some("16".into()), Some("1".into())));
        let image = ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS")[before];
        ok(&c, "one.image.delete", vec![i(image)]);
        zone.wait_until(DEADLINE, "the backup is gone", || {
            used() == (Some("0".into()), Some("0".into()))
        });
    }

    eprintln!("--- the first backup's reservation or image leaves no room for a second");
    ok(
        &w,
        "one.vm.backup",
        vec![i(vms[0]), i(ds), Value::Bool(false)],
    );
    let (code, msg) =
        one_error(w.call("one.vm.backup", vec![i(vms[1]), i(ds), Value::Bool(false)]));
    assert_eq!(
        (code, msg),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.backup] User [0] : user [{alice}] limit of 20 reached for SIZE quota in \
                 DATASTORE with ID: {ds}."
            )
        )
    );
    zone.wait_until(DEADLINE, "the backup is done", || {
        in_state(&c, vms[0], 3, 3)
            && !ids(&info(&c, "one.vm.info", vms[0]), "BACKUP_IDS").is_empty()
    });
    // Charged once: the image, the reservation gone.
    assert_eq!(used(), (Some("16".into()), Some("1".into())));
}

#[test]
fn scheduled_snapshot_and_backup_actions_run_once_across_a_leader_change() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    let (ds, vms) = setup(&zone, &c, 4);
    let at = now() + 3;
    let add = |vm: i32, action: &str, args: &str| {
        ok(
            &w,
            "one.vm.schedadd",
            vec![
                i(vm),
                s(&format!(
                    "SCHED_ACTION = [ ACTION = \"{action}\", ARGS = \"{args}\", TIME = \"{at}\" ]"
                )),
            ],
        )
    };
    add(vms[0], "snapshot-create", "vm-snap");
    add(vms[1], "disk-snapshot-create", "0,disk-snap");
    add(vms[2], "backup", &ds.to_string());
    add(vms[3], "snapshot-revert", "9");
    add(vms[3], "disk-snapshot-create", "x");

    // Killed around the due time: either a run applied and recorded itself, or the next
    // leader runs it.
    let mut zone = zone;
    let new = kill_leader_at(&mut zone, leader, at);
    let c = zone.servers[new].client();
    let done = |vm: i32| {
        let body = info(&c, "one.vm.info", vm);
        in_state(&c, vm, 3, 3)
            && field(&body, "DONE").and_then(|d| d.parse::<i64>().ok()) >= Some(at)
    };
    zone.wait_until(DEADLINE, "the snapshot ran", || done(vms[0]));
    zone.wait_until(DEADLINE, "the disk snapshot ran", || done(vms[1]));
    zone.wait_until(DEADLINE, "the backup ran", || {
        done(vms[2]) && ids(&info(&c, "one.vm.info", vms[2]), "BACKUP_IDS").len() == 1
    });
    zone.wait_until(DEADLINE, "the refusals are recorded", || {
        let body = info(&c, "one.vm.info", vms[3]);
        body.contains(&format!(
            "[snapshot-revert] Could not revert VM {} to snapshot 9, it does not exist.",
            vms[3]
        )) && body.contains(
            "Missing or malformed ARGS for: disk-snapshot-create. Format: disk-id, snapshot-name",
        )
    });
    // Give a second run every chance to happen before checking there was none.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let body = info(&c, "one.vm.info", vms[0]);
    assert_eq!(count(&body, "<SNAPSHOT_ID>"), 1, "{body}");
    assert!(body.contains("<NAME><![CDATA[vm-snap]]></NAME>"), "{body}");
    let body = info(&c, "one.vm.info", vms[1]);
    assert_eq!(count(&body, "disk-snap]]></NAME>"), 1, "{body}");
    let body = info(&c, "one.vm.info", vms[2]);
    assert_eq!(ids(&body, "BACKUP_IDS").len(), 1, "{body}");
    assert_eq!(field(&body, "MESSAGE").as_deref(), Some(""), "{body}");
    zone.servers[leader].start();
}

/// Backup jobs whose VMs were never placed stay active in OpenNebula (their VMs stay OUTDATED),
/// and the leader reads a bounded number of active jobs per pass: one user's pile of them must
/// not hold back another's job, whatever their priorities.
#[test]
fn jobs_of_vms_never_placed_never_hold_back_the_others() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let (ds, vms) = setup(&zone, &c, 1);
    c.call(
        "one.user.allocate",
        vec![s("mallory"), s("pw"), s(""), Value::Array(vec![])],
    )
    .unwrap();
    let mallory = zone.servers[0].client_as("mallory", "pw");
    for n in 0..70 {
        let held = ok(
            &mallory,
            "one.vm.allocate",
            vec![s("CPU = 0.1\nMEMORY = 16"), Value::Bool(true)],
        );
        let job = ok(
            &mallory,
            "one.backupjob.allocate",
            vec![s(&format!("NAME = pile-{n}\nBACKUP_VMS = \"{held}\""))],
        );
        ok(&mallory, "one.backupjob.backup", vec![i(job)]);
    }
    let job = ok(
        &c,
        "one.backupjob.allocate",
        vec![s(&format!(
            "NAME = real\nBACKUP_VMS = \"{}\"\nDATASTORE_ID = {ds}\nPRIORITY = 10",
            vms[0]
        ))],
    );
    ok(&c, "one.backupjob.backup", vec![i(job)]);
    zone.wait_until(DEADLINE, "the real job's VM is backed up", || {
        ids(&info(&c, "one.backupjob.info", job), "UPDATED_VMS") == vec![vms[0]]
    });
}
