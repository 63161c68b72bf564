//! A bounded map of copies of what was read from the state database, each valid while the
//! generation it was read under stands (`sqlstore::changes`): the users that verified, the
//! expansions of ACL rules on clusters, the quotas of users and groups, the ACL rules and the
//! write gate ([`Generational`]). One implementation, so that the generation rule (take it
//! before the read, trust the copy only while it is current, and neither keep nor use one
//! while a commit to its tables is under way: [`Changes::settled`]) and the bounds are written
//! once.
//!
//! Clients control how many keys there are (users, groups, rules), so the map caps both its
//! entries and the bytes its values are said to weigh. Beyond either, stale entries go first,
//! then arbitrary ones: every key can be read again, at the cost of one read each.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use sqlstore::Changes;

/// Copies by key, each with the generation it was read under and its weight in bytes.
pub struct GenMap<K, V> {
    inner: Mutex<Inner<K, V>>,
    max_entries: usize,
    max_bytes: usize,
}

struct Inner<K, V> {
    map: HashMap<K, (u64, usize, V)>,
    bytes: usize,
    /// The newest generation seen: an entry read under an older one can never be used again.
    newest: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> GenMap<K, V> {
    /// A map of at most `max_entries` entries weighing at most `max_bytes` together.
    pub fn new(max_entries: usize, max_bytes: usize) -> GenMap<K, V> {
        GenMap {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                bytes: 0,
                newest: 0,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The copy of `key`, if it was read under generation `now`.
    pub fn get<Q>(&self, now: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !Changes::settled(now) {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        inner.newest = inner.newest.max(now);
        inner
            .map
            .get(key)
            .filter(|(g, _, _)| *g == now)
            .map(|(_, _, v)| v.clone())
    }

    /// The copy of `key` whatever generation it was read under, with that generation: for a
    /// caller that can bring a stale copy up to date cheaper than read it again.
    pub fn get_any<Q>(&self, key: &Q) -> Option<(u64, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.inner.lock().ok()?;
        inner.map.get(key).map(|(g, _, v)| (*g, v.clone()))
    }

    /// Keeps `value` of `key`, read under generation `read_at` (taken before the read), said to
    /// weigh `bytes`. A value heavier than the whole budget is not kept.
    pub fn put(&self, read_at: u64, key: K, value: V, bytes: usize) {
        if bytes > self.max_bytes || !Changes::settled(read_at) {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if read_at < inner.newest {
            // Already stale: a write was applied after this copy's read began.
            return;
        }
        inner.newest = read_at;
        if let Some((g, _, _)) = inner.map.get(&key) {
            // A slower reader must not replace a newer copy with an older one.
            if *g > read_at {
                return;
            }
        }
        if let Some((_, old, _)) = inner.map.remove(&key) {
            inner.bytes -= old;
        }
        inner.make_room(self.max_entries - 1, self.max_bytes - bytes);
        inner.bytes += bytes;
        inner.map.insert(key, (read_at, bytes, value));
    }

    /// Drops every copy read under another generation than `now` unless `useful` says that
    /// generation's copies can still serve (brought up to date): for values large enough that
    /// holding a stale one until the bounds push it out would matter.
    pub fn drop_stale(&self, now: u64, mut useful: impl FnMut(u64) -> bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.retain(|g| g == now || useful(g));
        }
    }

    /// Entries held now (tests check the bounds).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.map.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the held values weigh together.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.bytes)
    }
}

impl<K: Hash + Eq + Clone, V> Inner<K, V> {
    /// Keeps the entries read under the generations `keep` accepts.
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut freed = 0;
        self.map.retain(|_, (g, w, _)| {
            let kept = keep(*g);
            if !kept {
                freed += *w;
            }
            kept
        });
        self.bytes -= freed;
    }

    /// Evicts until at most `entries` entries weighing at most `bytes` remain.
    fn make_room(&mut self, entries: usize, bytes: usize) {
        if self.map.len() <= entries && self.bytes <= bytes {
            return;
        }
        let newest = self.newest;
        self.retain(|g| g == newest);
        while self.map.len() > entries || self.bytes > bytes {
            let Some(k) = self.map.keys().next().cloned() else {
                break;
            };
            if let Some((_, w, _)) = self.map.remove(&k) {
                self.bytes -= w;
            }
        }
    }
}

/// One copy, valid while the generation it was read under stands: a [`GenMap`] of one key,
/// for what every call needs whole (the ACL rules, the write gate), which the zone's size
/// bounds, not its clients.
pub struct Generational<T>(GenMap<(), T>);

impl<T: Clone> Default for Generational<T> {
    fn default() -> Self {
        Generational(GenMap::new(1, usize::MAX))
    }
}

impl<T: Clone> Generational<T> {
    /// The copy, if it was read under generation `now`.
    pub fn get(&self, now: u64) -> Option<T> {
        self.0.get(now, &())
    }

    /// Keeps `value`, read under generation `read_at` (taken before the read).
    pub fn put(&self, read_at: u64, value: T) {
        self.0.put(read_at, (), value, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::GenMap;
    use sqlstore::{Changes, SqlStmt, SqlTxn, Watched};

    /// The settled generation after `n` whole changes.
    fn generation(n: usize) -> u64 {
        let c = Changes::default();
        for _ in 0..n {
            c.replaced();
        }
        c.get(Watched::Users)
    }

    #[test]
    fn a_copy_is_used_only_under_the_generation_it_was_read_under() {
        let m: GenMap<&str, u32> = GenMap::new(8, 1024);
        m.put(generation(3), "a", 1, 10);
        assert_eq!(m.get(generation(3), &"a"), Some(1));
        assert_eq!(m.get(generation(4), &"a"), None);
        // A read that began before generation 4 is stale once 4 was seen.
        m.put(generation(3), "b", 2, 10);
        assert_eq!(m.get(generation(3), &"b"), None);
        m.put(generation(4), "a", 5, 10);
        assert_eq!(m.get(generation(4), &"a"), Some(5));
        // The newer copy of "a" replaced the older; "b" was never kept.
        assert_eq!((m.len(), m.bytes()), (1, 10));
    }

    #[test]
    fn entries_and_bytes_stay_bounded_and_stale_entries_go_first() {
        let m: GenMap<u32, u32> = GenMap::new(4, 100);
        for k in 0..4 {
            m.put(generation(1), k, k, 10);
        }
        m.put(generation(2), 9, 9, 10);
        // Every entry of generation 1 was stale: all went, the new one stayed.
        assert_eq!(m.len(), 1);
        assert_eq!(m.bytes(), 10);
        for k in 0..100 {
            m.put(generation(2), k, k, 10);
            assert!(m.len() <= 4 && m.bytes() <= 100);
        }
        for k in 0..100 {
            m.put(generation(2), k, k, 40);
            assert!(
                m.len() <= 4 && m.bytes() <= 100,
                "{} {}",
                m.len(),
                m.bytes()
            );
        }
        // Heavier than the whole budget: not kept.
        m.put(generation(2), 1000, 1, 101);
        assert_eq!(m.get(generation(2), &1000), None);
        assert!(m.get(generation(2), &99).is_some());
    }

    #[test]
    fn nothing_is_kept_or_used_while_a_commit_to_its_tables_is_under_way() {
        let c = Changes::default();
        let m: GenMap<&str, u32> = GenMap::new(8, 1024);
        let before = c.get(Watched::Users);
        m.put(before, "a", 1, 10);
        let txn = SqlTxn {
            stmts: vec![SqlStmt::new(
                "DELETE FROM user_groups WHERE uid = 2",
                vec![],
            )],
        };
        let committing = c.applying([&txn]);
        // Read while the commit is under way: it may or may not show it.
        let during = c.get(Watched::Users);
        m.put(during, "b", 2, 10);
        assert_eq!(m.get(during, &"a"), None);
        assert_eq!(m.get(during, &"b"), None);
        drop(committing);
        let after = c.get(Watched::Users);
        assert_eq!(m.get(after, &"a"), None);
        assert_eq!(m.get(after, &"b"), None);
        m.put(after, "a", 3, 10);
        assert_eq!(m.get(after, &"a"), Some(3));
    }
}
