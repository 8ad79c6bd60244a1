//! Object stores: where sealed packs, indexes and manifests live. [`ObjectStore`] is the seam;
//! [`local::LocalStore`] (a directory, the embedded default) and [`s3::S3Store`] (any S3 API,
//! through aws-sdk-s3) implement it. A store URL picks one:
//!
//! - `file:///var/lib/avocet/store` — a local directory;
//! - `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` — an S3 bucket, with
//!   credentials from the usual AWS environment variables or the SDK's default chain. Query
//!   options: `endpoint`, `region`, `pathStyle` (default true with an endpoint), `concurrency`
//!   (requests at once, default 16), `timeout` (seconds per attempt, default 30) and
//!   `attempts` (default 6).
//!
//! Every operation is async and every error names the store, the operation and the key.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub mod local;
pub mod s3;

/// What a store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A flat key → bytes store. Keys are `/`-separated and relative to the store's root.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Stores `body` under `key`, replacing what was there; the object appears whole or not at
    /// all.
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, ()>;
    /// Stores `body` under `key` only if no object is there (S3's `If-None-Match: *`); returns
    /// `false`, changing nothing, when one already is. A retried request may find its own
    /// first attempt there: a caller that must tell reads the object back and compares.
    fn put_new<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, bool>;
    /// Reads the object at `key`, or `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Reads `len` bytes of the object at `key` from `offset`.
    fn get_range<'a>(&'a self, key: &'a str, offset: u64, len: u64) -> StoreFuture<'a, Vec<u8>>;
    /// Every key that starts with `prefix`, in no particular order.
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>>;
    /// Removes the object at `key` (nothing when there is none).
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;
    /// Makes every completed `put` durable before returning (a no-op where puts already are).
    fn flush(&self) -> StoreFuture<'_, ()>;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL or one of its options is wrong.
    #[error("{0}")]
    Url(String),
    /// An operation failed after its retries.
    #[error("{store}: cannot {op} {key:?}: {reason}")]
    Op {
        /// The store, as its URL.
        store: String,
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

/// A pair's store and data key as a worker receives them with a lease (built from stored
/// credentials): never printed.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// The store URL (`s3://…` or `file://…`).
    pub url: String,
    /// The S3 access key id (empty: the SDK's default chain).
    #[serde(default)]
    pub access_key: String,
    /// The S3 secret access key.
    #[serde(default)]
    pub secret_key: String,
    /// The pair's data key material, hex.
    pub key_hex: String,
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({}, ..)", self.url)
    }
}

impl StoreSpec {
    /// The store, with the spec's static credentials.
    pub fn store_url(&self) -> Result<StoreUrl, StoreError> {
        let mut url = StoreUrl::parse(&self.url)?;
        if let StoreUrl::S3(options) = &mut url
            && !self.access_key.is_empty()
        {
            options.credentials = Some(s3::StaticCredentials {
                access_key: self.access_key.clone(),
                secret_key: self.secret_key.clone(),
            });
        }
        Ok(url)
    }

    /// The data key material.
    pub fn key_material(&self) -> Vec<u8> {
        (0..self.key_hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(self.key_hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }
}

/// A store URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:///path`.
    Local(PathBuf),
    /// `s3://bucket/prefix?…`.
    S3(s3::S3Options),
}

impl StoreUrl {
    /// Reads a store URL, naming the bad part when it cannot.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(StoreError::Url(format!(
                    "store URL {url:?}: a file URL needs an absolute path, like file:///var/lib/avocet/store"
                )));
            }
            return Ok(StoreUrl::Local(PathBuf::from(path)));
        }
        if url.starts_with("s3://") {
            return s3::S3Options::parse(url).map(StoreUrl::S3);
        }
        Err(StoreError::Url(format!(
            "store URL {url:?} is neither file:///PATH nor s3://BUCKET[/PREFIX][?endpoint=URL&region=R]"
        )))
    }

    /// Opens the store the URL names.
    pub async fn open(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        Ok(match self {
            StoreUrl::Local(path) => Arc::new(local::LocalStore::new(path.clone())),
            StoreUrl::S3(options) => Arc::new(s3::S3Store::connect(options.clone()).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_their_mistakes() {
        assert_eq!(
            StoreUrl::parse("file:///var/lib/x").expect("file"),
            StoreUrl::Local(PathBuf::from("/var/lib/x"))
        );
        let err = StoreUrl::parse("file://relative").expect_err("relative").to_string();
        assert!(err.contains("absolute path"), "{err}");
        let err = StoreUrl::parse("ftp://x").expect_err("scheme").to_string();
        assert!(err.contains("\"ftp://x\"") && err.contains("s3://BUCKET"), "{err}");
    }
}
