//! Buffers for answers of megabytes, kept for the next such answer (issue 16).
//!
//! A pool answer of 10k VMs is 4-11 MiB. Built in a fresh buffer, it lands in pages the kernel
//! maps and zeroes on first touch, on every call: a tenth of `one.vmpool.info`'s time on the
//! leader (docs/benchmarks.md, fourth round). The buffer of a sent answer comes back here
//! when hyper drops its bytes, and the next large answer is written into its pages, already
//! mapped.
//!
//! Memory: at most [`KEEP`] buffers of at most [`LARGEST`] bytes each are kept (docs/memory.md);
//! a larger one is freed as before, and so is one that comes back while [`KEEP`] are kept.

use std::sync::Mutex;

use axum::body::Bytes;

/// Buffers kept at most: two pool calls may run at once on two cores.
pub const KEEP: usize = 2;
/// The largest buffer kept.
pub const LARGEST: usize = 16 << 20;
/// Smaller answers are not worth keeping: glibc serves them from its heaps, whose pages stay
/// mapped (`memory::MMAP_THRESHOLD`).
pub const SMALLEST: usize = 256 << 10;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn free() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    // Each change is one push or pop: a poisoned list is still consistent.
    FREE.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty buffer for a large answer: a kept one if there is one (the largest), else a new
/// one.
pub fn take() -> String {
    // Nothing is in it, so it is valid UTF-8.
    String::from_utf8(take_vec()).unwrap_or_default()
}

/// [`take`], for an answer put together from bytes.
pub fn take_vec() -> Vec<u8> {
    let kept = {
        let mut free = free();
        let largest = (0..free.len()).max_by_key(|&i| free[i].capacity());
        largest.map(|i| free.swap_remove(i))
    };
    let mut v = kept.unwrap_or_default();
    v.clear();
    v
}

/// The answer's bytes for the response body; a large one's buffer comes back to [`take`] once
/// the body is dropped (sent, or the client gone).
pub fn into_bytes(answer: String) -> Bytes {
    vec_into_bytes(answer.into_bytes())
}

/// [`into_bytes`] of an answer put together from bytes.
pub fn vec_into_bytes(v: Vec<u8>) -> Bytes {
    if (SMALLEST..=LARGEST).contains(&v.capacity()) {
        Bytes::from_owner(Returning(v))
    } else {
        Bytes::from(v)
    }
}

/// A buffer that goes back to [`FREE`] when its last `Bytes` is dropped.
struct Returning(Vec<u8>);

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let mut free = free();
        if free.len() < KEEP {
            free.push(v);
        }
    }
}

/// The buffers kept now.
#[cfg(test)]
fn kept() -> usize {
    free().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_answers_buffer_is_kept_for_the_next_and_small_ones_are_not() {
        // One test: the list is the process's.
        while free().pop().is_some() {}
        let mut a = take();
        a.push_str(&"x".repeat(SMALLEST));
        let at = a.as_ptr();
        let body = into_bytes(a);
        assert_eq!(body.len(), SMALLEST);
        assert_eq!(kept(), 0, "kept while the body is alive");
        let clone = body.clone();
        drop(body);
        assert_eq!(kept(), 0, "kept while a clone is alive");
        drop(clone);
        assert_eq!(kept(), 1);
        let b = take();
        assert_eq!(b.as_ptr(), at, "the same pages again");
        assert!(b.is_empty());
        assert_eq!(kept(), 0);
        // Small answers and answers past LARGEST are freed.
        drop(into_bytes("small".to_string()));
        drop(into_bytes(String::with_capacity(LARGEST + 1)));
        assert_eq!(kept(), 0);
        // At most KEEP.
        let bodies: Vec<Bytes> = (0..KEEP + 2)
            .map(|_| into_bytes(String::with_capacity(SMALLEST)))
            .collect();
        drop(bodies);
        assert_eq!(kept(), KEEP);
        drop(b);
        while free().pop().is_some() {}
    }
}
