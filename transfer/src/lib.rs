//! The data plane: moving what changed in a volume, and nothing else, through an object store.
//!
//! This crate will hold content-defined chunking (FastCDC, BLAKE3 chunk ids, zstd, per-pair AEAD
//! encryption), versioned per-run manifests written after every chunk they name, change
//! detection against the previous manifest, atomic restore into a staging area, and the
//! `ObjectStore` trait with an S3 implementation (aws-sdk-s3) and a local-directory one (the
//! embedded default). Chunking and diffing are pure functions; IO lives only in `store/`.
//!
//! Only this crate names aws-sdk-s3 (an architecture invariant, checked by the tidy test). It
//! depends on no other Avocet crate, so it doubles as a standalone tool behind
//! `avocetctl snapshot push|restore`. The data-plane issue fills it in.
//!
//! What exists today: the pure cores — [`chunk`] (FastCDC and BLAKE3 ids), [`seal`] (zstd and
//! XChaCha20-Poly1305 with a derived key), [`manifest`] (versioned, path-safe) and [`plan`]
//! (full runs, change detection). The stores, push and restore come next.

pub mod chunk;
pub mod manifest;
pub mod plan;
pub mod seal;
