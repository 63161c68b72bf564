//! Settings of the C allocator (glibc malloc), made once at start before any thread exists.
//!
//! With its defaults glibc keeps up to 8 arenas per core, one taken by each thread that
//! allocates while the others are busy, and raises its mmap threshold to the largest block
//! freed (up to 32 MiB). A pool answer of several MiB built on a blocking thread then stays in
//! that thread's arena after it is freed, once per arena: a leader that had served a few
//! `one.vmpool.info` calls of 10k VMs held 200+ MiB, mostly free memory (issue 16). Here:
//! - arenas are bounded by the cores (at least 2, at most 8): more cannot run at once;
//! - blocks of [`MMAP_THRESHOLD`] or more are mapped on their own and unmapped when freed, so
//!   a large answer's memory goes back to the system with the answer;
//! - free memory past [`TRIM_THRESHOLD`] at the top of a heap is returned.
//!
//! An operator's `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or
//! `GLIBC_TUNABLES` wins: nothing is changed when one of them is set (docs/memory.md).

/// Blocks at least this large get their own mapping.
pub const MMAP_THRESHOLD: usize = 256 << 10;
/// Free memory kept at the top of a heap, at most.
pub const TRIM_THRESHOLD: usize = 1 << 20;

const OPERATOR_VARS: [&str; 4] = [
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "GLIBC_TUNABLES",
];

/// The arenas for `cores` cores.
pub fn arenas(cores: usize) -> usize {
    cores.clamp(2, 8)
}

/// Applies the settings above, unless the environment sets the allocator's own. Call it first
/// in `main`, before the runtime starts threads. Returns the settings glibc refused (kept at
/// its defaults), for `main` to log once logging is up.
pub fn configure_allocator() -> Vec<&'static str> {
    if OPERATOR_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    set(arenas(cores), MMAP_THRESHOLD, TRIM_THRESHOLD)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set(arenas: usize, mmap: usize, trim: usize) -> Vec<&'static str> {
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let settings = [
        ("M_ARENA_MAX", libc::M_ARENA_MAX, arenas),
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, mmap),
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, trim),
    ];
    settings
        .into_iter()
        // SAFETY: mallopt only changes allocator parameters; called before other threads
        // exist. It returns 0 when it refuses a value, which then keeps glibc's default.
        .filter(|(_, param, value)| unsafe { libc::mallopt(*param, int(*value)) } == 0)
        .map(|(name, _, _)| name)
        .collect()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_: usize, _: usize, _: usize) -> Vec<&'static str> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arenas_follow_the_cores_within_bounds() {
        assert_eq!(arenas(1), 2);
        assert_eq!(arenas(4), 4);
        assert_eq!(arenas(64), 8);
    }
}
