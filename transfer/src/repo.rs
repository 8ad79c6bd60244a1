//! A repository: an object store opened with a key. It checks the key against the store's key
//! check, loads the pack indexes (which chunks the store already has, and where), reads and
//! writes manifests, and reads chunks back.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::chunk::ChunkId;
use crate::error::TransferError;
use crate::layout::{self, Located, PackIndex, StoreConfig};
use crate::manifest::{Manifest, Piece};
use crate::seal::{self, Key};
use crate::store::ObjectStore;

/// The text the key check seals.
const KEY_CHECK_TEXT: &[u8] = b"avocet";
/// Bounds how many run numbers a push tries when others keep taking them.
const RUN_ATTEMPTS: u32 = 16;

/// The largest manifest or piece list read (a bound on what a damaged store can make us hold).
pub const OBJECT_MAX: usize = 1 << 30;
/// Index objects fetched at once.
const INDEX_FETCHES: usize = 16;

/// Where a stored chunk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The pack's id.
    pub pack: Arc<str>,
    /// Offset of the sealed chunk in the pack.
    pub offset: u64,
    /// Its sealed length.
    pub len: u32,
}

/// Every stored chunk, by id.
pub type Index = HashMap<ChunkId, Location>;

/// A store and the key its objects are sealed with.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    key: Arc<Key>,
    id: Arc<str>,
}

impl Repository {
    /// Opens the repository in `store`; `create` writes the store's description when there is
    /// none (a push), otherwise an empty store is an error (a restore).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        key: Key,
        create: bool,
    ) -> Result<Repository, TransferError> {
        let mut repo = Repository { store, key: Arc::new(key), id: Arc::from("") };
        match repo.store.get(layout::CONFIG_KEY).await? {
            Some(bytes) => {
                let config: StoreConfig = serde_json::from_slice(&bytes).map_err(|e| {
                    TransferError::Corrupt(format!("{} does not read: {e}", layout::CONFIG_KEY))
                })?;
                if config.format > layout::STORE_FORMAT {
                    return Err(TransferError::Corrupt(format!(
                        "the store is format {}; this Avocet reads formats up to {} (upgrade it)",
                        config.format,
                        layout::STORE_FORMAT
                    )));
                }
                let sealed = hex_decode(&config.key_check).ok_or_else(|| {
                    TransferError::Corrupt(format!("{}: keyCheck is not hex", layout::CONFIG_KEY))
                })?;
                seal::open_labelled(&repo.key, layout::KEY_CHECK_LABEL, &sealed, 64)
                    .map_err(|_| TransferError::WrongKey(format!("{:?}", repo.store)))?;
                repo.id = Arc::from(config.key_check.as_str());
            }
            None if create => {
                let sealed =
                    seal::seal_labelled(&repo.key, layout::KEY_CHECK_LABEL, KEY_CHECK_TEXT)?;
                let config =
                    StoreConfig { format: layout::STORE_FORMAT, key_check: hex_encode(&sealed) };
                let bytes = serde_json::to_vec_pretty(&config).unwrap_or_default();
                repo.store.put(layout::CONFIG_KEY, bytes).await?;
                repo.id = Arc::from(config.key_check.as_str());
            }
            None => {
                return Err(TransferError::Invalid(format!(
                    "the store {:?} holds no Avocet data",
                    repo.store
                )));
            }
        }
        Ok(repo)
    }

    /// What tells this store from any other, even one recreated at the same place: its key
    /// check (sealed with a random nonce when the store was created).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Reads every pack index: the chunks the store has, and where.
    pub async fn load_index(&self) -> Result<Index, TransferError> {
        let keys = self.store.list(layout::INDEX_PREFIX).await?;
        let reads: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let repo = self.clone();
                async move { repo.read_pack_index(&key).await }
            })
            .collect();
        let indexes: Vec<PackIndex> =
            futures::stream::iter(reads).buffer_unordered(INDEX_FETCHES).try_collect().await?;
        let mut index = Index::new();
        for pack in indexes {
            let id: Arc<str> = pack.pack.into();
            for Located { id: chunk, offset, len } in pack.chunks {
                index.insert(chunk, Location { pack: id.clone(), offset, len });
            }
        }
        Ok(index)
    }

    async fn read_pack_index(&self, key: &str) -> Result<PackIndex, TransferError> {
        let sealed = self.store.get(key).await?.ok_or_else(|| {
            TransferError::Corrupt(format!("{key} was listed but cannot be read"))
        })?;
        let plain = seal::open_labelled(&self.key, key, &sealed, OBJECT_MAX)?;
        let index: PackIndex = serde_json::from_slice(&plain)
            .map_err(|e| TransferError::Corrupt(format!("{key} does not read: {e}")))?;
        if layout::index_key(&index.pack) != key {
            return Err(TransferError::Corrupt(format!("{key} describes pack {}", index.pack)));
        }
        Ok(index)
    }

    /// Stores a pack and then its index; returns the bytes written.
    pub async fn put_pack(
        &self,
        pack: Vec<u8>,
        chunks: Vec<Located>,
    ) -> Result<u64, TransferError> {
        let id = blake3::hash(&pack).to_hex().to_string();
        let written = pack.len() as u64;
        self.store.put(&layout::pack_key(&id), pack).await?;
        let key = layout::index_key(&id);
        let index = PackIndex { format: layout::STORE_FORMAT, pack: id, chunks };
        let plain = serde_json::to_vec(&index).unwrap_or_default();
        let sealed = seal::seal_labelled(&self.key, &key, &plain)?;
        let index_len = sealed.len() as u64;
        self.store.put(&key, sealed).await?;
        Ok(written + index_len)
    }

    /// Every run of `volume` the store holds, oldest first.
    pub async fn runs(&self, volume: &str) -> Result<Vec<u64>, TransferError> {
        layout::check_volume_name(volume).map_err(TransferError::Invalid)?;
        let keys = self.store.list(&layout::manifests_prefix(volume)).await?;
        let mut runs: Vec<u64> = keys.iter().filter_map(|k| layout::run_of(volume, k)).collect();
        runs.sort_unstable();
        Ok(runs)
    }

    /// Run `run` of `volume`.
    pub async fn manifest(&self, volume: &str, run: u64) -> Result<Manifest, TransferError> {
        let key = layout::manifest_key(volume, run);
        let sealed = self.store.get(&key).await?.ok_or_else(|| {
            TransferError::Invalid(format!("the store holds no run {run} of volume {volume:?}"))
        })?;
        let plain = seal::open_labelled(&self.key, &key, &sealed, OBJECT_MAX)?;
        let manifest = Manifest::decode(volume, &plain)?;
        if manifest.volume != volume || manifest.run != run {
            return Err(TransferError::Corrupt(format!(
                "{key} holds run {} of volume {:?}",
                manifest.run, manifest.volume
            )));
        }
        Ok(manifest)
    }

    /// The newest run of `volume`, if any.
    pub async fn latest(&self, volume: &str) -> Result<Option<Manifest>, TransferError> {
        match self.runs(volume).await?.last() {
            Some(run) => self.manifest(volume, *run).await.map(Some),
            None => Ok(None),
        }
    }

    /// Writes a manifest (after every chunk it names) as a new run: never over a run already
    /// stored. When another push took the manifest's run number first (two workers on one
    /// volume, one of them holding a lapsed lease), it takes the next free number and says so
    /// in `manifest.run`; returns the bytes written.
    pub async fn put_manifest(&self, manifest: &mut Manifest) -> Result<u64, TransferError> {
        for _ in 0..RUN_ATTEMPTS {
            let key = layout::manifest_key(&manifest.volume, manifest.run);
            let sealed = seal::seal_labelled(&self.key, &key, &manifest.encode())?;
            let len = sealed.len() as u64;
            if self.store.put_new(&key, sealed.clone()).await? {
                return Ok(len);
            }
            // A retried request may have found its own first attempt (sealing is randomized,
            // so equal bytes are this push's).
            if self.store.get(&key).await?.is_some_and(|stored| stored == sealed) {
                return Ok(len);
            }
            manifest.run += 1;
        }
        Err(TransferError::Invalid(format!(
            "volume {:?}: {RUN_ATTEMPTS} run numbers in a row were taken by other pushes while this one wrote its manifest",
            manifest.volume
        )))
    }

    /// Reads one chunk back, verified.
    pub async fn read_chunk(&self, index: &Index, id: &ChunkId) -> Result<Vec<u8>, TransferError> {
        let at = index
            .get(id)
            .ok_or_else(|| TransferError::Corrupt(format!("chunk {id} is named but not stored")))?;
        let sealed =
            self.store.get_range(&layout::pack_key(&at.pack), at.offset, u64::from(at.len)).await?;
        Ok(seal::open(&self.key, id, &sealed, OBJECT_MAX)?)
    }

    /// The pieces of a file entry, reading its piece list when it has one.
    pub async fn pieces(
        &self,
        index: &Index,
        entry: &crate::manifest::Entry,
    ) -> Result<Vec<Piece>, TransferError> {
        match &entry.piece_list {
            None => Ok(entry.pieces.clone()),
            Some(id) => {
                let bytes = self.read_chunk(index, id).await?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    TransferError::Corrupt(format!(
                        "the piece list of {:?} does not read: {e}",
                        entry.path
                    ))
                })
            }
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}
