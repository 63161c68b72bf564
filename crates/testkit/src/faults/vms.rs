//! The VM workload of the fault suite: a user's clients instantiate VMs from a template with a
//! NIC (a lease of an address range) and a DISK (an image), wait for them to run, hot-attach a
//! disk and a NIC, migrate them between two dummy hosts and terminate them, while the faults run.
//!
//! Afterwards, on the healed zone, every figure the servers keep about VMs must agree with the
//! VMs themselves: no VM is left in a transient state no driver step leaves, host usage is the
//! sum of the VMs on the host, a network's leases are the NICs of live VMs, an image's users are
//! the live VMs with a disk of it, the user's quotas are what its VMs hold, and every VM whose
//! creation was acknowledged exists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cli::xml::Element;
use cli::Client;
use lincheck::{Outcome, SetAdd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xmlrpc::Value;

use super::round::RoundReport;
use super::workload::{write_outcome, Members, CLIENT_TIMEOUT};
use crate::zone::{Zone, DEADLINE};

/// Name prefix of the workload's VMs.
pub const VM_PREFIX: &str = "vmw-";
const USER: &str = "vmworker";
const PASSWORD: &str = "vmworker-pw";
/// Live VMs a client keeps at most: it terminates one before creating more.
const LIVE_PER_CLIENT: usize = 3;
/// How long the healed zone's drivers get to finish every VM's transition.
const SETTLE: Duration = Duration::from_secs(30);

const ACTIVE: i64 = 3;
const DONE: i64 = 6;
const RUNNING: i64 = 3;
/// States whose VMs hold their host's capacity (`ON_HOST` of the server).
const ON_HOST: [i64; 3] = [ACTIVE, 5, 8];
/// States a VM stays in with no driver step to take: HOLD, STOPPED, SUSPENDED, DONE, POWEROFF,
/// UNDEPLOYED (and ACTIVE only when RUNNING).
const RESTING: [i64; 6] = [2, 4, 5, DONE, 8, 9];

/// What the clients use, made before the faults start.
#[derive(Debug, Clone)]
pub struct VmSetup {
    pub user_id: i64,
    pub session: String,
    pub template: i64,
    pub network: i64,
    /// The template's disk.
    pub image: i64,
    /// The image hot-attached.
    pub extra_image: i64,
    pub hosts: Vec<i64>,
}

fn id(v: Result<Value, cli::CallError>, what: &str) -> i64 {
    match v {
        Ok(v) => v
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: not an id: {v:?}")),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

/// Whether `method(oid)` answers a body containing `needle` (through `c`).
fn shows(c: &Client, method: &str, oid: i64, needle: &str) -> bool {
    c.call_xml(method, vec![int(oid)])
        .is_ok_and(|b| b.contains(needle))
}

/// Two dummy hosts, a network with an address range, two images, a template using them, and a
/// user of group `users` allowed to use them; waits until hosts are monitored and images ready.
pub fn prepare(zone: &Zone, leader: usize) -> VmSetup {
    let c = zone.servers[leader].client();
    let hosts: Vec<i64> = ["vmw-host-a", "vmw-host-b"]
        .iter()
        .map(|name| {
            id(
                c.call(
                    "one.host.allocate",
                    vec![s(name), s("dummy"), s("dummy"), int(-1)],
                ),
                "host",
            )
        })
        .collect();
    let network = id(
        c.call(
            "one.vn.allocate",
            vec![s(
                "NAME = vmw-net\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.77.0.1, SIZE = 250 ]",
            )],
        ),
        "network",
    );
    let image = |name: &str| {
        id(
            c.call(
                "one.image.allocate",
                vec![
                    s(&format!("NAME = {name}\nTYPE = DATABLOCK\nSIZE = 8")),
                    int(1),
                ],
            ),
            "image",
        )
    };
    let (root, extra) = (image("vmw-root"), image("vmw-extra"));
    let template = id(
        c.call(
            "one.template.allocate",
            vec![s(&format!(
                "NAME = vmw\nCPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_ID = {network} ]\nDISK = [ IMAGE_ID = {root} ]"
            ))],
        ),
        "template",
    );
    let user_id = id(
        c.call("one.user.allocate", vec![s(USER), s(PASSWORD), s("")]),
        "user",
    );
    // Others may use them: the user is in `users`, and they belong to oneadmin.
    let others_use = |method: &str, oid: i64| {
        let mut p = vec![int(oid)];
        p.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(int));
        c.call(method, p)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    };
    others_use("one.template.chmod", template);
    others_use("one.image.chmod", root);
    others_use("one.image.chmod", extra);
    others_use("one.vn.chmod", network);
    for &h in &hosts {
        zone.wait_until(DEADLINE, "the VM workload's host is monitored", || {
            shows(&c, "one.host.info", h, "<STATE>2</STATE>")
        });
    }
    for im in [root, extra] {
        zone.wait_until(DEADLINE, "the VM workload's image is ready", || {
            shows(&c, "one.image.info", im, "<STATE>1</STATE>")
        });
    }
    VmSetup {
        user_id,
        session: format!("{USER}:{PASSWORD}"),
        template,
        network,
        image: root,
        extra_image: extra,
        hosts,
    }
}

/// What the VM clients recorded.
#[derive(Default)]
pub struct VmHistory {
    /// Creations, by VM name, with invoke and complete times.
    pub creates: Vec<(u64, u64, SetAdd)>,
    /// Per operation: calls answered ok, refused or failed, and of unknown outcome.
    pub ops: BTreeMap<&'static str, [u64; 3]>,
    /// Completion times (ns) of acknowledged writes.
    pub write_oks: Vec<u64>,
    /// A few distinct error messages per operation, for the summary.
    pub errors: BTreeMap<&'static str, BTreeSet<String>>,
}

impl VmHistory {
    fn count<T>(&mut self, op: &'static str, r: &Result<T, cli::CallError>, complete: u64) {
        let outcome = write_outcome(r);
        if let Err(e) = r {
            let seen = self.errors.entry(op).or_default();
            if seen.len() < 4 {
                // Ids vary: keep the wording.
                let text: String = e
                    .to_string()
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                seen.insert(text);
            }
        }
        let slot = match outcome {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Unknown => 2,
        };
        self.ops.entry(op).or_default()[slot] += 1;
        if outcome == Outcome::Ok {
            self.write_oks.push(complete);
        }
    }
}

/// The running VM clients.
pub struct VmWorkload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    history: Arc<Mutex<VmHistory>>,
}

struct Ctx {
    setup: VmSetup,
    /// oneadmin's session: migration is an admin action.
    admin: String,
    members: Members,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<VmHistory>>,
    epoch: Instant,
    pace: Duration,
}

/// One of a client's VMs, and which day-2 calls it was given (each at most once, so the
/// figures checked later stay small and simple).
struct Mine {
    id: i64,
    disk: bool,
    nic: bool,
    migrated: bool,
}

impl VmWorkload {
    pub fn start(
        setup: VmSetup,
        clients: usize,
        admin: String,
        seed: u64,
        members: Members,
        epoch: Instant,
    ) -> VmWorkload {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(VmHistory::default()));
        let ctx = Arc::new(Ctx {
            setup,
            admin,
            members,
            stop: stop.clone(),
            history: history.clone(),
            epoch,
            pace: Duration::from_millis(120),
        });
        let threads = (0..clients)
            .map(|c| {
                let ctx = ctx.clone();
                let seed = seed ^ (0x7a0 + c as u64);
                std::thread::spawn(move || vm_client(&ctx, c, seed))
            })
            .collect();
        VmWorkload {
            stop,
            threads,
            history,
        }
    }

    pub fn finish(self) -> VmHistory {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let mut h = self.history.lock().unwrap();
        std::mem::take(&mut *h)
    }
}

/// `(STATE, LCM_STATE)` of a VM, read through the leader; `None` when unreadable.
fn vm_state(c: &Client, vm: i64) -> Option<(i64, i64)> {
    let xml = c.call_xml("one.vm.info", vec![int(vm)]).ok()?;
    let e = Element::parse(&xml).ok()?.expect("VM").ok()?;
    Some((e.int_of("STATE").ok()?, e.int_of("LCM_STATE").ok()?))
}

fn vm_client(ctx: &Ctx, c: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<Mine> = Vec::new();
    let mut n = 0u64;
    let now = || ctx.epoch.elapsed().as_nanos() as u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        let endpoint = {
            let m = ctx.members.read().unwrap();
            (!m.is_empty()).then(|| m[rng.gen_range(0..m.len())].1.clone())
        };
        let Some(endpoint) = endpoint else {
            std::thread::sleep(ctx.pace);
            continue;
        };
        let user = Client::new(&endpoint, ctx.setup.session.clone(), CLIENT_TIMEOUT);
        let leader_read = user
            .clone()
            .with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
        if mine.is_empty() || (mine.len() < LIVE_PER_CLIENT && rng.gen_bool(0.3)) {
            let name = format!("{VM_PREFIX}{c}-{n}");
            n += 1;
            let invoke = now();
            let r = user.call(
                "one.template.instantiate",
                vec![
                    int(ctx.setup.template),
                    s(&name),
                    Value::Bool(false),
                    s(""),
                    Value::Bool(false),
                ],
            );
            let complete = now();
            let outcome = write_outcome(&r);
            if let Ok(v) = &r {
                if let Some(id) = v.as_i64() {
                    mine.push(Mine {
                        id,
                        disk: false,
                        nic: false,
                        migrated: false,
                    });
                }
            }
            let mut h = ctx.history.lock().unwrap();
            h.count("instantiate", &r, complete);
            h.creates.push((invoke, complete, SetAdd { name, outcome }));
        } else {
            let k = rng.gen_range(0..mine.len());
            let vm = mine[k].id;
            let running = vm_state(&leader_read, vm) == Some((ACTIVE, RUNNING));
            let full = mine.len() >= LIVE_PER_CLIENT;
            let (op, r) = if !running && !full {
                // Still deploying (or busy): wait for it.
                std::thread::sleep(ctx.pace);
                continue;
            } else if full || (mine[k].disk && mine[k].nic && mine[k].migrated) {
                let action = if rng.gen_bool(0.5) {
                    "terminate-hard"
                } else {
                    "terminate"
                };
                let r = user.call("one.vm.action", vec![s(action), int(vm)]);
                // Unless certainly refused (still busy), it leaves this client's hands.
                if write_outcome(&r) != Outcome::Failed {
                    mine.swap_remove(k);
                }
                ("terminate", r)
            } else if !mine[k].disk {
                mine[k].disk = true;
                let t = format!("DISK = [ IMAGE_ID = {} ]", ctx.setup.extra_image);
                (
                    "attach disk",
                    user.call("one.vm.attach", vec![int(vm), s(&t)]),
                )
            } else if !mine[k].nic {
                mine[k].nic = true;
                let t = format!("NIC = [ NETWORK_ID = {} ]", ctx.setup.network);
                (
                    "attach nic",
                    user.call("one.vm.attachnic", vec![int(vm), s(&t)]),
                )
            } else {
                mine[k].migrated = true;
                let admin = Client::new(&endpoint, ctx.admin.clone(), CLIENT_TIMEOUT);
                let host = ctx.setup.hosts[rng.gen_range(0..ctx.setup.hosts.len())];
                let live = rng.gen_bool(0.5);
                (
                    "migrate",
                    admin.call(
                        "one.vm.migrate",
                        vec![
                            int(vm),
                            int(host),
                            Value::Bool(live),
                            Value::Bool(false),
                            int(-1),
                        ],
                    ),
                )
            };
            let complete = now();
            ctx.history.lock().unwrap().count(op, &r, complete);
        }
        let p = ctx.pace.as_millis() as u64;
        std::thread::sleep(Duration::from_millis(rng.gen_range(p / 2..=p * 3 / 2)));
    }
}

/// One VM as its body shows it.
#[derive(Debug)]
struct Vm {
    id: i64,
    name: String,
    uid: i64,
    state: i64,
    lcm: i64,
    cpu: f64,
    memory: i64,
    /// (NETWORK_ID, IP) of each NIC.
    nics: Vec<(i64, String)>,
    /// IMAGE_ID of each DISK.
    images: Vec<i64>,
    /// HID of the last history record.
    host: Option<i64>,
}

impl Vm {
    fn parse(xml: &str) -> Option<Vm> {
        let e = Element::parse(xml).ok()?.expect("VM").ok()?;
        let t = e.child("TEMPLATE")?;
        let num =
            |e: &Element, name: &str| -> Option<i64> { e.text_of(name).ok()?.trim().parse().ok() };
        Some(Vm {
            id: e.int_of("ID").ok()?,
            name: e.text_of("NAME").ok()?.to_string(),
            uid: e.int_of("UID").ok()?,
            state: e.int_of("STATE").ok()?,
            lcm: e.int_of("LCM_STATE").ok()?,
            cpu: t.text_of("CPU").ok()?.trim().parse().ok()?,
            memory: num(t, "MEMORY")?,
            nics: t
                .children_named("NIC")
                .filter_map(|n| Some((num(n, "NETWORK_ID")?, n.text_of("IP").ok()?.to_string())))
                .collect(),
            images: t
                .children_named("DISK")
                .filter_map(|d| num(d, "IMAGE_ID"))
                .collect(),
            host: e
                .child("HISTORY_RECORDS")
                .and_then(|h| h.children_named("HISTORY").last())
                .and_then(|h| num(h, "HID")),
        })
    }

    fn live(&self) -> bool {
        self.state != DONE
    }

    fn resting(&self) -> bool {
        RESTING.contains(&self.state) || (self.state == ACTIVE && self.lcm == RUNNING)
    }
}

/// The ids of every VM in the pool, DONE ones included.
fn pool_ids(c: &Client) -> Result<Vec<i64>, String> {
    let xml = c
        .call_xml("one.vmpool.info", vec![int(-2), int(-1), int(-1), int(-2)])
        .map_err(|e| e.to_string())?;
    let pool = Element::parse(&xml)
        .and_then(|e| e.expect("VM_POOL"))
        .map_err(|e| e.to_string())?;
    Ok(pool
        .children_named("VM")
        .filter_map(|v| v.int_of("ID").ok())
        .collect())
}

fn read_vms(c: &Client) -> Result<Vec<Vm>, String> {
    pool_ids(c)?
        .into_iter()
        .map(|id| {
            let xml = c
                .call_xml("one.vm.info", vec![int(id)])
                .map_err(|e| format!("one.vm.info {id}: {e}"))?;
            Vm::parse(&xml).ok_or_else(|| format!("VM {id}: unreadable body {xml}"))
        })
        .collect()
}

fn body(c: &Client, method: &str, oid: i64, root: &str) -> Result<Element, String> {
    let xml = c
        .call_xml(method, vec![int(oid)])
        .map_err(|e| format!("{method} {oid}: {e}"))?;
    Element::parse(&xml)
        .and_then(|e| e.expect(root))
        .map_err(|e| format!("{method} {oid}: {e}"))
}

fn float(e: &Element, name: &str) -> f64 {
    e.text_of(name)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The checks on the healed, settled zone; adds a summary and any violation to `report`.
pub fn check(zone: &Zone, setup: &VmSetup, h: &VmHistory, report: &mut RoundReport) {
    let leader = zone.leader();
    let c = zone.servers[leader]
        .client()
        .with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
    let v = &mut report.violations;

    // The drivers finish whatever was moving when the faults stopped.
    let start = Instant::now();
    let vms = loop {
        match read_vms(&c) {
            Ok(vms) if vms.iter().all(Vm::resting) => break vms,
            Ok(vms) if start.elapsed() > SETTLE => {
                for vm in vms.iter().filter(|vm| !vm.resting()) {
                    v.push(format!(
                        "vm: VM {} ({}) stuck in state {} / LCM state {} {SETTLE:?} after healing",
                        vm.id, vm.name, vm.state, vm.lcm
                    ));
                }
                break vms;
            }
            Err(e) if start.elapsed() > SETTLE => {
                v.push(format!("vm: could not read the VMs after healing: {e}"));
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };

    // Acknowledged creations are never lost (a grow-only set of names).
    let present: BTreeSet<String> = vms
        .iter()
        .filter(|vm| vm.name.starts_with(VM_PREFIX))
        .map(|vm| vm.name.clone())
        .collect();
    let adds: Vec<SetAdd> = h.creates.iter().map(|(_, _, a)| a.clone()).collect();
    match lincheck::check_set(&adds, &present) {
        Ok(stats) => report
            .summary
            .push_str(&format!("vm creations: {stats:?}\n")),
        Err(vs) => v.extend(vs.into_iter().map(|x| format!("vm creations: {x}"))),
    }

    let live: Vec<&Vm> = vms.iter().filter(|vm| vm.live()).collect();

    // Host usage is the sum of what the VMs on it hold.
    for &host in &setup.hosts {
        let on: Vec<&&Vm> = live
            .iter()
            .filter(|vm| ON_HOST.contains(&vm.state) && vm.host == Some(host))
            .collect();
        let want = (
            on.iter()
                .map(|vm| (vm.cpu * 100.0).round() as i64)
                .sum::<i64>(),
            on.iter().map(|vm| vm.memory * 1024).sum::<i64>(),
            on.len() as i64,
        );
        match body(&c, "one.host.info", host, "HOST") {
            Ok(e) => {
                let share = e.child("HOST_SHARE");
                let got = share.map(|s| {
                    (
                        s.int_of("CPU_USAGE").unwrap_or(-1),
                        s.int_of("MEM_USAGE").unwrap_or(-1),
                        s.int_of("RUNNING_VMS").unwrap_or(-1),
                    )
                });
                if got != Some(want) {
                    let ids: Vec<i64> = on.iter().map(|vm| vm.id).collect();
                    v.push(format!(
                        "vm: host {host} shows (CPU_USAGE, MEM_USAGE, RUNNING_VMS) {got:?}, its VMs {ids:?} hold {want:?}"
                    ));
                }
            }
            Err(e) => v.push(format!("vm: {e}")),
        }
    }

    // A network's leases are exactly the NICs of live VMs.
    let want: BTreeSet<(String, i64)> = live
        .iter()
        .flat_map(|vm| {
            vm.nics
                .iter()
                .filter(|(net, _)| *net == setup.network)
                .map(|(_, ip)| (ip.clone(), vm.id))
        })
        .collect();
    let nic_count: usize = live
        .iter()
        .map(|vm| vm.nics.iter().filter(|(n, _)| *n == setup.network).count())
        .sum();
    if nic_count != want.len() {
        v.push(format!(
            "vm: {nic_count} NICs of live VMs on network {} but {} distinct addresses",
            setup.network,
            want.len()
        ));
    }
    match body(&c, "one.vn.info", setup.network, "VNET") {
        Ok(e) => {
            let got: BTreeSet<(String, i64)> = e
                .child("AR_POOL")
                .into_iter()
                .flat_map(|p| p.children_named("AR"))
                .filter_map(|ar| ar.child("LEASES"))
                .flat_map(|l| l.children_named("LEASE"))
                .filter_map(|l| Some((l.text_of("IP").ok()?.to_string(), l.int_of("VM").ok()?)))
                .collect();
            if got != want {
                v.push(format!(
                    "vm: network {} leases {:?} but live VMs' NICs are {:?}",
                    setup.network,
                    got.difference(&want).collect::<Vec<_>>(),
                    want.difference(&got).collect::<Vec<_>>()
                ));
            }
        }
        Err(e) => v.push(format!("vm: {e}")),
    }

    // An image's users are the live VMs with a disk of it.
    for image in [setup.image, setup.extra_image] {
        let want: BTreeSet<i64> = live
            .iter()
            .filter(|vm| vm.images.contains(&image))
            .map(|vm| vm.id)
            .collect();
        match body(&c, "one.image.info", image, "IMAGE") {
            Ok(e) => {
                let got: BTreeSet<i64> = e
                    .child("VMS")
                    .into_iter()
                    .flat_map(|x| x.children_named("ID"))
                    .filter_map(|x| x.text.trim().parse().ok())
                    .collect();
                let running = e.int_of("RUNNING_VMS").unwrap_or(-1);
                let state = e.int_of("STATE").unwrap_or(-1);
                // READY (1) with no VM, USED (2) with some.
                let want_state = if want.is_empty() { 1 } else { 2 };
                if got != want || running != want.len() as i64 || state != want_state {
                    v.push(format!(
                        "vm: image {image} state {state} RUNNING_VMS {running} VMS {got:?}, but live VMs using it are {want:?}"
                    ));
                }
            }
            Err(e) => v.push(format!("vm: {e}")),
        }
    }

    // The user's quotas are what its live VMs hold.
    let users: Vec<&&Vm> = live.iter().filter(|vm| vm.uid == setup.user_id).collect();
    match body(&c, "one.user.info", setup.user_id, "USER") {
        Ok(e) => {
            let vm_q = e.child("VM_QUOTA").and_then(|q| q.child("VM"));
            let got = vm_q.map_or((0.0, 0.0, 0.0), |q| {
                (
                    float(q, "VMS_USED"),
                    float(q, "CPU_USED"),
                    float(q, "MEMORY_USED"),
                )
            });
            let want = (
                users.len() as f64,
                users.iter().map(|vm| vm.cpu).sum::<f64>(),
                users.iter().map(|vm| vm.memory as f64).sum::<f64>(),
            );
            let near = |a: f64, b: f64| (a - b).abs() < 0.006;
            if !(near(got.0, want.0) && near(got.1, want.1) && near(got.2, want.2)) {
                v.push(format!(
                    "vm: user {} VM_QUOTA (VMS, CPU, MEMORY) used {got:?}, its VMs hold {want:?}",
                    setup.user_id
                ));
            }
            let used_of = |container: &str, kind: &str, rid: i64, metric: &str| -> f64 {
                e.child(container)
                    .into_iter()
                    .flat_map(|q| q.children_named(kind))
                    .find(|x| x.int_of("ID").ok() == Some(rid))
                    .map_or(0.0, |x| float(x, metric))
            };
            let leases = users
                .iter()
                .map(|vm| vm.nics.iter().filter(|(n, _)| *n == setup.network).count())
                .sum::<usize>() as f64;
            let got = used_of("NETWORK_QUOTA", "NETWORK", setup.network, "LEASES_USED");
            if !near(got, leases) {
                v.push(format!(
                    "vm: user {} NETWORK_QUOTA LEASES_USED {got} on network {}, its VMs' NICs {leases}",
                    setup.user_id, setup.network
                ));
            }
            for image in [setup.image, setup.extra_image] {
                let rvms = users.iter().filter(|vm| vm.images.contains(&image)).count() as f64;
                let got = used_of("IMAGE_QUOTA", "IMAGE", image, "RVMS_USED");
                if !near(got, rvms) {
                    v.push(format!(
                        "vm: user {} IMAGE_QUOTA RVMS_USED {got} for image {image}, {rvms} of its VMs use it",
                        setup.user_id
                    ));
                }
            }
        }
        Err(e) => v.push(format!("vm: {e}")),
    }

    let by_state = vms.iter().fold(BTreeMap::new(), |mut m, vm| {
        *m.entry((vm.state, vm.lcm)).or_insert(0usize) += 1;
        m
    });
    report.summary.push_str(&format!(
        "vms: {} in the pool, (state, lcm) counts {by_state:?}; calls [ok, refused, unknown] {:?}; errors seen {:?}\n",
        vms.len(),
        h.ops,
        h.errors
    ));
}
