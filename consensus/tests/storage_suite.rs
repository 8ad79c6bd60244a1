//! openraft's own storage conformance suite, run against the sled log and state-machine stores.

use avocet_consensus::kv::KvStore;
use avocet_consensus::store::{LogStore, StateMachineStore, open_db};
use avocet_consensus::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

/// Builds a fresh pair of stores in a new temporary directory for each case of the suite.
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<KvStore>, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore<KvStore>), StorageError> {
        let fail = |error: &(dyn std::error::Error + 'static)| {
            StorageError::from(StorageIOError::write(AnyError::from_dyn(error, None)))
        };
        let dir = tempfile::tempdir().map_err(|error| fail(&error))?;
        let db = open_db(dir.path()).map_err(|error| fail(&error))?;
        let log = LogStore::open(&db).map_err(|error| fail(&error))?;
        let state = StateMachineStore::open(&db).map_err(|error| fail(&error))?;
        Ok((dir, log, state))
    }
}

#[test]
fn sled_stores_pass_the_openraft_suite() {
    Suite::test_all(SledBuilder).expect("the sled stores conform to openraft's storage contract");
}
