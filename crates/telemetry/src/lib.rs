//! A server's counters and histograms, kept in process-wide statics and printed in Prometheus'
//! text exposition format (version 0.0.4).
//!
//! One oned process is one server of a zone, so a process-wide figure is the server's figure; the
//! crates that do the work (consensus, oned) bump the statics of [`m`] where it happens, and oned
//! prints them, with the gauges it reads at scrape time, on `GET /metrics`. Recording is a few
//! relaxed atomic adds; a labelled series ([`Series`], the calls per method) is found under a
//! shared lock with no allocation, on every call.
//!
//! Written here rather than taken from a Prometheus client crate: the exposition format is a few
//! lines of text, and a registry of our own keeps the label sets bounded by construction.

mod expo;
mod histogram;
pub mod m;

pub use expo::Exposition;
pub use histogram::{Histogram, Series, LATENCY_BUCKETS, SIZE_BUCKETS};

use std::sync::atomic::{AtomicU64, Ordering};

/// A number that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
