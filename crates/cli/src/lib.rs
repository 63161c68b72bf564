//! OneHA command-line tools (`onezone`, `onedb`): an XML-RPC [`Client`] for
//! OpenNebula's `/RPC2` API, parsers for the zone and Raft status documents,
//! and the text layouts of `onezone show` / `onezone list`.

pub mod client;
pub mod format;
pub mod hook;
pub(crate) mod ids;
pub(crate) mod json;
pub(crate) mod listing;
pub mod market;
pub mod objects;
pub mod onedb;
pub mod onezone;
pub(crate) mod search;
pub(crate) mod secgroup;
pub mod serversync;
pub(crate) mod tables;
pub mod tokens;
pub(crate) mod vntemplate;
pub mod xml;
pub mod zone;

pub use client::{
    resolve_ca_file, resolve_endpoint, resolve_session, CallError, Client, DEFAULT_ENDPOINT,
};
pub use format::{format_zone_list, format_zone_show};
pub use xml::XmlError;
pub use zone::{RaftState, RaftStatus, ZoneInfo, ZoneServer};
