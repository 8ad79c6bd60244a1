//! The identity file: which node a data directory belongs to, and which group.

use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::codec;
use crate::types::NodeId;

/// Names the identity file inside a data directory.
const IDENTITY_FILE: &str = "identity";

/// Identifies a group: random, made once when the group is bootstrapped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupId(pub String);

impl GroupId {
    /// Returns a new random group id (128 bits from the operating system's hash keys).
    pub fn random() -> GroupId {
        use std::hash::{BuildHasher, Hasher};
        let part = || {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(u64::from(std::process::id()));
            hasher.finish()
        };
        GroupId(format!("{:016x}{:016x}", part(), part()))
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Says which node a data directory belongs to and, once it has joined one, which group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Gives the node id.
    pub node_id: NodeId,
    /// Gives the group, `None` until the node is bootstrapped or first contacted by a group.
    pub group_id: Option<GroupId>,
    /// Says whether this node created the group (so it may finish an interrupted bootstrap).
    #[serde(default)]
    pub bootstrapped: bool,
}

impl Identity {
    /// Reads the identity of `data_dir`, or `None` for a directory never used by a node.
    pub fn load(data_dir: &Path) -> Result<Option<Identity>, StoreError> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Codec { what: "identity file", source }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes the identity durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, data_dir: &Path) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let temporary = data_dir.join(format!("{IDENTITY_FILE}.tmp"));
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&codec::encode(self)).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
        let path = data_dir.join(IDENTITY_FILE);
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        std::fs::File::open(data_dir).and_then(|dir| dir.sync_all()).map_err(io(data_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), None);
        let identity =
            Identity { node_id: 3, group_id: Some(GroupId::random()), bootstrapped: true };
        identity.save(dir.path()).unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), Some(identity));
        assert!(!dir.path().join("identity.tmp").exists());
        assert_ne!(GroupId::random(), GroupId::random());
    }
}
