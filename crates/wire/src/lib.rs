//! What both ends of a OneHA call must agree on, written once: HTTP header names and routes
//! between servers and from the CLIs, the files of a server's `var/`, `one.zone.raftstatus`,
//! OpenNebula's ACL bits and its object state enums.
//!
//! Pure: no I/O, no async (it reads one environment variable, `ONE_LOCATION`). `cli`, `oned`, `consensus`, `peerauth`, `sqlstore` and `testkit` sit
//! above it, so none of them types one of these strings or numbers again.

pub mod acl;
pub mod files;
pub mod header;
pub mod method;
pub mod raft;
pub mod route;
pub mod state;
pub mod time;
pub mod vm_action;
pub mod xml;

pub use raft::{RaftState, RaftStatus, RaftStatusError};
pub use state::{DatastoreState, HostState, ImageState, LcmState, VmState, VnetState, ZoneState};
