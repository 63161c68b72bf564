//! The harness lives in the `testkit` crate, shared with the fault suite.

pub use testkit::zone::*;
