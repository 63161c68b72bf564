//! VM bodies as pool calls print them, kept between calls (issue 16).
//!
//! `one.vmpool.info` of 10k VMs spent most of its time parsing each VM's templates and
//! building its XML again on every call, though a VM's body changes only when its row does.
//! A body is a pure function of the [`VmRow`] the pool query reads (its columns, last
//! placement and newest monitoring record, owner and group names), so each kept body carries
//! a fingerprint of the row it was printed from, and is used only while the row read now has
//! the same fingerprint: nothing has to invalidate it, a write on any server, a snapshot
//! install or a restore included, and a row that changed is printed again and replaces it.
//!
//! The fingerprint is SipHash-1-3 under a key drawn at random when the process starts (std's
//! `RandomState`): no client can choose a template whose fingerprint collides with another
//! state of the same VM, and a chance collision of two states of one VM has odds of 2^-64.
//!
//! Bodies are kept as the XML-RPC answer carries them (escaped as `<string>` text), and a pool
//! call run by the dispatcher hands it its whole answer ready to send ([`PREPARED`]): a pool
//! answer of megabytes is then written once, not built, then escaped into a second copy.
//!
//! Memory: the bodies kept, with their keys, take at most [`BUDGET`] bytes (counted as their
//! text plus a fixed overhead per entry). When a new body would not fit, the bodies no call
//! used since the current one started (deleted VMs', VMs nobody listed lately) are dropped,
//! once per call; if it still does not fit it is printed and not kept. docs/memory.md counts
//! this bound in a server's memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use sqlstore::objects::vm::{History, VmRow};

/// The most bytes of bodies (and their entries) kept: 10k VMs of a few attributes take
/// ~15 MiB for both forms; larger pools keep what fits, the rest is printed on every call.
pub const BUDGET: usize = 16 << 20;

/// What an entry costs besides its text: the map's slot, the entry, the allocations' headers.
const ENTRY_OVERHEAD: usize = 96;

/// Which body of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `VirtualMachine::to_xml_short` (`one.vmpool.info`).
    Short,
    /// `to_xml_extended(1, false)` (`one.vmpool.infoextended`).
    Pool,
}

struct Entry {
    print: u64,
    short: Option<Box<str>>,
    pool: Option<Box<str>>,
    /// The call that last used it ([`BodyCache::begin`]).
    used: u64,
}

impl Entry {
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + self.short.as_ref().map_or(0, |s| s.len())
            + self.pool.as_ref().map_or(0, |s| s.len())
    }

    fn form(&mut self, form: Form) -> &mut Option<Box<str>> {
        match form {
            Form::Short => &mut self.short,
            Form::Pool => &mut self.pool,
        }
    }
}

#[derive(Default)]
struct Inner {
    by_vm: HashMap<i64, Entry>,
    bytes: usize,
}

/// The bodies kept, by VM id.
pub struct BodyCache {
    inner: Mutex<Inner>,
    key: std::collections::hash_map::RandomState,
    calls: AtomicU64,
    budget: usize,
}

/// The process's bodies. One for every server a process runs: entries are checked against
/// the row's content, so two stores sharing it stay correct.
pub static BODIES: LazyLock<BodyCache> = LazyLock::new(|| BodyCache::new(BUDGET));

tokio::task_local! {
    /// A call's whole XML-RPC answer, when its handler wrote it itself: the dispatcher sends
    /// it as it is instead of encoding the handler's value (`api::handle`).
    pub static PREPARED: std::cell::RefCell<Option<String>>;
}

/// Whether the running call may hand its answer over in [`PREPARED`].
pub fn can_prepare() -> bool {
    PREPARED.try_with(|_| ()).is_ok()
}

/// What `xmlrpc::write_response(&one::success(Value::String(text)))` writes before the
/// escaped text...
pub const ANSWER_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params>\
    <param><value><array><data><value><boolean>1</boolean></value><value><string>";
/// ...and after it.
pub const ANSWER_TAIL: &str =
    "</string></value><value><i4>0</i4></value></data></array></value></param></params>\
     </methodResponse>";

/// Hands `answer` (from [`ANSWER_HEAD`] to [`ANSWER_TAIL`]) to the dispatcher; `false` when the
/// call does not run under it ([`can_prepare`] says so first).
pub fn prepare(answer: String) -> bool {
    PREPARED
        .try_with(move |p| *p.borrow_mut() = Some(answer))
        .is_ok()
}

/// One pool call's use of the cache.
pub struct Pass<'a> {
    cache: &'a BodyCache,
    call: u64,
    swept: bool,
}

impl BodyCache {
    pub fn new(budget: usize) -> BodyCache {
        BodyCache {
            inner: Mutex::default(),
            key: Default::default(),
            calls: AtomicU64::new(0),
            budget,
        }
    }

    /// Starts a pool call.
    pub fn begin(&self) -> Pass<'_> {
        Pass {
            cache: self,
            call: self.calls.fetch_add(1, Ordering::Relaxed) + 1,
            swept: false,
        }
    }

    /// The bytes kept now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves consistent entries (each change is one insert or
        // remove with its byte count), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fingerprint(&self, v: &VmRow) -> u64 {
        let mut h = self.key.build_hasher();
        // Every field, named: a field added to `VmRow` does not compile here until it is hashed.
        let VmRow {
            head,
            lock,
            state,
            lcm_state,
            prev_state,
            prev_lcm_state,
            stime,
            etime,
            cpu,
            memory,
            template,
            user_template,
            resched,
            history,
            monitoring,
        } = v;
        let sqlstore::Head {
            owned,
            name,
            uname,
            gname,
        } = head;
        for n in [owned.oid, owned.uid, owned.gid, owned.perms] {
            h.write_i64(n);
        }
        name.hash(&mut h);
        uname.hash(&mut h);
        gname.hash(&mut h);
        for n in [lock.level, lock.owner, lock.time, lock.req_id] {
            h.write_i64(n);
        }
        for n in [
            *state,
            *lcm_state,
            *prev_state,
            *prev_lcm_state,
            *stime,
            *etime,
            *memory,
        ] {
            h.write_i64(n);
        }
        h.write_u64(cpu.to_bits());
        template.hash(&mut h);
        user_template.hash(&mut h);
        resched.hash(&mut h);
        h.write_usize(history.len());
        for History {
            seq,
            hid,
            hostname,
            vm_mad,
            stime,
            etime,
        } in history
        {
            for n in [*seq, *hid, *stime, *etime] {
                h.write_i64(n);
            }
            hostname.hash(&mut h);
            vm_mad.hash(&mut h);
        }
        match monitoring {
            None => h.write_u8(0),
            Some(m) => {
                let sqlstore::objects::monitoring::VmRecord {
                    vmid,
                    timestamp,
                    cpu,
                    memory,
                    netrx,
                    nettx,
                    diskrdbytes,
                    diskwrbytes,
                    diskrdiops,
                    diskwriops,
                } = m;
                h.write_u8(1);
                for n in [
                    *vmid,
                    *timestamp,
                    *cpu,
                    *memory,
                    *netrx,
                    *nettx,
                    *diskrdbytes,
                    *diskwrbytes,
                    *diskrdiops,
                    *diskwriops,
                ] {
                    h.write_i64(n);
                }
            }
        }
        h.finish()
    }
}

impl Pass<'_> {
    /// Appends `v`'s `form` body, escaped as XML-RPC `<string>` text, to `out`: the kept one
    /// when `v` has not changed since it was printed, else `render`'s (through `scratch`),
    /// which is then kept if it fits.
    pub fn write(
        &mut self,
        v: &VmRow,
        form: Form,
        out: &mut String,
        scratch: &mut String,
        render: fn(&VmRow, &mut String),
    ) {
        let cache = self.cache;
        let oid = v.head.owned.oid;
        let print = cache.fingerprint(v);
        {
            let mut inner = cache.lock();
            if let Some(e) = inner.by_vm.get_mut(&oid) {
                if e.print == print {
                    e.used = self.call;
                    if let Some(body) = e.form(form) {
                        out.push_str(body);
                        return;
                    }
                }
            }
        }
        scratch.clear();
        render(v, scratch);
        let start = out.len();
        xmlrpc::escape_into(out, scratch);
        self.keep(oid, print, form, &out[start..]);
    }

    fn keep(&mut self, oid: i64, print: u64, form: Form, body: &str) {
        let mut inner = self.cache.lock();
        let inner = &mut *inner;
        let (before, mut entry) = match inner.by_vm.remove(&oid) {
            Some(e) if e.print == print => (e.bytes(), e),
            Some(e) => (
                e.bytes(),
                Entry {
                    print,
                    short: None,
                    pool: None,
                    used: self.call,
                },
            ),
            None => (
                0,
                Entry {
                    print,
                    short: None,
                    pool: None,
                    used: self.call,
                },
            ),
        };
        inner.bytes -= before;
        entry.used = self.call;
        *entry.form(form) = Some(body.into());
        let mut fits = inner.bytes + entry.bytes() <= self.cache.budget;
        if !fits && !self.swept {
            self.swept = true;
            let call = self.call;
            inner.by_vm.retain(|_, e| e.used >= call);
            inner.bytes = inner.by_vm.values().map(Entry::bytes).sum();
            fits = inner.bytes + entry.bytes() <= self.cache.budget;
        }
        if !fits {
            // Keep what was kept of the other form, if that still fits alone.
            *entry.form(form) = None;
            if entry.short.is_none() && entry.pool.is_none() {
                return;
            }
            if inner.bytes + entry.bytes() > self.cache.budget {
                return;
            }
        }
        inner.bytes += entry.bytes();
        inner.by_vm.insert(oid, entry);
    }
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
            lock: Default::default(),
            state: 1,
            lcm_state: 0,
            prev_state: 1,
            prev_lcm_state: 0,
            stime: 1,
            etime: 0,
            cpu: 1.0,
            memory: 64,
            template: template.into(),
            user_template: String::new(),
            resched: false,
            history: Vec::new(),
            monitoring: None,
        }
    }

    thread_local! {
        static RENDERED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn render(v: &VmRow, out: &mut String) {
        RENDERED.with(|n| n.set(n.get() + 1));
        out.push_str(&format!("<VM>{}|{}</VM>", v.head.name, v.template));
    }

    fn print(c: &BodyCache, vms: &[VmRow], form: Form) -> String {
        let mut pass = c.begin();
        let (mut out, mut scratch) = (String::new(), String::new());
        for v in vms {
            pass.write(v, form, &mut out, &mut scratch, render);
        }
        out
    }

    #[test]
    fn a_prepared_answer_is_what_the_encoder_writes() {
        let text = "<VM_POOL><VM><NAME>a&b\r\u{1}\u{FFFF}]]></NAME></VM></VM_POOL>";
        let mut answer = ANSWER_HEAD.to_string();
        xmlrpc::escape_into(&mut answer, text);
        answer.push_str(ANSWER_TAIL);
        let encoded = xmlrpc::write_response(&xmlrpc::one::success(xmlrpc::Value::String(
            text.to_string(),
        )));
        assert_eq!(answer, encoded);
    }

    fn rendered() -> usize {
        RENDERED.with(|n| n.replace(0))
    }

    #[test]
    fn an_unchanged_vm_is_printed_once_and_a_changed_one_again() {
        let c = BodyCache::new(1 << 20);
        let mut vms = vec![vm(0, "A=1"), vm(1, "B=2")];
        let first = print(&c, &vms, Form::Short);
        assert_eq!(rendered(), 2);
        assert_eq!(print(&c, &vms, Form::Short), first);
        assert_eq!(rendered(), 0);
        // The other form is its own body.
        print(&c, &vms, Form::Pool);
        assert_eq!(rendered(), 2);
        vms[1].template = "B=3".into();
        vms[0].monitoring = Some(sqlstore::objects::monitoring::VmRecord {
            vmid: 0,
            timestamp: 5,
            cpu: 1,
            memory: 2,
            netrx: 0,
            nettx: 0,
            diskrdbytes: 0,
            diskwrbytes: 0,
            diskrdiops: 0,
            diskwriops: 0,
        });
        assert_eq!(
            print(&c, &vms, Form::Short),
            "&lt;VM&gt;vm-0|A=1&lt;/VM&gt;&lt;VM&gt;vm-1|B=3&lt;/VM&gt;"
        );
        assert_eq!(rendered(), 2);
    }

    #[test]
    fn the_bodies_kept_stay_within_the_budget() {
        let budget = 10 * (ENTRY_OVERHEAD + 40);
        let c = BodyCache::new(budget);
        let vms: Vec<VmRow> = (0..100).map(|i| vm(i, "A=1")).collect();
        let out = print(&c, &vms, Form::Short);
        assert_eq!(out.matches("&lt;VM&gt;").count(), 100);
        assert!(c.bytes() <= budget, "{} > {budget}", c.bytes());
        assert!(c.bytes() > 0);
        // Bodies of VMs no longer listed make room for those listed now.
        let others: Vec<VmRow> = (100..105).map(|i| vm(i, "A=1")).collect();
        rendered();
        print(&c, &others, Form::Short);
        assert_eq!(rendered(), 5);
        print(&c, &others, Form::Short);
        assert_eq!(rendered(), 0);
        assert!(c.bytes() <= budget);
    }
}
