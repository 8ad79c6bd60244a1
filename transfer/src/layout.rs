//! Where things live in a store, and the small objects that describe it. Every key is relative
//! to the store's root (a directory, or a bucket and prefix):
//!
//! ```text
//! avocet-store.json               the store's format and a key check (written once)
//! packs/<2 hex>/<pack id>         sealed chunks, concatenated (about 8 MiB each)
//! index/<pack id>                 what a pack holds: chunk id → offset and length (sealed)
//! volumes/<volume>/<run>.manifest one run of one volume (sealed), run as 10 digits
//! ```
//!
//! A pack is written before its index, and an index before any manifest that names its
//! chunks, so whatever a reader finds is backed by data already stored. A run killed at any
//! point leaves packs with indexes (their chunks are not sent again) and perhaps one pack
//! without (its chunks are).

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkId;

/// The store format this version writes and reads.
pub const STORE_FORMAT: u32 = 1;
/// The key of the store's description.
pub const CONFIG_KEY: &str = "avocet-store.json";
/// The label the key check is sealed under.
pub const KEY_CHECK_LABEL: &str = "avocet-store key check";
/// The prefix of every pack index.
pub const INDEX_PREFIX: &str = "index/";
/// The prefix of every volume's manifests.
pub const VOLUMES_PREFIX: &str = "volumes/";

/// The store's description, written once when the first run creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfig {
    /// The store format.
    pub format: u32,
    /// A known text sealed with the store's key, hex: a wrong key is caught before any work.
    pub key_check: String,
}

/// Where one chunk lies inside a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Located {
    /// The chunk.
    pub id: ChunkId,
    /// Its sealed bytes start here in the pack.
    pub offset: u64,
    /// Its sealed length.
    pub len: u32,
}

/// A pack's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackIndex {
    /// The index format.
    pub format: u32,
    /// The pack, by id.
    pub pack: String,
    /// Its chunks, in pack order.
    pub chunks: Vec<Located>,
}

/// The key of a pack.
pub fn pack_key(pack: &str) -> String {
    format!("packs/{}/{pack}", &pack[..2.min(pack.len())])
}

/// The key of a pack's index.
pub fn index_key(pack: &str) -> String {
    format!("{INDEX_PREFIX}{pack}")
}

/// The prefix of a volume's manifests.
pub fn manifests_prefix(volume: &str) -> String {
    format!("{VOLUMES_PREFIX}{volume}/")
}

/// The key of run `run` of `volume`.
pub fn manifest_key(volume: &str, run: u64) -> String {
    format!("{VOLUMES_PREFIX}{volume}/{run:010}.manifest")
}

/// The run a manifest key names, if it is one.
pub fn run_of(volume: &str, key: &str) -> Option<u64> {
    let name = key.strip_prefix(&manifests_prefix(volume))?.strip_suffix(".manifest")?;
    (name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok())?
}

/// Checks a volume name: 1 to 128 letters, digits, `.`, `_` or `-`, not starting with `.` (it
/// names store keys and folders, beside which restores keep hidden `.NAME.avocet-*` ones).
pub fn check_volume_name(volume: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&volume.len())
        && !volume.starts_with('.')
        && volume.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "volume {volume:?} is not a valid name: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keys_sort_by_run_and_parse_back() {
        assert_eq!(manifest_key("pvc-1", 12), "volumes/pvc-1/0000000012.manifest");
        assert_eq!(run_of("pvc-1", &manifest_key("pvc-1", 12)), Some(12));
        assert_eq!(run_of("pvc-1", "volumes/pvc-10/0000000012.manifest"), None);
        assert_eq!(run_of("pvc-1", "volumes/pvc-1/12.manifest"), None);
        assert!(manifest_key("v", 9) < manifest_key("v", 10));
    }

    #[test]
    fn volume_names_that_could_escape_are_refused_by_name() {
        assert!(check_volume_name("mysql-data_0.1").is_ok());
        for bad in ["", ".", "..", ".x.avocet-previous", "a/b", "a b", &"x".repeat(129)] {
            let err = check_volume_name(bad).expect_err(bad);
            assert!(err.contains("is not a valid name"), "{err}");
        }
    }
}
