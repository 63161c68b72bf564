//! The parts of a VM's `one.vm.info` body that come from its stored templates, kept while those
//! templates are unchanged.
//!
//! Building them parses both templates, takes the disk snapshots, scheduled actions and backups
//! out of the system one and prints everything again: ~10 % of a follower's CPU under a
//! `one.vm.info` load (docs/benchmarks.md, thirteenth round), for text that is a function of the
//! stored templates, the VM's id, CPU and MEMORY alone. So an answer is kept against exactly those
//! inputs, compared in full on every read: a change of any of them, by any server's write, is a
//! miss, and no write has to know about this cache.
//!
//! Bounded by bytes (keys and answers together), oldest entry out first; templates above
//! [`MAX_TEMPLATE`] are never kept. Pool answers do not come here: they are kept whole
//! (`vm_pool_cache`) and would only push single reads out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sqlstore::objects::vm::VmRow;

use super::xml::CORRUPT_TEMPLATES;

/// The template-derived parts of a body, in the order the body prints them.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Parts {
    /// `<SCHED_ACTIONS>` with the actions' ids.
    pub sched_ids: String,
    /// `<TEMPLATE>`, the scheduled actions last.
    pub template: String,
    pub user_template: String,
    pub disk_snapshots: String,
    pub backups: String,
}

impl Parts {
    fn bytes(&self) -> usize {
        self.sched_ids.len()
            + self.template.len()
            + self.user_template.len()
            + self.disk_snapshots.len()
            + self.backups.len()
    }
}

/// What all the cache holds, keys included.
const MAX_BYTES: usize = 4 << 20;
/// A VM whose templates are larger than this is built on every read.
const MAX_TEMPLATE: usize = 64 << 10;

/// What a kept answer was built from.
#[derive(PartialEq)]
struct Inputs {
    cpu: u64,
    memory: i64,
    template: String,
    user_template: String,
    /// A DONE VM prints no scheduled actions.
    done: bool,
}

fn is_done(v: &VmRow) -> bool {
    v.state == wire::VmState::Done.as_i64()
}

impl Inputs {
    fn matches(&self, v: &VmRow) -> bool {
        self.done == is_done(v)
            && self.cpu == v.cpu.to_bits()
            && self.memory == v.memory
            && self.template == v.template
            && self.user_template == v.user_template
    }
}

struct Kept {
    inputs: Inputs,
    parts: Arc<Parts>,
    /// Which insertion this is, so a stale place in the eviction queue is told apart.
    seq: u64,
    bytes: usize,
}

#[derive(Default)]
struct Cache {
    by_vm: HashMap<i64, Kept>,
    /// Oldest first: (VM id, insertion). May name entries replaced since; those are skipped.
    order: VecDeque<(i64, u64)>,
    bytes: usize,
    seq: u64,
}

impl Cache {
    fn get(&self, v: &VmRow) -> Option<Arc<Parts>> {
        self.by_vm
            .get(&v.head.owned.oid)
            .filter(|k| k.inputs.matches(v))
            .map(|k| k.parts.clone())
    }

    fn put(&mut self, v: &VmRow, parts: Arc<Parts>) {
        let oid = v.head.owned.oid;
        let bytes = v.template.len() + v.user_template.len() + parts.bytes();
        if bytes > MAX_BYTES / 4 {
            return;
        }
        self.seq += 1;
        let kept = Kept {
            inputs: Inputs {
                cpu: v.cpu.to_bits(),
                memory: v.memory,
                template: v.template.clone(),
                user_template: v.user_template.clone(),
                done: is_done(v),
            },
            parts,
            seq: self.seq,
            bytes,
        };
        if let Some(old) = self.by_vm.insert(oid, kept) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        self.order.push_back((oid, self.seq));
        while self.bytes > MAX_BYTES {
            let Some((oid, seq)) = self.order.pop_front() else {
                break;
            };
            if self.by_vm.get(&oid).is_some_and(|k| k.seq == seq) {
                if let Some(k) = self.by_vm.remove(&oid) {
                    self.bytes -= k.bytes;
                }
            }
        }
        // Replacements leave stale places behind; never let them outnumber the entries much.
        if self.order.len() > 2 * self.by_vm.len() + 64 {
            let by_vm = &self.by_vm;
            self.order
                .retain(|(oid, seq)| by_vm.get(oid).is_some_and(|k| k.seq == *seq));
        }
    }
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// VM `v`'s parts, from the cache when its inputs are those `build` would see.
pub(super) fn info_parts(v: &VmRow, build: impl FnOnce() -> Parts) -> Arc<Parts> {
    if v.template.len() + v.user_template.len() > MAX_TEMPLATE {
        return Arc::new(build());
    }
    // A poisoned lock only means another reader panicked mid-update: build without the cache.
    if let Some(hit) = CACHE
        .lock()
        .ok()
        .and_then(|c| c.as_ref().and_then(|c| c.get(v)))
    {
        return hit;
    }
    // A template that does not parse is counted and logged each time it is shown: never kept.
    // (Another reader's count meanwhile only costs this one its keeping.)
    let corrupt_before = CORRUPT_TEMPLATES.load(Ordering::Relaxed);
    let parts = Arc::new(build());
    if CORRUPT_TEMPLATES.load(Ordering::Relaxed) != corrupt_before {
        return parts;
    }
    if let Ok(mut c) = CACHE.lock() {
        c.get_or_insert_with(Cache::default).put(v, parts.clone());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(oid: i64, template: &str) -> VmRow {
        VmRow {
            head: sqlstore::Head {
                owned: sqlstore::Owned {
                    oid,
                    uid: 0,
                    gid: 0,
                    perms: 0o600,
                },
                name: format!("vm-{oid}"),
                uname: "oneadmin".into(),
                gname: "oneadmin".into(),
            },
            lock: sqlstore::Lock::default(),
            state: 1,
            lcm_state: 0,
            prev_state: 1,
            prev_lcm_state: 0,
            stime: 0,
            etime: 0,
            cpu: 1.0,
            memory: 128,
            template: template.to_string(),
            user_template: String::new(),
            resched: false,
            history: Vec::new(),
            monitoring: None,
        }
    }

    fn parts(s: &str) -> Parts {
        Parts {
            template: s.to_string(),
            ..Parts::default()
        }
    }

    #[test]
    fn a_kept_answer_serves_only_the_inputs_it_was_built_from() {
        let mut c = Cache::default();
        let v = vm(1, "A=1");
        c.put(&v, Arc::new(parts("one")));
        assert_eq!(c.get(&v).map(|p| p.template.clone()), Some("one".into()));
        let mut changed = v.clone();
        changed.template = "A=2".into();
        assert!(c.get(&changed).is_none(), "another template");
        let mut changed = v.clone();
        changed.memory = 256;
        assert!(c.get(&changed).is_none(), "another MEMORY");
        let mut changed = v.clone();
        changed.cpu = 2.0;
        assert!(c.get(&changed).is_none(), "another CPU");
        let mut changed = v.clone();
        changed.user_template = "B=1".into();
        assert!(c.get(&changed).is_none(), "another user template");
        assert!(c.get(&vm(2, "A=1")).is_none(), "another VM");
    }

    #[test]
    fn the_cache_stays_within_its_bytes_oldest_out_first() {
        let mut c = Cache::default();
        let big = "X".repeat(MAX_BYTES / 8);
        for oid in 0..20 {
            c.put(&vm(oid, &big), Arc::new(parts("t")));
            assert!(c.bytes <= MAX_BYTES, "{} bytes after VM {oid}", c.bytes);
        }
        assert!(c.get(&vm(0, &big)).is_none(), "the oldest went first");
        assert!(c.get(&vm(19, &big)).is_some(), "the newest stays");
        // Replacing one VM over and over leaves its stale places bounded.
        for n in 0..1000 {
            c.put(&vm(19, &format!("A={n}")), Arc::new(parts("t")));
        }
        assert!(c.order.len() <= 2 * c.by_vm.len() + 64, "{}", c.order.len());
        let held: usize = c.by_vm.values().map(|k| k.bytes).sum();
        assert_eq!(held, c.bytes, "the count follows what is held");
    }

    #[test]
    fn a_read_builds_once_and_a_corrupt_template_is_built_at_every_showing() {
        let fine = vm(i64::MAX - 1, "A=1");
        let first = info_parts(&fine, || parts("built"));
        let again = info_parts(&fine, || parts("built again"));
        assert_eq!(
            (&first.template[..], &again.template[..]),
            ("built", "built")
        );

        let corrupt = vm(i64::MAX - 2, "A=[");
        let showing = || {
            CORRUPT_TEMPLATES.fetch_add(1, Ordering::Relaxed);
            parts("empty")
        };
        info_parts(&corrupt, showing);
        let next = info_parts(&corrupt, || parts("shown again"));
        assert_eq!(
            next.template, "shown again",
            "not kept: counted at each showing"
        );
    }

    #[test]
    fn an_entry_too_large_for_its_share_is_not_kept() {
        let mut c = Cache::default();
        c.put(&vm(1, &"X".repeat(MAX_BYTES / 2)), Arc::new(parts("t")));
        assert!(c.by_vm.is_empty());
        assert_eq!(c.bytes, 0);
    }
}
