//! VM bodies as pool calls print them, kept between calls (issue 16).
//!
//! `one.vmpool.info` of 10k VMs spent most of its time parsing each VM's templates and
//! building its XML again on every call, though a VM's body changes only when its row does.
//! A body is a pure function of the row the pool query reads (the VM's columns, its last
//! placement and newest monitoring record, owner and group names), so each kept body carries
//! a fingerprint of the row it was printed from, and is used only while the row read now has
//! the same fingerprint: nothing has to invalidate it, a write on any server, a snapshot
//! install or a restore included, and a row that changed is printed again and replaces it.
//! The fingerprint is taken where SQLite's cursor holds the row, so a VM that did not change
//! is neither copied out of SQLite nor read into a `VmRow`.
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
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use sqlstore::{RawRow, ValueView};

/// The most bytes of bodies (and their entries) kept: 10k VMs of a few attributes take
/// ~15 MiB for both forms; larger pools keep what fits, the rest is printed on every call.
pub const BUDGET: usize = 16 << 20;

/// What an entry costs besides its text: the map's slot, the entry, the allocations' headers.
const ENTRY_OVERHEAD: usize = 96;

/// Which body of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// it as it is instead of encoding the handler's value (`api::handle`). Shared with the
    /// answers kept (`vm_pool_answers`), so it is never copied.
    pub static PREPARED: std::cell::RefCell<Option<axum::body::Bytes>>;
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
pub fn prepare(answer: axum::body::Bytes) -> bool {
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

    /// Every column of the row as the query returned it: the body is a function of them
    /// (`VmRow` is read from them alone), and hashing them where SQLite holds them spares a
    /// row that did not change every copy.
    fn fingerprint(&self, row: &RawRow<'_>) -> sqlstore::sql::Result<u64> {
        let mut h = self.key.build_hasher();
        h.write_usize(row.len());
        for i in 0..row.len() {
            match row.value(i)? {
                ValueView::Null => h.write_u8(0),
                ValueView::Int(n) => {
                    h.write_u8(1);
                    h.write_i64(n);
                }
                ValueView::Real(f) => {
                    h.write_u8(2);
                    h.write_u64(f.to_bits());
                }
                ValueView::Text(t) => {
                    h.write_u8(3);
                    h.write_usize(t.len());
                    h.write(t);
                }
                ValueView::Blob(b) => {
                    h.write_u8(4);
                    h.write_usize(b.len());
                    h.write(b);
                }
            }
        }
        Ok(h.finish())
    }
}

impl Pass<'_> {
    /// Appends the `form` body of VM `oid`, read from `row` (column 0 is its id), escaped as
    /// XML-RPC `<string>` text, to `out`: the kept one when the row has not changed since it
    /// was printed, else `render`'s (through `scratch`), which is then kept if it fits.
    pub fn write<E: From<sqlstore::SqlError>>(
        &mut self,
        row: &RawRow<'_>,
        form: Form,
        out: &mut String,
        scratch: &mut String,
        render: impl FnOnce(&mut String) -> Result<(), E>,
    ) -> Result<(), E> {
        let cache = self.cache;
        let oid = row.int(0)?;
        let print = cache.fingerprint(row)?;
        {
            let mut inner = cache.lock();
            if let Some(e) = inner.by_vm.get_mut(&oid) {
                if e.print == print {
                    e.used = self.call;
                    if let Some(body) = e.form(form) {
                        out.push_str(body);
                        return Ok(());
                    }
                }
            }
        }
        scratch.clear();
        render(scratch)?;
        let start = out.len();
        xmlrpc::escape_into(out, scratch);
        self.keep(oid, print, form, &out[start..]);
        Ok(())
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
    use sqlstore::{Row, SqlValue};

    /// A VM's row as the tests need it: its id, a name and a template.
    fn vm(oid: i64, template: &str) -> Row {
        Row::new(vec![
            SqlValue::Int(oid),
            SqlValue::Text(format!("vm-{oid}")),
            SqlValue::Text(template.into()),
        ])
    }

    thread_local! {
        static RENDERED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn render(row: &Row, out: &mut String) -> Result<(), sqlstore::SqlError> {
        RENDERED.with(|n| n.set(n.get() + 1));
        let name: String = row.get(1)?;
        let template: String = row.get(2)?;
        out.push_str(&format!("<VM>{name}|{template}</VM>"));
        Ok(())
    }

    fn print(c: &BodyCache, vms: &[Row], form: Form) -> String {
        let mut pass = c.begin();
        let (mut out, mut scratch) = (String::new(), String::new());
        for v in vms {
            pass.write(&RawRow::owned(v), form, &mut out, &mut scratch, |text| {
                render(v, text)
            })
            .unwrap();
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
        vms[1] = vm(1, "B=3");
        // A column that is not printed here still counts: the body is a function of the row.
        let mut zero = vm(0, "A=1").values().to_vec();
        zero.push(SqlValue::Null);
        vms[0] = Row::new(zero);
        assert_eq!(
            print(&c, &vms, Form::Short),
            "&lt;VM&gt;vm-0|A=1&lt;/VM&gt;&lt;VM&gt;vm-1|B=3&lt;/VM&gt;"
        );
        assert_eq!(rendered(), 2);
    }

    #[test]
    fn values_of_different_kinds_or_split_differently_do_not_collide() {
        let c = BodyCache::new(1 << 20);
        let print_of = |values: Vec<SqlValue>| {
            let row = Row::new(values);
            c.fingerprint(&RawRow::owned(&row)).unwrap()
        };
        let text = |t: &str| SqlValue::Text(t.into());
        assert_ne!(
            print_of(vec![SqlValue::Int(1), text("ab"), text("c")]),
            print_of(vec![SqlValue::Int(1), text("a"), text("bc")])
        );
        assert_ne!(
            print_of(vec![SqlValue::Int(1), SqlValue::Null]),
            print_of(vec![SqlValue::Int(1), SqlValue::Int(0)])
        );
        assert_ne!(
            print_of(vec![SqlValue::Int(1), text("x")]),
            print_of(vec![SqlValue::Int(1), SqlValue::Blob(b"x".to_vec())])
        );
        assert_eq!(
            print_of(vec![SqlValue::Int(1), text("x")]),
            print_of(vec![SqlValue::Int(1), text("x")])
        );
    }

    #[test]
    fn the_bodies_kept_stay_within_the_budget() {
        let budget = 10 * (ENTRY_OVERHEAD + 40);
        let c = BodyCache::new(budget);
        let vms: Vec<Row> = (0..100).map(|i| vm(i, "A=1")).collect();
        let out = print(&c, &vms, Form::Short);
        assert_eq!(out.matches("&lt;VM&gt;").count(), 100);
        assert!(c.bytes() <= budget, "{} > {budget}", c.bytes());
        assert!(c.bytes() > 0);
        // Bodies of VMs no longer listed make room for those listed now.
        let others: Vec<Row> = (100..105).map(|i| vm(i, "A=1")).collect();
        rendered();
        print(&c, &others, Form::Short);
        assert_eq!(rendered(), 5);
        print(&c, &others, Form::Short);
        assert_eq!(rendered(), 0);
        assert!(c.bytes() <= budget);
    }
}
