//! openraft's storage conformance suite, run on the log store with the state machine on each
//! backend.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use sqlstore::Backend;

use crate::{LogStore, StateMachine, TypeConfig};

struct Builder(Backend);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.db")).unwrap();
        let state = match &self.0 {
            Backend::Sqlite => sqlstore::Location::Sqlite(dir.path().join("one.db")),
            Backend::Mysql => sqlstore::testing::fresh_mysql_database().unwrap(),
        };
        let conn = sqlstore::open_state(&state).unwrap();
        let sm = StateMachine::new(&state, conn, &dir.path().join("snapshots")).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn sqlite_log_and_state_machine_pass_openraft_storage_suite() {
    Suite::test_all(Builder(Backend::Sqlite)).unwrap();
}

#[test]
fn state_machine_on_mysql_passes_openraft_storage_suite() {
    if sqlstore::testing::fresh_mysql_database().is_none() {
        return;
    }
    Suite::test_all(Builder(Backend::Mysql)).unwrap();
}
