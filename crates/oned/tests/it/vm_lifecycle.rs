//! One VM's whole life in a three-server zone: allocate (a NIC leasing an address, a DISK of an
//! image), deploy, hot-attach a disk and a NIC, resize, live-migrate, snapshot, back up and
//! terminate, with the host, lease, image, datastore and quota figures checked after each step;
//! then the same life with the leader SIGKILLed while the VM migrates and while it is backed
//! up (the new leader's drivers finish both), which must end the same.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE};

const USER: &str = "lifer";
const PASSWORD: &str = "lifer-pw";
const NO_EXISTS: i32 = 0x400;
const ACTION: i32 = 0x800;
const AUTHORIZATION: i32 = 0x200;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i64) -> Value {
    Value::Int(v as i32)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i64 {
    match c.call(method, params) {
        Ok(v) => v.as_i64().unwrap(),
        Err(e) => panic!("{method}: {e}"),
    }
}

/// The body `method(oid)` answers; `None` on an error (a leader change while a step waits).
fn doc(c: &cli::Client, method: &str, oid: i64) -> Option<cli::xml::Element> {
    let xml = c.call_xml(method, vec![i(oid)]).ok()?;
    cli::xml::Element::parse(&xml).ok()
}

fn int(e: Option<&cli::xml::Element>, name: &str) -> i64 {
    e.and_then(|e| e.text_of(name).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map_or(-1, |f| f.round() as i64)
}

/// What the zone shows about the VM and what it holds, read through the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Figures {
    /// (STATE, LCM_STATE)
    state: (i64, i64),
    /// The hosts of its history records, in order, a host repeated by consecutive records
    /// counted once: an operation on a placed VM (attach, resize...) closes its record and
    /// opens a copy on the same host, as OpenNebula's `close_cp_history`.
    hosts: Vec<i64>,
    /// Per host: (CPU_USAGE, MEM_USAGE, RUNNING_VMS); RUNNING_VMS is -1 when the host's VMS
    /// does not list this VM exactly as many times as it counts.
    usage: [(i64, i64, i64); 2],
    /// The VM's NICs' IPs.
    ips: Vec<String>,
    /// Leases taken in the network.
    leases: usize,
    /// RUNNING_VMS of the root and the attached image.
    image_vms: [i64; 2],
    /// The user's VM_QUOTA VMS_USED, CPU_USED x 100, MEMORY_USED.
    vm_quota: (i64, i64, i64),
    /// The user's NETWORK_QUOTA LEASES_USED and IMAGE_QUOTA RVMS_USED of both images.
    leases_used: i64,
    rvms_used: [i64; 2],
    /// Images in the backup datastore (its IMAGES) and the user's DATASTORE_QUOTA IMAGES_USED
    /// there.
    backups: (usize, i64),
    snapshots: usize,
}

struct Objects {
    hosts: [i64; 2],
    net: i64,
    images: [i64; 2],
    backup_ds: i64,
    user: i64,
}

fn figures(c: &cli::Client, o: &Objects, vm: i64) -> Option<Figures> {
    let v = doc(c, "one.vm.info", vm)?;
    let t = v.child("TEMPLATE");
    let state = (v.int_of("STATE").ok()?, v.int_of("LCM_STATE").ok()?);
    let mut hosts: Vec<i64> = v
        .child("HISTORY_RECORDS")
        .into_iter()
        .flat_map(|h| h.children_named("HISTORY"))
        .map(|h| h.int_of("HID").unwrap_or(-1))
        .collect();
    hosts.dedup();
    let mut usage = [(0, 0, 0); 2];
    for (n, h) in o.hosts.iter().enumerate() {
        let d = doc(c, "one.host.info", *h)?;
        let share = d.child("HOST_SHARE");
        let listed: Vec<i64> = d
            .child("VMS")
            .into_iter()
            .flat_map(|l| l.children_named("ID"))
            .filter_map(|id| id.text.parse().ok())
            .collect();
        let running = int(share, "RUNNING_VMS");
        let agree = listed.len() as i64 == running && listed.iter().all(|&id| id == vm);
        usage[n] = (
            int(share, "CPU_USAGE"),
            int(share, "MEM_USAGE"),
            if agree { running } else { -1 },
        );
    }
    let ips = t
        .into_iter()
        .flat_map(|t| t.children_named("NIC"))
        .map(|n| n.text_of("IP").unwrap_or("").to_string())
        .collect();
    let leases = doc(c, "one.vn.info", o.net)?
        .child("AR_POOL")
        .into_iter()
        .flat_map(|p| p.children_named("AR"))
        .filter_map(|a| a.child("LEASES"))
        .map(|l| l.children_named("LEASE").count())
        .sum();
    let mut image_vms = [0; 2];
    for (n, im) in o.images.iter().enumerate() {
        image_vms[n] = doc(c, "one.image.info", *im)?.int_of("RUNNING_VMS").ok()?;
    }
    let u = doc(c, "one.user.info", o.user)?;
    let entry = |container: &str, kind: &str, rid: i64| {
        u.child(container)
            .into_iter()
            .flat_map(|q| q.children_named(kind))
            .find(|x| x.int_of("ID").ok() == Some(rid))
            .cloned()
    };
    let vmq = u.child("VM_QUOTA").and_then(|q| q.child("VM"));
    let vm_quota = (
        int(vmq, "VMS_USED").max(0),
        vmq.and_then(|q| q.text_of("CPU_USED").ok())
            .and_then(|t| t.parse::<f64>().ok())
            .map_or(0, |f| (f * 100.0).round() as i64),
        int(vmq, "MEMORY_USED").max(0),
    );
    let leases_used = int(
        entry("NETWORK_QUOTA", "NETWORK", o.net).as_ref(),
        "LEASES_USED",
    )
    .max(0);
    let rvms_used = o
        .images
        .map(|im| int(entry("IMAGE_QUOTA", "IMAGE", im).as_ref(), "RVMS_USED").max(0));
    let ds = doc(c, "one.datastore.info", o.backup_ds)?;
    let backups = (
        ds.child("IMAGES")
            .map_or(0, |x| x.children_named("ID").count()),
        int(
            entry("DATASTORE_QUOTA", "DATASTORE", o.backup_ds).as_ref(),
            "IMAGES_USED",
        )
        .max(0),
    );
    // System snapshots are the template's SNAPSHOT vectors (SNAPSHOTS holds disk snapshots).
    let snapshots = t.map_or(0, |x| x.children_named("SNAPSHOT").count());
    Some(Figures {
        state,
        hosts,
        usage,
        ips,
        leases,
        image_vms,
        vm_quota,
        leases_used,
        rvms_used,
        backups,
        snapshots,
    })
}

/// The zone, and the clients a step uses: `w` (a follower, the user's session), `admin` (the
/// same follower as oneadmin), `c` (the leader, for reads that must see every write).
struct Run {
    zone: Zone,
    w: cli::Client,
    admin: cli::Client,
    c: cli::Client,
    /// Kill the leader right after these steps' calls.
    kill_after: &'static [&'static str],
    kills: usize,
}

impl Run {
    fn new(kill_after: &'static [&'static str]) -> Run {
        let zone = Zone::bootstrap(3);
        let (w, admin, c) = clients(&zone);
        Run {
            zone,
            w,
            admin,
            c,
            kill_after,
            kills: 0,
        }
    }

    /// After `step`'s call: the leader dies (SIGKILL) if this is the step, a new one takes over,
    /// the dead server comes back as a follower.
    fn after(&mut self, step: &str) {
        if !self.kill_after.contains(&step) {
            return;
        }
        let old = self.zone.leader();
        eprintln!("--- SIGKILL the leader (server {old}) right after {step}");
        self.zone.servers[old].kill();
        let new = self.zone.leader();
        eprintln!("--- server {new} leads; restart server {old}");
        self.zone.servers[old].start();
        (self.w, self.admin, self.c) = clients(&self.zone);
        self.kills += 1;
    }

    /// Waits until the figures are `want` (the driver moves the VM on its own).
    fn expect(&self, o: &Objects, vm: i64, what: &str, want: &Figures) {
        let start = Instant::now();
        loop {
            let got = figures(&self.c, o, vm);
            if got.as_ref() == Some(want) {
                return;
            }
            if start.elapsed() > DEADLINE {
                self.zone.fail(&format!(
                    "timed out waiting until {what}:\n want {want:?}\n got  {got:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn clients(zone: &Zone) -> (cli::Client, cli::Client, cli::Client) {
    let leader = zone.leader();
    let f = &zone.servers[(leader + 1) % zone.servers.len()];
    (
        f.client_as(USER, PASSWORD),
        f.client(),
        zone.servers[leader].client(),
    )
}

fn setup(run: &Run) -> Objects {
    let a = &run.admin;
    let hosts = ["life-a", "life-b"].map(|n| {
        ok(
            a,
            "one.host.allocate",
            vec![s(n), s("dummy"), s("kvm"), i(-1)],
        )
    });
    let net = ok(
        a,
        "one.vn.allocate",
        vec![s(
            "NAME = life\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.9.0.1, SIZE = 8 ]",
        )],
    );
    let images = ["life-root", "life-extra"].map(|n| {
        ok(
            a,
            "one.image.allocate",
            vec![s(&format!("NAME = {n}\nTYPE = DATABLOCK\nSIZE = 16")), i(1)],
        )
    });
    let backup_ds = ok(
        a,
        "one.datastore.allocate",
        vec![s(
            "NAME = life-backups\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = localhost\nRSYNC_USER = oneadmin\nTM_MAD = -",
        )],
    );
    let user = ok(a, "one.user.allocate", vec![s(USER), s(PASSWORD), s("")]);
    // Others (the user's group `users`) may use them.
    let others_use = |method: &str, oid: i64| {
        let mut p = vec![i(oid)];
        p.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(i));
        ok(a, method, p);
    };
    others_use("one.vn.chmod", net);
    for im in images {
        others_use("one.image.chmod", im);
    }
    others_use("one.datastore.chmod", backup_ds);
    for h in hosts {
        run.zone.wait_until(DEADLINE, "the host is monitored", || {
            doc(&run.c, "one.host.info", h).is_some_and(|d| d.int_of("STATE") == Ok(2))
        });
    }
    for im in images {
        run.zone.wait_until(DEADLINE, "the image is ready", || {
            doc(&run.c, "one.image.info", im).is_some_and(|d| d.int_of("STATE") == Ok(1))
        });
    }
    Objects {
        hosts,
        net,
        images,
        backup_ds,
        user,
    }
}

fn refused<T: Debug>(r: Result<T, cli::CallError>, code: i32) {
    let (got, msg) = one_error(r);
    assert_eq!(got, code, "{msg}");
}

/// The whole life; returns the figures after each step.
fn life(kill_after: &'static [&'static str]) -> Vec<(&'static str, Figures)> {
    let mut run = Run::new(kill_after);
    let o = setup(&run);
    let mut seen = Vec::new();
    let (a, b) = (o.hosts[0], o.hosts[1]);

    eprintln!("--- allocate on hold: the quota, a lease and the image are taken at once");
    let vm = ok(
        &run.w,
        "one.vm.allocate",
        vec![
            s(&format!(
                "NAME = life\nCPU = 0.5\nMEMORY = 64\nNIC = [ NETWORK_ID = {} ]\nDISK = [ IMAGE_ID = {} ]",
                o.net, o.images[0]
            )),
            Value::Bool(true),
        ],
    );
    run.after("allocate");
    let mut want = Figures {
        state: (2, 0),
        hosts: vec![],
        usage: [(0, 0, 0); 2],
        ips: vec!["10.9.0.1".into()],
        leases: 1,
        image_vms: [1, 0],
        vm_quota: (1, 50, 64),
        leases_used: 1,
        rvms_used: [1, 0],
        backups: (0, 0),
        snapshots: 0,
    };
    run.expect(&o, vm, "the VM is held", &want);
    seen.push(("allocate", want.clone()));

    eprintln!("--- deploy on host a");
    refused(
        run.w.call("one.vm.deploy", vec![i(vm), i(a)]),
        AUTHORIZATION,
    );
    refused(
        run.admin.call("one.vm.deploy", vec![i(vm), i(99)]),
        NO_EXISTS,
    );
    ok(&run.admin, "one.vm.deploy", vec![i(vm), i(a)]);
    run.after("deploy");
    want.state = (3, 3);
    want.hosts = vec![a];
    want.usage = [(50, 64 * 1024, 1), (0, 0, 0)];
    run.expect(&o, vm, "the VM runs on a", &want);
    seen.push(("deploy", want.clone()));

    eprintln!("--- attach a disk");
    refused(
        run.w.call(
            "one.vm.attach",
            vec![i(vm + 1), s("DISK = [ IMAGE_ID = 0 ]")],
        ),
        NO_EXISTS,
    );
    ok(
        &run.w,
        "one.vm.attach",
        vec![i(vm), s(&format!("DISK = [ IMAGE_ID = {} ]", o.images[1]))],
    );
    run.after("attach");
    want.image_vms = [1, 1];
    want.rvms_used = [1, 1];
    run.expect(&o, vm, "the disk is attached", &want);
    seen.push(("attach", want.clone()));

    eprintln!("--- attach a NIC: the next address");
    ok(
        &run.w,
        "one.vm.attachnic",
        vec![i(vm), s(&format!("NIC = [ NETWORK_ID = {} ]", o.net))],
    );
    run.after("attachnic");
    want.ips.push("10.9.0.2".into());
    want.leases = 2;
    want.leases_used = 2;
    run.expect(&o, vm, "the NIC is attached", &want);
    seen.push(("attachnic", want.clone()));

    eprintln!("--- resize: the host and the quota follow");
    ok(
        &run.w,
        "one.vm.resize",
        vec![i(vm), s("CPU = 1\nMEMORY = 128"), Value::Bool(false)],
    );
    run.after("resize");
    want.usage[0] = (100, 128 * 1024, 1);
    want.vm_quota = (1, 100, 128);
    run.expect(&o, vm, "the VM is resized", &want);
    seen.push(("resize", want.clone()));

    eprintln!("--- live migrate to b");
    refused(
        run.w.call(
            "one.vm.migrate",
            vec![i(vm), i(b), Value::Bool(true), Value::Bool(false), i(-1)],
        ),
        AUTHORIZATION,
    );
    ok(
        &run.admin,
        "one.vm.migrate",
        vec![i(vm), i(b), Value::Bool(true), Value::Bool(false), i(-1)],
    );
    run.after("migrate");
    want.hosts = vec![a, b];
    want.usage = [(0, 0, 0), (100, 128 * 1024, 1)];
    run.expect(&o, vm, "the VM runs on b", &want);
    seen.push(("migrate", want.clone()));

    eprintln!("--- snapshot");
    ok(
        &run.w,
        "one.vm.snapshotcreate",
        vec![i(vm), s("before-backup")],
    );
    run.after("snapshot");
    want.snapshots = 1;
    run.expect(&o, vm, "the snapshot is taken", &want);
    seen.push(("snapshot", want.clone()));

    eprintln!("--- backup into the backup datastore");
    // An administrator's operation (VM_ADMIN_OPERATIONS), as migrate.
    refused(
        run.w.call(
            "one.vm.backup",
            vec![i(vm), i(o.backup_ds), Value::Bool(false)],
        ),
        AUTHORIZATION,
    );
    ok(
        &run.admin,
        "one.vm.backup",
        vec![i(vm), i(o.backup_ds), Value::Bool(false)],
    );
    run.after("backup");
    want.backups = (1, 1);
    run.expect(&o, vm, "the backup is taken", &want);
    seen.push(("backup", want.clone()));
    eprintln!("--- terminate: everything it held is free again, its backups stay");
    // An ACTIVE VM is named by its LCM state, as `VirtualMachine::state_str`.
    let (code, msg) = one_error(run.w.call("one.vm.action", vec![s("resume"), i(vm)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.action] Error performing action \"resume\": This action is not available for state RUNNING"
        )
    );
    ok(&run.w, "one.vm.action", vec![s("terminate"), i(vm)]);
    run.after("terminate");
    want.state = (6, 0);
    want.usage = [(0, 0, 0); 2];
    want.leases = 0;
    want.image_vms = [0, 0];
    want.vm_quota = (0, 0, 0);
    want.leases_used = 0;
    want.rvms_used = [0, 0];
    run.expect(&o, vm, "the VM is done", &want);
    seen.push(("terminate", want));
    assert_eq!(
        run.kills,
        kill_after.len(),
        "the leader was not killed after each of {kill_after:?}"
    );
    run.zone.wait_identical();
    seen
}

#[test]
fn a_vm_lives_from_allocate_to_terminate_with_every_figure_following_it() {
    life(&[]);
}

/// Every step waits for the same figures as the calm life, so a life that passes them all
/// ended the same.
#[test]
fn a_vm_life_with_the_leader_killed_mid_migration_and_mid_backup_ends_the_same() {
    let killed = life(&["migrate", "backup"]);
    assert_eq!(killed.last().map(|(step, _)| *step), Some("terminate"));
}
