//! `oned`: one server of an OpenNebula zone. It reads `oned.conf`, opens the state database,
//! joins (or leads, or runs without) the zone's Raft group and serves OpenNebula's XML-RPC API.

pub mod affinity;
pub mod api;
pub mod auth;
pub mod auth_drivers;
pub mod cluster;
pub mod config;
#[cfg(test)]
mod config_props;
pub mod credentials;
pub mod dashboard;
pub mod db;
pub mod db_watch;
pub mod drs;
pub mod error;
pub mod fed_push;
pub mod gencache;
pub mod hook_runner;
pub mod hooks;
pub mod http;
pub mod leadership;
pub mod limits;
pub mod listener;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod monitoring;
pub mod resched;
pub mod retention;
pub mod run;
pub mod sched_expr;
pub mod sched_nets;
pub mod sched_runner;
pub mod scheduler;
pub mod sweep;
pub mod sync;
pub mod tasks;
pub mod tls;

pub use config::{Config, Paths};
pub use error::StartError;
pub use run::run;
