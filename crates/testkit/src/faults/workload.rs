//! The clients: threads calling the real `/RPC2` API of the zone's servers while faults run,
//! recording every operation with its invoke and complete times and its outcome.
//!
//! - set clients create users with unique names (a grow-only set);
//! - register clients write and read one template attribute of a few users, reading through
//!   the leader (`X-OneHA-Read: leader`), for the linearizability check;
//! - follower readers read their own server's local (possibly stale) state, which must never
//!   show what was never written nor go backwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cli::xml::Element;
use cli::{CallError, Client};
use lincheck::{Outcome, RegEvent, RegOp, SetAdd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xmlrpc::Value;

/// Longer than any wait oned does before answering (write deadline plus forwarding).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Name prefix of the set workload's users.
pub const SET_PREFIX: &str = "set-";
/// The template attribute the register workload writes.
pub const REGISTER: &str = "REG";
const INTERNAL: i32 = 0x2000;

/// Where clients find the servers: index in the zone and direct `/RPC2` endpoint of each member.
pub type Members = Arc<RwLock<Vec<(usize, String)>>>;

/// Everything the clients recorded.
#[derive(Default)]
pub struct History {
    pub adds: Vec<(u64, u64, SetAdd)>,
    pub registers: BTreeMap<usize, Vec<RegEvent>>,
    /// Per (reader, server index): the sets of `set-` users it saw, in order.
    pub follower_sets: BTreeMap<(usize, usize), Vec<BTreeSet<String>>>,
    /// Per key: the register values follower readers saw.
    pub follower_values: BTreeMap<usize, Vec<Option<String>>>,
    /// Completion times (ns) of successful writes, to measure unavailability.
    pub write_oks: Vec<u64>,
    pub reads: Counts,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
}

/// What a write's error tells about whether it was applied.
///
/// Only answers that prove the call never reached the log count as failed: a connection that
/// could not be made, an OpenNebula error other than INTERNAL (checked before writing), and the
/// INTERNAL errors oned gives before proposing. Everything else (timeouts, lost answers, "no
/// quorum") is unknown: the write may still be applied.
pub fn write_outcome<T>(r: &Result<T, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(CallError::Transport { not_sent: true, .. }) => Outcome::Failed,
        Err(CallError::One(e)) if e.code != INTERNAL => Outcome::Failed,
        Err(CallError::One(e)) => {
            let m = e.message.as_str();
            let before_log = [
                "oned cluster in election mode",
                "no leader found",
                "leadership changed",
                "leader changed while forwarding",
                "too many writes queued",
            ];
            if before_log.iter().any(|s| m.contains(s)) {
                Outcome::Failed
            } else {
                Outcome::Unknown
            }
        }
        Err(_) => Outcome::Unknown,
    }
}

/// The value of [`REGISTER`] in a `one.user.info` answer.
pub fn register_value(xml: &str) -> Option<Option<String>> {
    let user = Element::parse(xml).ok()?.expect("USER").ok()?;
    let template = user.child("TEMPLATE")?;
    Some(template.child(REGISTER).map(|e| e.text.clone()))
}

/// The `set-` user names in a `one.userpool.info` answer.
pub fn set_names(xml: &str) -> Option<BTreeSet<String>> {
    let pool = Element::parse(xml).ok()?.expect("USER_POOL").ok()?;
    let mut names = BTreeSet::new();
    for u in pool.children_named("USER") {
        let name = u.text_of("NAME").ok()?;
        if name.starts_with(SET_PREFIX) {
            names.insert(name.to_string());
        }
    }
    Some(names)
}

/// The running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    history: Arc<Mutex<History>>,
}

/// How many clients of each kind, and the keys of the register workload (user ids).
pub struct Spec {
    pub seed: u64,
    pub set_clients: usize,
    pub register_clients: usize,
    pub follower_readers: usize,
    pub keys: Vec<i64>,
    pub session: String,
    /// Pause between a client's operations, so long runs keep the pool small.
    pub pace: Duration,
    /// Register reads go to the leader (`X-OneHA-Read: leader`). Turned off only to show the
    /// checker catches the stale reads a follower serves.
    pub leader_reads: bool,
}

struct Shared {
    members: Members,
    session: String,
    history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    pace: Duration,
    leader_reads: bool,
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The member client `n` talks to (spread over all servers).
    fn member(&self, n: usize) -> Option<(usize, String)> {
        let m = self.members.read().unwrap();
        if m.is_empty() {
            return None;
        }
        Some(m[n % m.len()].clone())
    }

    fn client(&self, endpoint: &str) -> Client {
        Client::new(endpoint, self.session.clone(), CLIENT_TIMEOUT)
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn pause(&self, rng: &mut StdRng) {
        let p = self.pace.as_millis() as u64;
        std::thread::sleep(Duration::from_millis(
            rng.gen_range(p / 2..=p.max(1) * 3 / 2),
        ));
    }
}

impl Workload {
    pub fn start(spec: Spec, members: Members, epoch: Instant) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        for &k in &spec.keys {
            history
                .lock()
                .unwrap()
                .registers
                .insert(k as usize, Vec::new());
        }
        let shared = Arc::new(Shared {
            members,
            session: spec.session.clone(),
            history: history.clone(),
            stop: stop.clone(),
            epoch,
            pace: spec.pace,
            leader_reads: spec.leader_reads,
        });
        let mut threads = Vec::new();
        let keys = Arc::new(spec.keys.clone());
        for c in 0..spec.set_clients {
            let sh = shared.clone();
            let seed = spec.seed ^ (0x5e7 + c as u64);
            threads.push(std::thread::spawn(move || set_client(&sh, c, seed)));
        }
        for c in 0..spec.register_clients {
            let sh = shared.clone();
            let keys = keys.clone();
            let seed = spec.seed ^ (0x4e6 + c as u64);
            threads.push(std::thread::spawn(move || {
                register_client(&sh, c, &keys, seed)
            }));
        }
        for c in 0..spec.follower_readers {
            let sh = shared.clone();
            let keys = keys.clone();
            let seed = spec.seed ^ (0xf011 + c as u64);
            threads.push(std::thread::spawn(move || {
                follower_reader(&sh, c, &keys, seed)
            }));
        }
        Workload {
            stop,
            threads,
            history,
        }
    }

    /// Stops the clients (each finishes its current call) and returns what they recorded.
    pub fn finish(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let mut h = self.history.lock().unwrap();
        std::mem::take(&mut *h)
    }
}

fn set_client(sh: &Shared, c: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while sh.running() {
        let Some((_, endpoint)) = sh.member(c + n as usize) else {
            sh.pause(&mut rng);
            continue;
        };
        let name = format!("{SET_PREFIX}{c}-{n}");
        n += 1;
        let invoke = sh.now();
        let r = sh.client(&endpoint).call(
            wire::method::USER_ALLOCATE,
            vec![
                Value::String(name.clone()),
                Value::String("pw".into()),
                Value::String(String::new()),
            ],
        );
        let complete = sh.now();
        let outcome = write_outcome(&r);
        let mut h = sh.history.lock().unwrap();
        if outcome == Outcome::Ok {
            h.write_oks.push(complete);
        }
        h.adds.push((invoke, complete, SetAdd { name, outcome }));
        drop(h);
        sh.pause(&mut rng);
    }
}

fn register_client(sh: &Shared, c: usize, keys: &[i64], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while sh.running() {
        let key = keys[rng.gen_range(0..keys.len())];
        let Some((_, endpoint)) = sh.member(rng.gen_range(0..64)) else {
            sh.pause(&mut rng);
            continue;
        };
        let mut client = sh.client(&endpoint);
        if sh.leader_reads {
            client = client.with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
        }
        let id = Value::Int(key as i32);
        let invoke = sh.now();
        let (op, outcome) = if rng.gen_bool(0.5) {
            let value = format!("c{c}-{n}");
            n += 1;
            let r = client.call(
                wire::method::USER_UPDATE,
                vec![
                    id,
                    Value::String(format!("{REGISTER} = \"{value}\"")),
                    Value::Int(1),
                ],
            );
            (RegOp::Write(value), write_outcome(&r))
        } else {
            match client.call_xml(wire::method::USER_INFO, vec![id]) {
                Ok(xml) => match register_value(&xml) {
                    Some(v) => (RegOp::Read(v), Outcome::Ok),
                    None => (RegOp::Read(None), Outcome::Failed),
                },
                Err(_) => (RegOp::Read(None), Outcome::Failed),
            }
        };
        let complete = sh.now();
        let mut h = sh.history.lock().unwrap();
        match (&op, outcome) {
            (RegOp::Write(_), Outcome::Ok) => h.write_oks.push(complete),
            (RegOp::Read(_), Outcome::Ok) => h.reads.ok += 1,
            (RegOp::Read(_), _) => h.reads.failed += 1,
            _ => {}
        }
        h.registers.entry(key as usize).or_default().push(RegEvent {
            client: c,
            invoke,
            complete,
            op,
            outcome,
        });
        drop(h);
        sh.pause(&mut rng);
    }
}

fn follower_reader(sh: &Shared, c: usize, keys: &[i64], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while sh.running() {
        let Some((server, endpoint)) = sh.member(c) else {
            sh.pause(&mut rng);
            continue;
        };
        let client = sh.client(&endpoint);
        if let Ok(xml) = client.call_xml(wire::method::USERPOOL_INFO, vec![]) {
            if let Some(names) = set_names(&xml) {
                sh.history
                    .lock()
                    .unwrap()
                    .follower_sets
                    .entry((c, server))
                    .or_default()
                    .push(names);
            }
        }
        let key = keys[rng.gen_range(0..keys.len())];
        if let Ok(xml) = client.call_xml(wire::method::USER_INFO, vec![Value::Int(key as i32)]) {
            if let Some(v) = register_value(&xml) {
                sh.history
                    .lock()
                    .unwrap()
                    .follower_values
                    .entry(key as usize)
                    .or_default()
                    .push(v);
            }
        }
        // Reading the whole pool is costly; a few reads a second are enough to catch a regression.
        for _ in 0..4 {
            sh.pause(&mut rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmlrpc::one::OneError;

    fn one(code: i32, message: &str) -> Result<(), CallError> {
        Err(CallError::One(OneError {
            code,
            message: message.to_string(),
        }))
    }

    #[test]
    fn only_answers_given_before_the_log_count_as_failed() {
        assert_eq!(write_outcome(&Ok::<(), CallError>(())), Outcome::Ok);
        assert_eq!(
            write_outcome(&one(0x400, "[one.user.update] Error getting user [9].")),
            Outcome::Failed
        );
        assert_eq!(
            write_outcome(&one(
                INTERNAL,
                "[one.user.allocate] Cannot process request, oned cluster in election mode"
            )),
            Outcome::Failed
        );
        assert_eq!(
            write_outcome(&one(INTERNAL, "[one.user.allocate] Cannot process request, no quorum: the write was not committed within 3s; its outcome is unknown")),
            Outcome::Unknown
        );
        let refused: Result<(), CallError> = Err(CallError::Transport {
            url: "u".into(),
            message: "Connection refused".into(),
            not_sent: true,
        });
        assert_eq!(write_outcome(&refused), Outcome::Failed);
        let timeout: Result<(), CallError> = Err(CallError::Transport {
            url: "u".into(),
            message: "timed out reading response".into(),
            not_sent: false,
        });
        assert_eq!(write_outcome(&timeout), Outcome::Unknown);
    }

    #[test]
    fn the_register_is_read_from_the_user_template() {
        let xml = "<USER><ID>3</ID><NAME>reg-0</NAME><TEMPLATE><REG><![CDATA[c1-7]]></REG></TEMPLATE></USER>";
        assert_eq!(register_value(xml), Some(Some("c1-7".to_string())));
        let empty = "<USER><ID>3</ID><NAME>reg-0</NAME><TEMPLATE></TEMPLATE></USER>";
        assert_eq!(register_value(empty), Some(None));
    }
}
