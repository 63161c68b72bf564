//! openraft's storage conformance suite, run on the SQLite log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::{LogStore, StateMachine, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.db")).unwrap();
        let state = dir.path().join("one.db");
        let conn = sqlstore::open_state(&state).unwrap();
        let sm = StateMachine::new(&state, conn, &dir.path().join("snapshots")).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn sqlite_log_and_state_machine_pass_openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
