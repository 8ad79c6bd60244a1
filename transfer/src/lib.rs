//! The data plane: moving what changed in a volume, and nothing else, through an object store.
//!
//! A *push* reads a directory tree, cuts changed files into content-defined chunks (FastCDC,
//! named by BLAKE3), seals each new chunk (zstd when it pays, then AES-256-GCM-SIV with a
//! key derived from the pair's secret), gathers them into packs with an index each, and writes
//! a manifest of the run last, so a manifest's presence means the snapshot is complete. A
//! *restore* builds a manifest's tree beside the target, reusing what the previous restore left
//! unchanged, and switches it in atomically.
//!
//! The pure cores do no IO: [`chunk`], [`seal`], [`manifest`], [`plan`] (full runs, change
//! detection) and [`layout`] (keys and the small objects describing a store). IO lives in
//! [`store`] (the `ObjectStore` trait, the local-directory store and the S3 store on
//! aws-sdk-s3) and [`volume`] (reading and writing directory trees); [`repo`], [`push`] and
//! [`restore`] orchestrate. Only this crate names aws-sdk-s3 (an architecture invariant,
//! checked by the tidy test). It depends on no other Avocet crate, so it doubles as a
//! standalone tool behind `avocetctl snapshot push|restore`.
//!
//! The key trade-off is chunk size: smaller chunks send fewer bytes for a small change but
//! make more objects to index; packs of about 8 MiB keep the object count (and S3 request
//! count) low whatever the chunk size, and per-file piece lists keep an unchanged large file
//! to one id in the next manifest.

pub mod chunk;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod plan;
pub mod push;
pub mod repo;
pub mod restore;
pub mod seal;
pub mod stopwatch;
pub mod store;
pub mod testing;
pub mod volume;

pub use error::TransferError;
