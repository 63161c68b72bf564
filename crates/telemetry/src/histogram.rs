//! Histograms with fixed buckets, and families of them keyed by a bounded set of label values.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Seconds, from a fraction of a millisecond (a local read) to a write that waited for a quorum.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Counts, by powers of two up to the proposer's largest batch.
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Observations counted in buckets (`le` upper bounds; the last, `+Inf`, is the count), with
/// their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound: observations at most that bound and above the previous one.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum's bits (`f64::to_bits`), updated by compare-and-swap.
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, v: f64) {
        // A NaN would poison the sum for good; it is counted, as +Inf.
        let v = if v.is_nan() { f64::INFINITY } else { v };
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    /// `(upper bound, cumulative count)` for each bound, as the exposition prints them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| {
                total += n.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect()
    }
}

/// Histograms keyed by label values (a method name and its outcome, say). At most `max`
/// distinct keys are kept: past that, observations go to the key `overflow`, so a caller that
/// makes up label values cannot grow the server's memory.
///
/// Every `/RPC2` call records into one, so the lookup of a known key takes a shared lock and
/// allocates nothing: the key is written into a per-thread buffer, and only a key seen for the
/// first time takes the exclusive lock.
#[derive(Debug)]
pub struct Series {
    bounds: &'static [f64],
    max: usize,
    overflow: &'static [&'static str],
    /// Keyed by [`write_key`] of the labels; the value keeps the labels for the exposition.
    map: RwLock<BTreeMap<String, Labelled>>,
}

/// A series' label values and its histogram.
type Labelled = (Vec<String>, Arc<Histogram>);

thread_local! {
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Each label as `<length>:<value>`, so no two label lists share a key whatever they contain.
fn write_key(key: &mut String, labels: &[&str]) {
    use std::fmt::Write;
    key.clear();
    for l in labels {
        // Writing into a String cannot fail.
        let _ = write!(key, "{}:{l}", l.len());
    }
}

impl Series {
    pub const fn new(
        bounds: &'static [f64],
        max: usize,
        overflow: &'static [&'static str],
    ) -> Series {
        Series {
            bounds,
            max,
            overflow,
            map: RwLock::new(BTreeMap::new()),
        }
    }

    /// The histogram of `labels` (created on first use, within the bound).
    pub fn with(&self, labels: &[&str]) -> Arc<Histogram> {
        KEY.with(|buf| {
            let mut buf = buf.borrow_mut();
            write_key(&mut buf, labels);
            // A poisoned lock only means a panic elsewhere while holding it; the map is whole.
            if let Some((_, h)) = self
                .map
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(buf.as_str())
            {
                return h.clone();
            }
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            let labels: Vec<&str> = if map.len() >= self.max && !map.contains_key(buf.as_str()) {
                write_key(&mut buf, self.overflow);
                self.overflow.to_vec()
            } else {
                labels.to_vec()
            };
            map.entry(buf.clone())
                .or_insert_with(|| {
                    let owned = labels.iter().map(|l| l.to_string()).collect();
                    (owned, Arc::new(Histogram::new(self.bounds)))
                })
                .1
                .clone()
        })
    }

    pub fn observe(&self, labels: &[&str], v: f64) {
        self.with(labels).observe(v);
    }

    /// Every series, in label order.
    pub fn snapshot(&self) -> Vec<(Vec<String>, Arc<Histogram>)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map.values().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_adds_up() {
        let h = Histogram::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 1.5, 3.0, 9.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), vec![(1.0, 2), (2.0, 3), (4.0, 4)]);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_series_never_holds_more_keys_than_its_bound() {
        static OVERFLOW: &[&str] = &["other"];
        let s = Series::new(&[1.0], 2, OVERFLOW);
        for name in ["a", "b", "c", "d"] {
            s.observe(&[name], 0.5);
        }
        let keys: Vec<_> = s
            .snapshot()
            .into_iter()
            .map(|(k, h)| (k, h.count()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (vec!["a".to_string()], 1),
                (vec!["b".to_string()], 1),
                (vec!["other".to_string()], 2)
            ]
        );
    }
}
