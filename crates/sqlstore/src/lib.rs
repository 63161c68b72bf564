//! The SQL side of OneHA: the schema of the state tables, the replicated transaction format
//! (`SqlTxn`) and how one is applied, reads for the API, and consistent copies of the state DB
//! (snapshots, backups). It knows nothing of Raft: the consensus crate decides *when* to apply.

pub use rusqlite;

mod backup;
mod bootstrap;
pub mod changes;
mod checksum;
mod copy;
mod counter_insert;
mod digested;
mod dump;
pub mod federated;
pub mod files;
pub mod objects;
mod open;
mod pool;
mod reads;
pub mod sql;
#[doc(hidden)]
pub mod testing;
mod txn;
pub mod versions;
pub mod vm_touches;

pub use backup::{restore_backup, verify_backup, write_backup, BackupInfo};
pub use bootstrap::{bootstrap, is_bootstrapped, BootstrapParams};
pub use changes::{Changes, Committing, Watched};
pub use checksum::{checksum, Checksum};
pub use dump::{is_dump, restore_dump, verify_dump, write_dump};
pub use federated::{
    apply_batch, apply_batch_or_abandon, federated_checksum, federated_snapshot, is_federated,
    is_federated_write, last_federated, restore_federated, verify_federated, write_federated,
    FedSnapshot, SnapshotTable, FEDERATED_TABLES,
};
pub use objects::{HasOwner, Head, Lock, Owned};
pub use open::{copy_into, open_read, open_state, reopen_state, restore_from, DbError};
pub use pool::ReadPool;
pub use reads::{
    find_user_by_name, for_each_user, load_user, load_zone, load_zones, LoginToken, UserReach,
    UserRow, ZoneRow, ZoneServerRow,
};
pub use sql::{Backend, Conn, Location, MysqlConfig, Optional, RawRow, Row, SqlError, ValueView};
pub use txn::{apply_txn, SqlStmt, SqlTxn, SqlValue, TxnError, TxnErrorKind, TxnOutcome, Undo};
/// OpenNebula's object states, the numbers the state tables store.
pub use wire::state;
