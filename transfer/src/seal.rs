//! Sealing chunks for the object store: zstd compression, then XChaCha20-Poly1305 with a key
//! derived from the pair's secret material, the chunk id bound as associated data. A sealed
//! chunk is `[format 1][24-byte random nonce][ciphertext+tag]`; opening checks the tag and the
//! plain contents' BLAKE3 against the id, so a swapped, truncated or tampered object is refused.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::chunk::ChunkId;

/// The first byte of every sealed chunk.
const FORMAT: u8 = 1;
/// Bytes of nonce after the format byte.
const NONCE_LEN: usize = 24;
/// The zstd level: fast, and most of the win on text and databases.
const ZSTD_LEVEL: i32 = 3;
/// The least secret material a key is derived from.
pub const KEY_MATERIAL_MIN: usize = 32;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The secret material is too short to derive a key from.
    #[error(
        "the key material is {0} bytes; at least {KEY_MATERIAL_MIN} bytes of secret are needed"
    )]
    ShortKey(usize),
    /// The object is not a sealed chunk of a known format.
    #[error("chunk {0}: not a sealed chunk of a known format")]
    Format(ChunkId),
    /// The tag did not verify: another key, or the object was changed.
    #[error(
        "chunk {0}: does not open with this key (another pair's key, or the object was altered)"
    )]
    Tag(ChunkId),
    /// The contents do not hash to the id.
    #[error("chunk {0}: its contents do not match its id")]
    Mismatch(ChunkId),
    /// Compression failed.
    #[error("chunk {0}: {1}")]
    Codec(ChunkId, String),
}

/// An encryption key for one ClusterPair's chunks.
pub struct Key(XChaCha20Poly1305);

impl std::fmt::Debug for Key {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Derives the key from secret material (a key file, the pair's stored secret) with
    /// BLAKE3's key derivation; there is no built-in default key.
    pub fn derive(material: &[u8]) -> Result<Key, SealError> {
        if material.len() < KEY_MATERIAL_MIN {
            return Err(SealError::ShortKey(material.len()));
        }
        let bytes = blake3::derive_key("avocet 2026 chunk encryption v1", material);
        Ok(Key(XChaCha20Poly1305::new(&bytes.into())))
    }
}

/// Compresses and encrypts one chunk.
pub fn seal(key: &Key, id: &ChunkId, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let compressed = zstd::bulk::compress(plain, ZSTD_LEVEL)
        .map_err(|e| SealError::Codec(id.clone(), e.to_string()))?;
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = key
        .0
        .encrypt(&nonce, Payload { msg: &compressed, aad: id.as_str().as_bytes() })
        .map_err(|_| SealError::Codec(id.clone(), "encryption failed".to_owned()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(FORMAT);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts, decompresses and verifies one chunk; `max_len` bounds the plain size (a chunk is
/// never longer than the chunker's maximum).
pub fn open(key: &Key, id: &ChunkId, sealed: &[u8], max_len: usize) -> Result<Vec<u8>, SealError> {
    if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT {
        return Err(SealError::Format(id.clone()));
    }
    let nonce = XNonce::from_slice(&sealed[1..=NONCE_LEN]);
    let compressed = key
        .0
        .decrypt(nonce, Payload { msg: &sealed[1 + NONCE_LEN..], aad: id.as_str().as_bytes() })
        .map_err(|_| SealError::Tag(id.clone()))?;
    let plain = zstd::bulk::decompress(&compressed, max_len)
        .map_err(|e| SealError::Codec(id.clone(), e.to_string()))?;
    if ChunkId::of(&plain) != *id {
        return Err(SealError::Mismatch(id.clone()));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(byte: u8) -> Key {
        Key::derive(&[byte; 32]).expect("32 bytes")
    }

    proptest! {
        #[test]
        fn what_is_sealed_opens_to_the_same_bytes(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let id = ChunkId::of(&data);
            let sealed = seal(&key(1), &id, &data).expect("seals");
            prop_assert_eq!(open(&key(1), &id, &sealed, 256 * 1024).expect("opens"), data);
        }
    }

    #[test]
    fn another_key_a_swapped_id_or_a_flipped_bit_is_refused() {
        let data = b"the contents of a database page".repeat(100);
        let id = ChunkId::of(&data);
        let sealed = seal(&key(1), &id, &data).expect("seals");
        assert!(sealed.len() < data.len(), "compressed: {} of {}", sealed.len(), data.len());
        assert_eq!(open(&key(2), &id, &sealed, 1 << 20), Err(SealError::Tag(id.clone())));
        let other = ChunkId::of(b"other");
        assert_eq!(open(&key(1), &other, &sealed, 1 << 20), Err(SealError::Tag(other)));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&key(1), &id, &flipped, 1 << 20), Err(SealError::Tag(id.clone())));
        assert_eq!(open(&key(1), &id, &sealed[..10], 1 << 20), Err(SealError::Format(id)));
    }

    #[test]
    fn short_key_material_is_refused_with_its_length() {
        assert_eq!(Key::derive(b"too short").map(|_| ()), Err(SealError::ShortKey(9)));
    }

    #[test]
    fn the_same_chunk_sealed_twice_differs_but_opens_the_same() {
        let id = ChunkId::of(b"x");
        let (a, b) = (seal(&key(1), &id, b"x").expect("a"), seal(&key(1), &id, b"x").expect("b"));
        assert_ne!(a, b, "fresh nonces");
    }
}
