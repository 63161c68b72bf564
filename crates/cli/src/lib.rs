//! OneHA command-line tools (`onezone`, `onedb`): an XML-RPC [`Client`] for
//! OpenNebula's `/RPC2` API, parsers for the zone and Raft status documents,
//! and the text layouts of `onezone show` / `onezone list`.

pub mod acct;
pub(crate) mod backupjob;
pub mod client;
pub(crate) mod cluster_show;
pub(crate) mod datastore;
pub(crate) mod editor;
pub mod format;
pub mod hook;
pub(crate) mod host_flush;
pub(crate) mod host_monitoring;
pub(crate) mod ids;
pub(crate) mod image;
pub(crate) mod image_create;
pub(crate) mod json;
pub(crate) mod listing;
pub mod market;
pub mod objects;
pub mod onedb;
pub(crate) mod onevm;
pub(crate) mod onevm_backup;
pub(crate) mod onevm_ops;
pub(crate) mod onevm_save;
pub(crate) mod onevm_snap;
pub(crate) mod onevm_snap_list;
pub mod onezone;
pub(crate) mod owned_ops;
pub(crate) mod quota;
pub(crate) mod secgroup;
pub mod serversync;
pub(crate) mod tables;
pub(crate) mod template_instantiate;
pub mod tokens;
pub(crate) mod top;
pub(crate) mod vmgroup;
pub(crate) mod vnet;
pub(crate) mod vnet_show;
pub(crate) mod vntemplate;
pub(crate) mod vrouter;
pub mod xml;
pub mod zone;

pub use client::{
    resolve_ca_file, resolve_endpoint, resolve_session, CallError, Client, DEFAULT_ENDPOINT,
};
pub use format::{format_zone_list, format_zone_show};
pub use xml::XmlError;
pub use zone::{RaftState, RaftStatus, ZoneInfo, ZoneServer};
