//! Sealing objects for the store: zstd compression when it pays, then AES-256-GCM-SIV (RFC
//! 8452, nonce-misuse resistant, so random 96-bit nonces stay safe however many chunks a pair
//! stores) with a key derived from the pair's secret material. A sealed object is
//! `[format][12-byte random nonce][ciphertext+tag]`; the format byte (1: zstd, 2: stored as is) and a caller's label (a
//! chunk's id, an object's key) are the associated data, so a swapped, truncated, relabelled or
//! tampered object is refused. Opening a chunk also checks its plain contents' BLAKE3 against
//! its id.

use std::cell::RefCell;

use aes_gcm_siv::aead::rand_core::RngCore;
use aes_gcm_siv::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

use crate::chunk::ChunkId;

/// Format byte: the plain bytes were compressed with zstd.
const ZSTD: u8 = 1;
/// Format byte: the plain bytes are stored as they are (they did not compress).
const STORED: u8 = 2;
/// Bytes of nonce after the format byte.
const NONCE_LEN: usize = 12;
/// The zstd level: fast, and most of the win on text and databases.
const ZSTD_LEVEL: i32 = 1;
/// Bytes sampled to decide whether compressing is worth it.
const PROBE_LEN: usize = 1024;
/// The least secret material a key is derived from.
pub const KEY_MATERIAL_MIN: usize = 32;
/// Bytes a sealed object adds to its (compressed) contents: format, nonce and tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The secret material is too short to derive a key from.
    #[error(
        "the key material is {0} bytes; at least {KEY_MATERIAL_MIN} bytes of secret are needed"
    )]
    ShortKey(usize),
    /// The object is not a sealed object of a known format.
    #[error("{0}: not a sealed object of a known format")]
    Format(String),
    /// The tag did not verify: another key, or the object was changed.
    #[error("{0}: does not open with this key (another pair's key, or the object was altered)")]
    Tag(String),
    /// The contents do not hash to the id.
    #[error("chunk {0}: its contents do not match its id")]
    Mismatch(ChunkId),
    /// Compression failed, or the contents are longer than allowed.
    #[error("{0}: {1}")]
    Codec(String, String),
}

/// An encryption key for one ClusterPair's objects.
pub struct Key(Aes256GcmSiv);

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
        Ok(Key(Aes256GcmSiv::new(&bytes.into())))
    }
}

thread_local! {
    /// One zstd context per thread, reused: creating one costs more than compressing a chunk.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(data),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

fn zstd_decompress(data: &[u8], max_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(data, max_len),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Whether compressing `plain` is worth trying. A sample of eight 128-byte slices must have a
/// second-order (collision) entropy under 7 bits per byte: random, encrypted and compressed
/// data (about 7.7 bits) skip the compressor for the price of a histogram; text, zeros and
/// database pages (well under 7) go to zstd, which stores them as they are if it cannot shrink
/// them.
fn compressible(plain: &[u8]) -> bool {
    const SLICES: usize = 8;
    const SLICE: usize = PROBE_LEN / SLICES;
    if plain.len() <= PROBE_LEN {
        return true;
    }
    let mut counts = [0u32; 256];
    let step = (plain.len() - SLICE) / (SLICES - 1);
    for i in 0..SLICES {
        for &b in &plain[i * step..i * step + SLICE] {
            counts[usize::from(b)] += 1;
        }
    }
    // H2 = -log2(sum p^2) < 7  <=>  sum c^2 > n^2 / 128.
    let squares: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    let n = PROBE_LEN as u64;
    squares > n * n / 128
}

/// The compression step on its own: `Some(compressed)` when compressing pays, `None` when the
/// bytes are better stored as they are.
pub fn compress(plain: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    if !compressible(plain) {
        return Ok(None);
    }
    let c = zstd_compress(plain)?;
    Ok((c.len() < plain.len()).then_some(c))
}

/// Compresses (when it pays) and encrypts `plain`, binding `label` as associated data.
pub fn seal_labelled(key: &Key, label: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let compressed =
        compress(plain).map_err(|e| SealError::Codec(label.to_owned(), e.to_string()))?;
    let (format, body) = match &compressed {
        Some(c) => (ZSTD, c.as_slice()),
        None => (STORED, plain),
    };
    let nonce = Aes256GcmSiv::generate_nonce(&mut OsRng);
    let aad = associated(format, label);
    let ciphertext = key
        .0
        .encrypt(&nonce, Payload { msg: body, aad: &aad })
        .map_err(|_| SealError::Codec(label.to_owned(), "encryption failed".to_owned()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(format);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts and decompresses an object sealed with `label`; `max_len` bounds the plain size.
pub fn open_labelled(
    key: &Key,
    label: &str,
    sealed: &[u8],
    max_len: usize,
) -> Result<Vec<u8>, SealError> {
    let format = sealed.first().copied().unwrap_or(0);
    if sealed.len() < OVERHEAD || !matches!(format, ZSTD | STORED) {
        return Err(SealError::Format(label.to_owned()));
    }
    let nonce = Nonce::from_slice(&sealed[1..=NONCE_LEN]);
    let aad = associated(format, label);
    let body = key
        .0
        .decrypt(nonce, Payload { msg: &sealed[1 + NONCE_LEN..], aad: &aad })
        .map_err(|_| SealError::Tag(label.to_owned()))?;
    if format == STORED {
        if body.len() > max_len {
            return Err(SealError::Codec(label.to_owned(), "longer than allowed".to_owned()));
        }
        return Ok(body);
    }
    zstd_decompress(&body, max_len).map_err(|e| SealError::Codec(label.to_owned(), e.to_string()))
}

fn associated(format: u8, label: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + label.len());
    aad.push(format);
    aad.extend_from_slice(label.as_bytes());
    aad
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// A random name (32 hex digits) for an object that is not named by its contents.
pub fn random_name() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compresses and encrypts one chunk, its id as the label.
pub fn seal(key: &Key, id: &ChunkId, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    seal_labelled(key, id.as_str(), plain)
}

/// Decrypts, decompresses and verifies one chunk; `max_len` bounds the plain size (a chunk is
/// never longer than the chunker's maximum).
pub fn open(key: &Key, id: &ChunkId, sealed: &[u8], max_len: usize) -> Result<Vec<u8>, SealError> {
    let plain = open_labelled(key, id.as_str(), sealed, max_len)?;
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
        let data = b"the contents of a database page".repeat(1000);
        let id = ChunkId::of(&data);
        let sealed = seal(&key(1), &id, &data).expect("seals");
        assert_eq!(sealed[0], ZSTD);
        assert!(sealed.len() < data.len() / 10, "compressed: {} of {}", sealed.len(), data.len());
        let tag = |id: &ChunkId| SealError::Tag(id.to_string());
        assert_eq!(open(&key(2), &id, &sealed, 1 << 20), Err(tag(&id)));
        let other = ChunkId::of(b"other");
        assert_eq!(open(&key(1), &other, &sealed, 1 << 20), Err(tag(&other)));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&key(1), &id, &flipped, 1 << 20), Err(tag(&id)));
        let mut reformatted = sealed.clone();
        reformatted[0] = STORED;
        assert_eq!(open(&key(1), &id, &reformatted, 1 << 20), Err(tag(&id)), "format is bound");
        assert_eq!(
            open(&key(1), &id, &sealed[..10], 1 << 20),
            Err(SealError::Format(id.to_string()))
        );
        assert!(matches!(open(&key(1), &id, &sealed, 100), Err(SealError::Codec(..))));
    }

    #[test]
    fn random_data_is_stored_without_compression_and_still_opens() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..65_536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect();
        let id = ChunkId::of(&data);
        let sealed = seal(&key(1), &id, &data).expect("seals");
        assert_eq!(sealed[0], STORED);
        assert_eq!(sealed.len(), data.len() + OVERHEAD);
        assert_eq!(open(&key(1), &id, &sealed, 1 << 20).expect("opens"), data);
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
        assert_eq!(open(&key(1), &id, &a, 10), open(&key(1), &id, &b, 10));
    }
}
