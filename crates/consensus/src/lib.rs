//! openraft 0.9 glue: the `logdb` log store, the state machine over the SQL state tables, the
//! authenticated peer network, the proposer that batches concurrent writes into one entry, the
//! read barrier that makes the leader's reads linearizable, and the read index that makes a
//! follower's leader reads so too.
//! Nothing outside this crate names an openraft storage or network trait.

mod blocking;
mod callers;
pub mod durable;
mod error;
pub mod failover;
pub mod follower_read;
pub mod handover;
mod log_cache;
pub mod log_format;
mod log_store;
pub mod network;
#[cfg(test)]
mod network_props;
mod proposer;
mod read_barrier;
mod read_gate;
mod state_machine;
pub mod step_down;
mod types;
pub mod votes;

pub use error::{logged_errors, Error};
/// A background loop of this crate, for the caller to run and supervise; it ends only when
/// what feeds it is dropped.
pub type Worker = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

pub use follower_read::{FollowerReadError, FollowerReads};
pub use log_store::{last_log_term, LogStore};
pub use network::{PeerAuth, PeerNetwork};
pub use proposer::{Proposer, WriteError};
pub use read_barrier::{ReadBarrier, ReadError};
pub use read_gate::ReadGate;
pub use state_machine::{AppliedMark, DbHealth, Mark, SnapshotFloor, SoloWriter, StateMachine};
pub use types::{Batch, BatchResult, Raft, ServerNode, TypeConfig};

#[cfg(test)]
mod storage_suite;
