//! Dev-only: a filesystem that forgets what was never made durable, for OneHA's power-cut tests
//! (issue 18). SIGKILL leaves the kernel's page cache behind, so a write that was never fsynced
//! survives it; a power cut does not. `model` is what such a disk keeps, by strict POSIX rules,
//! with the tests of what survives a cut after each kind of sync.
//!
//! `mount` serves it over a directory with FUSE, for real processes: the fault suite's
//! power-cut rounds put each server's `var/` on one (`testkit::faults`, `docs/fault-testing.md`).

pub mod model;
pub mod mount;

pub use model::{Attr, Fs, FsError, Ino, Kind, ROOT};
pub use mount::Mount;
