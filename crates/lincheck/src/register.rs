//! Linearizability of a single register with unknown outcomes.
//!
//! Cheap, precise checks run first so that common bugs get a clear message;
//! the full decision is a depth-first search over the call/return events with
//! a memo of explored (linearized set, value) states (Wing & Gong, Lowe 2017).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::{Outcome, Violation};

/// A register operation and what it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    /// Set the register to a value never written before.
    Write(String),
    /// The value read; `None` means the attribute was absent.
    Read(Option<String>),
}

/// One operation of one client on the register.
#[derive(Debug, Clone)]
pub struct RegEvent {
    /// Identifies the client, only for messages.
    pub client: usize,
    /// Taken just before sending the request.
    pub invoke: u64,
    /// Taken just after the answer; for [`Outcome::Unknown`] the time the
    /// client gave up, which does not bound when the operation took effect.
    pub complete: u64,
    pub op: RegOp,
    pub outcome: Outcome,
}

/// Figures about a successful check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations that took part in the search.
    pub ops: usize,
    /// Attempts to linearize an operation.
    pub explored: u64,
    /// Distinct search states memoised.
    pub states: usize,
    /// Unknown writes whose value was read, so they must have taken effect.
    pub unknown_kept: usize,
    /// Unknown writes nobody read; whether they took effect does not matter.
    pub unknown_dropped: usize,
    /// Failed writes and failed or unknown reads, which constrain nothing.
    pub ignored: usize,
}

/// Value id of the register's initial value; written values count from 1.
const INITIAL: u32 = 0;

/// Marks "no such entry" in the u32 index arrays.
const NIL: u32 = u32::MAX;

/// Checks that `history`, the operations on one register, has a
/// linearization starting from `initial` (`None`: attribute absent).
///
/// Failed writes never take effect; unknown writes take effect at some point
/// after their invoke or never; failed and unknown reads are ignored.
pub fn check_register(history: &[RegEvent], initial: Option<&str>) -> Result<Stats, Violation> {
    let fmt = Describe::new(history, initial);
    if let Some(i) = history.iter().position(|e| e.complete < e.invoke) {
        return Err(fmt.violation(
            "malformed history: operation completes before it is invoked",
            &[("", i)],
        ));
    }

    // Interning makes values comparable in O(1) and lets the search state fit
    // in a few machine words.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut writer: Vec<usize> = vec![usize::MAX];
    for (i, ev) in history.iter().enumerate() {
        let RegOp::Write(v) = &ev.op else { continue };
        if initial == Some(v.as_str()) {
            return Err(fmt.violation("malformed history: write of the initial value", &[("", i)]));
        }
        match ids.entry(v.as_str()) {
            Entry::Occupied(o) => {
                return Err(fmt.violation(
                    "malformed history: value written twice",
                    &[("", writer[*o.get() as usize]), ("", i)],
                ));
            }
            Entry::Vacant(slot) => {
                slot.insert(writer.len() as u32);
                writer.push(i);
            }
        }
    }
    let nvalues = writer.len();

    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| (history[i].invoke, i));

    let mut stats = Stats::default();
    // Ok reads as (event, value id), in invoke order so the earliest culprit
    // is the one reported.
    let mut reads: Vec<(usize, u32)> = Vec::new();
    for &i in &order {
        let ev = &history[i];
        let RegOp::Read(got) = &ev.op else {
            if ev.outcome == Outcome::Failed {
                stats.ignored += 1;
            }
            continue;
        };
        if ev.outcome != Outcome::Ok {
            stats.ignored += 1;
            continue;
        }
        let id = if got.as_deref() == initial {
            INITIAL
        } else if let Some(&id) = got.as_deref().and_then(|s| ids.get(s)) {
            id
        } else {
            return Err(fmt.violation("read of a value never written", &[("", i)]));
        };
        if id != INITIAL && history[writer[id as usize]].outcome == Outcome::Failed {
            return Err(fmt.violation(
                "read of a value never written: its write failed",
                &[("read: ", i), ("write: ", writer[id as usize])],
            ));
        }
        reads.push((i, id));
    }

    for &(r, v) in &reads {
        if v != INITIAL {
            let w = writer[v as usize];
            if history[r].complete < history[w].invoke {
                return Err(fmt.violation(
                    "read saw a value before it was written",
                    &[("read: ", r), ("write: ", w)],
                ));
            }
        }
    }

    check_stale_reads(history, &writer, &reads, &fmt)?;

    let mut read_count = vec![0u32; nvalues];
    for &(_, v) in &reads {
        read_count[v as usize] += 1;
    }

    // Search operations: finite ones first, then unknown writes that were
    // read; both groups in invoke order.
    let mut ops: Vec<SearchOp> = Vec::new();
    let mut infinite: Vec<SearchOp> = Vec::new();
    let mut read_iter = reads.iter().peekable();
    for &i in &order {
        let ev = &history[i];
        match &ev.op {
            RegOp::Write(v) => {
                let id = ids[v.as_str()];
                match ev.outcome {
                    Outcome::Ok => ops.push(SearchOp::new(i, ev, true, id, ev.complete)),
                    Outcome::Failed => {}
                    Outcome::Unknown if read_count[id as usize] > 0 => {
                        stats.unknown_kept += 1;
                        infinite.push(SearchOp::new(i, ev, true, id, u64::MAX));
                    }
                    Outcome::Unknown => stats.unknown_dropped += 1,
                }
            }
            RegOp::Read(_) => {
                if let Some(&&(r, id)) = read_iter.peek() {
                    if r == i {
                        read_iter.next();
                        ops.push(SearchOp::new(i, ev, false, id, ev.complete));
                    }
                }
            }
        }
    }
    let finite = ops.len();
    ops.extend(infinite);
    stats.ops = ops.len();
    if ops.is_empty() {
        return Ok(stats);
    }

    let mut search = Search::new(ops, finite, nvalues, read_count);
    match search.run() {
        Ok(()) => {
            stats.explored = search.explored;
            stats.states = search.cache.len();
            Ok(stats)
        }
        Err(stuck) => Err(search.stuck_violation(&stuck, &fmt, &writer)),
    }
}

/// Rejects reads whose value had certainly been overwritten before the read
/// began: some write X started after the value's write completed and X had
/// taken effect before the read was invoked. X took effect by `t` if it
/// completed Ok at `t`, or if a read of X's value completed at `t`.
fn check_stale_reads(
    history: &[RegEvent],
    writer: &[usize],
    reads: &[(usize, u32)],
    fmt: &Describe<'_>,
) -> Result<(), Violation> {
    struct Evidence {
        took_effect_by: u64,
        write_invoked: u64,
        write: usize,
        seen_by: Option<usize>,
    }
    let mut evidence: Vec<Evidence> = Vec::new();
    for (i, ev) in history.iter().enumerate() {
        if matches!(ev.op, RegOp::Write(_)) && ev.outcome == Outcome::Ok {
            evidence.push(Evidence {
                took_effect_by: ev.complete,
                write_invoked: ev.invoke,
                write: i,
                seen_by: None,
            });
        }
    }
    for &(r, v) in reads {
        if v != INITIAL {
            let w = writer[v as usize];
            evidence.push(Evidence {
                took_effect_by: history[r].complete,
                write_invoked: history[w].invoke,
                write: w,
                seen_by: Some(r),
            });
        }
    }
    evidence.sort_by_key(|e| e.took_effect_by);
    // latest[k]: among evidence[..=k], the one whose write started last.
    let mut latest: Vec<usize> = Vec::with_capacity(evidence.len());
    for k in 0..evidence.len() {
        let best = match latest.last() {
            Some(&b) if evidence[b].write_invoked >= evidence[k].write_invoked => b,
            _ => k,
        };
        latest.push(best);
    }

    for &(r, v) in reads {
        let read = &history[r];
        let n = evidence.partition_point(|e| e.took_effect_by < read.invoke);
        if n == 0 {
            continue;
        }
        let ev = &evidence[latest[n - 1]];
        let overwritten = if v == INITIAL {
            true
        } else {
            let w = &history[writer[v as usize]];
            // An unknown write has no completion time to compare with.
            w.outcome == Outcome::Ok && ev.write_invoked > w.complete
        };
        if !overwritten {
            continue;
        }
        let what = if v == INITIAL {
            "stale read: read returned the initial value after a write had certainly taken effect (lost write?)"
        } else {
            "stale read: read returned a value that had certainly been overwritten before the read began"
        };
        let mut culprits = vec![("read: ", r)];
        if v != INITIAL {
            culprits.push(("write of the value read: ", writer[v as usize]));
        }
        culprits.push(("overwritten by: ", ev.write));
        if let Some(s) = ev.seen_by {
            culprits.push(("whose value was seen by: ", s));
        }
        return Err(fmt.violation(what, &culprits));
    }
    Ok(())
}

/// An operation as the search sees it.
struct SearchOp {
    event: usize,
    write: bool,
    value: u32,
    invoke: u64,
    /// `u64::MAX` for unknown writes: they may take effect arbitrarily late.
    ret: u64,
}

impl SearchOp {
    fn new(event: usize, ev: &RegEvent, write: bool, value: u32, ret: u64) -> Self {
        SearchOp {
            event,
            write,
            value,
            invoke: ev.invoke,
            ret,
        }
    }
}

/// One linearized operation, to undo when backtracking.
struct Frame {
    call: u32,
    prev_value: u32,
}

/// Where the search got furthest before failing.
struct Stuck {
    depth: usize,
    op: u32,
    held: u32,
    held_has_reads: bool,
    /// For a read: whether the write of its value was already linearized.
    read_value_written: bool,
    /// The earliest read of the held value not yet linearized.
    held_reader: Option<u32>,
    recent: Vec<u32>,
}

type Cache = HashSet<Box<[u64]>, BuildHasherDefault<KeyHasher>>;

struct Search {
    ops: Vec<SearchOp>,
    /// Bit of each op in the linearized set.
    bit: Vec<usize>,
    /// Entries are numbered in time order; calls sort before returns at equal
    /// times because such operations overlap.
    entry_op: Vec<u32>,
    entry_is_call: Vec<bool>,
    ret_entry: Vec<u32>,
    /// Per value, the earliest call entry of a read of it.
    first_read_call: Vec<u32>,
    /// Per value, the search op that writes it.
    value_op: Vec<u32>,
    /// Per value, the search ops that read it, in invoke order.
    reads_of: Vec<Vec<u32>>,
    /// Doubly linked list of the entries not yet linearized, between the
    /// sentinels `head` and `tail`.
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    tail: u32,
    /// Per value, reads of it not yet linearized.
    pending_reads: Vec<u32>,
    value: u32,
    set: LinSet,
    /// Lazily computed first return entry in the list; reset when it changes.
    first_ret: Option<u32>,
    cache: Cache,
    explored: u64,
}

impl Search {
    fn new(ops: Vec<SearchOp>, finite: usize, nvalues: usize, read_count: Vec<u32>) -> Self {
        let n = ops.len();
        let set = LinSet::new(finite, n - finite);
        let bit = (0..n).map(|k| set.bit_of(k, finite)).collect();

        let mut entries: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (k, op) in ops.iter().enumerate() {
            entries.push((op.invoke, false, k as u32));
            entries.push((op.ret, true, k as u32));
        }
        entries.sort_unstable();
        let mut entry_op = Vec::with_capacity(2 * n);
        let mut entry_is_call = Vec::with_capacity(2 * n);
        let mut ret_entry = vec![NIL; n];
        let mut first_read_call = vec![NIL; nvalues];
        let mut value_op = vec![NIL; nvalues];
        let mut reads_of = vec![Vec::new(); nvalues];
        for (e, &(_, is_ret, k)) in entries.iter().enumerate() {
            let e = e as u32;
            entry_op.push(k);
            entry_is_call.push(!is_ret);
            let op = &ops[k as usize];
            if is_ret {
                ret_entry[k as usize] = e;
            } else if op.write {
                value_op[op.value as usize] = k;
            } else {
                if first_read_call[op.value as usize] == NIL {
                    first_read_call[op.value as usize] = e;
                }
                reads_of[op.value as usize].push(k);
            }
        }

        let head = 2 * n as u32;
        let tail = head + 1;
        let mut next = vec![NIL; 2 * n + 2];
        let mut prev = vec![NIL; 2 * n + 2];
        let mut last = head;
        for e in 0..2 * n as u32 {
            next[last as usize] = e;
            prev[e as usize] = last;
            last = e;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;

        Search {
            ops,
            bit,
            entry_op,
            entry_is_call,
            ret_entry,
            first_read_call,
            value_op,
            reads_of,
            next,
            prev,
            head,
            tail,
            pending_reads: read_count,
            value: INITIAL,
            set,
            first_ret: None,
            cache: Cache::default(),
            explored: 0,
        }
    }

    fn run(&mut self) -> Result<(), Stuck> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut key: Vec<u64> = Vec::new();
        let mut stuck: Option<Stuck> = None;
        let mut e = self.next[self.head as usize];
        while self.next[self.head as usize] != self.tail {
            if e == self.tail {
                // Unreachable: every call is followed by its own return.
                break;
            }
            let k = self.entry_op[e as usize];
            if !self.entry_is_call[e as usize] {
                // An operation that had to be linearized by now was not.
                if stuck.as_ref().is_none_or(|s| stack.len() > s.depth) {
                    stuck = Some(self.snapshot(k, &stack));
                }
                match self.backtrack(&mut stack) {
                    Some(resume) => e = resume,
                    None => break,
                }
                continue;
            }
            self.explored += 1;
            if !self.can_apply(k) {
                e = self.next[e as usize];
                continue;
            }
            let op = &self.ops[k as usize];
            let (new_value, is_write) = (op.value, op.write);
            let bit = self.bit[k as usize];
            self.set.insert(bit);
            self.set.key(new_value, &mut key);
            if !self.cache.contains(key.as_slice()) {
                self.cache.insert(key.as_slice().into());
                stack.push(Frame {
                    call: e,
                    prev_value: self.value,
                });
                self.value = new_value;
                if !is_write {
                    self.pending_reads[new_value as usize] -= 1;
                }
                self.lift(e);
                e = self.next[self.head as usize];
                continue;
            }
            self.set.remove(bit);
            if is_write {
                e = self.next[e as usize];
            } else {
                // See `backtrack`: a possible read that leads only to explored
                // (failed) states dooms the current state too.
                match self.backtrack(&mut stack) {
                    Some(resume) => e = resume,
                    None => break,
                }
            }
        }
        if self.next[self.head as usize] == self.tail {
            return Ok(());
        }
        Err(stuck.unwrap_or(Stuck {
            depth: 0,
            op: self.entry_op[self.next[self.head as usize] as usize],
            held: INITIAL,
            held_has_reads: false,
            read_value_written: false,
            held_reader: None,
            recent: Vec::new(),
        }))
    }

    /// Undoes linearized operations until one with an untried alternative is
    /// found; returns the entry to resume scanning from.
    ///
    /// Reads are undone without trying alternatives: a read that could be
    /// linearized right away does not change the value, so if no completion
    /// exists after it, none exists without it either.
    fn backtrack(&mut self, stack: &mut Vec<Frame>) -> Option<u32> {
        while let Some(frame) = stack.pop() {
            let k = self.entry_op[frame.call as usize] as usize;
            self.unlift(frame.call);
            self.set.remove(self.bit[k]);
            let op = &self.ops[k];
            if !op.write {
                self.pending_reads[op.value as usize] += 1;
            }
            self.value = frame.prev_value;
            if op.write {
                return Some(self.next[frame.call as usize]);
            }
        }
        None
    }

    fn can_apply(&mut self, k: u32) -> bool {
        let op = &self.ops[k as usize];
        if !op.write {
            return op.value == self.value;
        }
        // Values are never written twice, so overwriting a value that still
        // has reads to place makes those reads impossible.
        if self.pending_reads[self.value as usize] > 0 {
            return false;
        }
        if op.ret != u64::MAX {
            return true;
        }
        // After an unknown write only reads of its value can follow, and
        // linearizing it frees no return, so one of those reads must already
        // be callable. Without this the search would try every pending
        // unknown write after every step.
        let first_read = self.first_read_call[op.value as usize];
        first_read < self.first_return()
    }

    fn first_return(&mut self) -> u32 {
        if let Some(r) = self.first_ret {
            return r;
        }
        let mut e = self.next[self.head as usize];
        while e != self.tail && self.entry_is_call[e as usize] {
            e = self.next[e as usize];
        }
        self.first_ret = Some(e);
        e
    }

    fn lift(&mut self, call: u32) {
        let ret = self.ret_entry[self.entry_op[call as usize] as usize];
        for e in [call, ret] {
            let (p, n) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = n;
            self.prev[n as usize] = p;
        }
        self.first_ret = None;
    }

    fn unlift(&mut self, call: u32) {
        let ret = self.ret_entry[self.entry_op[call as usize] as usize];
        for e in [ret, call] {
            let (p, n) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = e;
            self.prev[n as usize] = e;
        }
        self.first_ret = None;
    }

    fn snapshot(&self, k: u32, stack: &[Frame]) -> Stuck {
        let recent = stack[stack.len().saturating_sub(5)..]
            .iter()
            .map(|f| self.entry_op[f.call as usize])
            .collect();
        let op = &self.ops[k as usize];
        let wop = self.value_op[op.value as usize];
        Stuck {
            depth: stack.len(),
            op: k,
            held: self.value,
            held_has_reads: self.pending_reads[self.value as usize] > 0,
            read_value_written: !op.write
                && (op.value == INITIAL
                    || (wop != NIL && self.set.contains(self.bit[wop as usize]))),
            held_reader: self.reads_of[self.value as usize]
                .iter()
                .copied()
                .find(|&r| !self.set.contains(self.bit[r as usize])),
            recent,
        }
    }

    fn stuck_violation(&self, stuck: &Stuck, fmt: &Describe<'_>, writer: &[usize]) -> Violation {
        let op = &self.ops[stuck.op as usize];
        let held = fmt.value(stuck.held, writer);
        let reason = if op.write {
            if stuck.held_has_reads {
                format!("this write cannot come before the remaining reads of {held}")
            } else {
                "this write cannot be placed".to_string()
            }
        } else {
            if stuck.read_value_written {
                format!("stale read? its value had already been overwritten by {held}")
            } else {
                "its value's write cannot be placed before it".to_string()
            }
        };
        let what = format!(
            "no linearization: stuck after {} of {} operations, the register holding {held}; {reason}",
            stuck.depth,
            self.ops.len(),
        );
        let mut culprits = vec![("stuck at: ", op.event)];
        if !op.write && op.value != INITIAL {
            culprits.push(("write of the value read: ", writer[op.value as usize]));
        }
        if stuck.held != INITIAL {
            culprits.push(("write of the value held: ", writer[stuck.held as usize]));
        }
        if let Some(k) = stuck.held_reader {
            culprits.push(("next read of the value held: ", self.ops[k as usize].event));
        }
        for &k in &stuck.recent {
            culprits.push(("linearized before: ", self.ops[k as usize].event));
        }
        fmt.violation(&what, &culprits)
    }
}

/// The set of linearized operations.
///
/// Finite operations occupy the first words and unknown writes (which may be
/// linearized arbitrarily late) the following ones. In each region all bits
/// below the first non-full word are set and few bits are set above it, so a
/// cache key needs only that word's index and the words up to the last
/// non-zero one: a handful of words instead of n/64.
struct LinSet {
    words: Vec<u64>,
    regions: [Region; 2],
    split: usize,
}

struct Region {
    start: usize,
    end: usize,
    last_mask: u64,
    /// First word that is not full.
    full: usize,
    /// No word at or above this one is non-zero.
    top: usize,
}

impl Region {
    fn new(start: usize, bits: usize) -> Self {
        Region {
            start,
            end: start + bits.div_ceil(64),
            last_mask: match bits % 64 {
                0 => u64::MAX,
                r => (1u64 << r) - 1,
            },
            full: start,
            top: start,
        }
    }

    fn mask(&self, w: usize) -> u64 {
        if w + 1 == self.end {
            self.last_mask
        } else {
            u64::MAX
        }
    }
}

impl LinSet {
    fn new(finite: usize, infinite: usize) -> Self {
        let split = finite.div_ceil(64);
        let regions = [Region::new(0, finite), Region::new(split, infinite)];
        LinSet {
            words: vec![0; regions[1].end],
            regions,
            split,
        }
    }

    fn bit_of(&self, k: usize, finite: usize) -> usize {
        if k < finite {
            k
        } else {
            self.split * 64 + (k - finite)
        }
    }

    fn insert(&mut self, bit: usize) {
        let w = bit / 64;
        self.words[w] |= 1 << (bit % 64);
        let r = &mut self.regions[usize::from(w >= self.split)];
        while r.full < r.end && self.words[r.full] == r.mask(r.full) {
            r.full += 1;
        }
        r.top = r.top.max(w + 1);
    }

    fn contains(&self, bit: usize) -> bool {
        self.words[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn remove(&mut self, bit: usize) {
        let w = bit / 64;
        self.words[w] &= !(1 << (bit % 64));
        let r = &mut self.regions[usize::from(w >= self.split)];
        r.full = r.full.min(w);
    }

    /// Writes a canonical encoding of (this set, `value`) into `out`.
    fn key(&mut self, value: u32, out: &mut Vec<u64>) {
        out.clear();
        out.push(u64::from(value));
        for r in &mut self.regions {
            while r.top > r.full && self.words[r.top - 1] == 0 {
                r.top -= 1;
            }
            let hi = r.top.max(r.full);
            out.push((r.full - r.start) as u64);
            out.push((hi - r.full) as u64);
            out.extend_from_slice(&self.words[r.full..hi]);
        }
    }
}

/// Multiply-xor hash for the cache keys; SipHash would dominate the search.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn mix(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.mix(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(a));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }

    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }

    fn finish(&self) -> u64 {
        // The table indexes by low bits, which the multiply leaves weak.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// Formats operations for violations, with times relative to the first
/// invoke of the history.
struct Describe<'a> {
    history: &'a [RegEvent],
    initial: Option<&'a str>,
    base: u64,
}

impl<'a> Describe<'a> {
    fn new(history: &'a [RegEvent], initial: Option<&'a str>) -> Self {
        let base = history.iter().map(|e| e.invoke).min().unwrap_or(0);
        Describe {
            history,
            initial,
            base,
        }
    }

    fn ms(&self, t: u64) -> String {
        let d = t.saturating_sub(self.base);
        format!("{}.{:03}", d / 1_000_000, (d / 1_000) % 1_000)
    }

    fn op(&self, i: usize) -> String {
        let ev = &self.history[i];
        let op = match &ev.op {
            RegOp::Write(v) => format!("write {v:?}"),
            RegOp::Read(Some(v)) => format!("read {v:?}"),
            RegOp::Read(None) => "read <absent>".to_string(),
        };
        let (invoke, complete) = (self.ms(ev.invoke), self.ms(ev.complete));
        match ev.outcome {
            Outcome::Unknown => format!(
                "#{i} client {} {op} unknown, invoked {invoke} ms, gave up {complete} ms",
                ev.client
            ),
            outcome => format!(
                "#{i} client {} {op} {outcome}, {invoke}..{complete} ms",
                ev.client
            ),
        }
    }

    fn value(&self, v: u32, writer: &[usize]) -> String {
        if v == INITIAL {
            return match self.initial {
                Some(s) => format!("the initial value {s:?}"),
                None => "the initial <absent>".to_string(),
            };
        }
        match &self.history[writer[v as usize]].op {
            RegOp::Write(s) => format!("{s:?}"),
            RegOp::Read(_) => String::new(),
        }
    }

    fn violation(&self, what: &str, culprits: &[(&str, usize)]) -> Violation {
        Violation {
            what: what.to_string(),
            ops: culprits
                .iter()
                .map(|&(role, i)| format!("{role}{}", self.op(i)))
                .collect(),
        }
    }
}
