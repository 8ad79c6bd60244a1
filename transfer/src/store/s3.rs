//! The S3 store, on aws-sdk-s3: any S3 API (AWS, MinIO, Ceph, s3s) at a custom endpoint with
//! path-style addressing, a region, static credentials or the SDK's default chain (environment,
//! profile, web identity, instance metadata). Requests are bounded by a semaphore; the SDK's
//! standard retry strategy retries 5xx, throttling, resets and per-attempt timeouts with capped
//! exponential backoff; objects above a threshold go up in parts. A bucket that does not exist
//! reads as empty and is created by the first write.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::sync::Semaphore;

use super::{ObjectStore, StoreError, StoreFuture};

/// Static credentials (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticCredentials({}, ..)", self.access_key)
    }
}

/// How to reach a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// Keys go under this prefix (no leading or trailing `/`; empty for the bucket's root).
    pub prefix: String,
    /// A custom endpoint (`http://127.0.0.1:9000`); AWS's own when `None`.
    pub endpoint: Option<String>,
    /// The region; the default chain's, or us-east-1, when `None`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most non-AWS servers need.
    pub path_style: bool,
    /// Static credentials; the SDK's default chain when `None`.
    pub credentials: Option<StaticCredentials>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The limit on one attempt of one request.
    pub attempt_timeout: Duration,
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Objects larger than this go up in parts.
    pub multipart_threshold: usize,
    /// The size of each part (S3's minimum is 5 MiB).
    pub part_size: usize,
}

impl S3Options {
    /// Options for `bucket` with the defaults.
    pub fn new(bucket: &str) -> S3Options {
        S3Options {
            bucket: bucket.to_owned(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            concurrency: 16,
            attempt_timeout: Duration::from_secs(30),
            attempts: 6,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
        }
    }

    /// Reads `s3://bucket[/prefix][?endpoint=…&region=…&pathStyle=…&concurrency=…&timeout=…&attempts=…]`.
    pub fn parse(url: &str) -> Result<S3Options, StoreError> {
        let bad = |what: String| StoreError::Url(format!("store URL {url:?}: {what}"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not an s3:// URL".to_owned()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(bad(format!(
                "bucket {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '.' or '-')"
            )));
        }
        let mut options = S3Options::new(bucket);
        options.prefix = prefix.trim_matches('/').to_owned();
        let mut path_style = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad(format!("{name}: bad escape")))?;
            let number =
                |what: &str| -> Result<u64, StoreError> {
                    value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("{what} {value:?} is not a positive whole number"))
                    })
                };
            match name {
                "endpoint" if value.starts_with("http://") || value.starts_with("https://") => {
                    options.endpoint = Some(value.clone());
                }
                "endpoint" => return Err(bad(format!("endpoint {value:?} is not an http(s) URL"))),
                "region" => options.region = Some(value.clone()),
                "pathStyle" => match value.as_str() {
                    "true" => path_style = Some(true),
                    "false" => path_style = Some(false),
                    _ => return Err(bad(format!("pathStyle {value:?} is neither true nor false"))),
                },
                "concurrency" => {
                    options.concurrency =
                        usize::try_from(number("concurrency")?.min(256)).unwrap_or(16);
                }
                "timeout" => options.attempt_timeout = Duration::from_secs(number("timeout")?),
                "attempts" => {
                    options.attempts = u32::try_from(number("attempts")?.min(20)).unwrap_or(6);
                }
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (known: endpoint, region, pathStyle, concurrency, timeout, attempts)"
                    )));
                }
            }
        }
        options.path_style = path_style.unwrap_or(options.endpoint.is_some());
        Ok(options)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A store in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    options: Arc<S3Options>,
    permits: Arc<Semaphore>,
    name: Arc<str>,
}

impl S3Store {
    /// Builds the client (no request is made yet).
    pub async fn connect(options: S3Options) -> Result<S3Store, StoreError> {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(c) = &options.credentials {
            let credentials =
                Credentials::new(c.access_key.clone(), c.secret_key.clone(), None, None, "avocet");
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(options.path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(options.attempts)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(options.attempt_timeout)
                    .build(),
            );
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let name = match &options.endpoint {
            Some(endpoint) => format!("s3://{}/{} at {endpoint}", options.bucket, options.prefix),
            None => format!("s3://{}/{}", options.bucket, options.prefix),
        };
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            options: Arc::new(options),
            name: name.into(),
        })
    }

    fn full_key(&self, key: &str) -> String {
        if self.options.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.options.prefix)
        }
    }

    fn error(&self, op: &'static str, key: &str, reason: impl fmt::Display) -> StoreError {
        StoreError::Op {
            store: self.name.to_string(),
            op,
            key: key.to_owned(),
            reason: reason.to_string(),
        }
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed, so acquiring only waits.
        loop {
            if let Ok(permit) = self.permits.acquire().await {
                return permit;
            }
        }
    }

    /// Puts `body` at `key` (only where no object is, with `only_new`: S3 answers 412
    /// `PreconditionFailed` otherwise).
    async fn put_once(
        &self,
        key: &str,
        body: &[u8],
        only_new: bool,
    ) -> Result<(), (String, Option<String>)> {
        let full = self.full_key(key);
        let describe =
            |e: &dyn ProvideErrorMetadata, context: String| (context, e.code().map(str::to_owned));
        let condition = only_new.then(|| "*".to_owned());
        if body.len() <= self.options.multipart_threshold {
            return self
                .client
                .put_object()
                .bucket(&self.options.bucket)
                .key(&full)
                .set_if_none_match(condition)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe(&e, DisplayErrorContext(&e).to_string()));
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.options.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| describe(&e, DisplayErrorContext(&e).to_string()))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        for (i, part) in body.chunks(self.options.part_size.max(5 * 1024 * 1024)).enumerate() {
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let sent = self
                .client
                .upload_part()
                .bucket(&self.options.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(part.to_vec()))
                .send()
                .await;
            match sent {
                Ok(out) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(e) => {
                    self.abort_upload(&full, &upload_id).await;
                    return Err(describe(&e, DisplayErrorContext(&e).to_string()));
                }
            }
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.options.bucket)
            .key(&full)
            .set_if_none_match(condition)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        if let Err(e) = completed {
            // Refused (an object already there, for a create-only put) or failed: the parts
            // must not linger, billed, in the bucket.
            self.abort_upload(&full, &upload_id).await;
            return Err(describe(&e, DisplayErrorContext(&e).to_string()));
        }
        Ok(())
    }

    /// Drops a multipart upload's parts (best effort: a bucket lifecycle rule catches the rest).
    async fn abort_upload(&self, full: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.options.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
    }
}

impl S3Store {
    /// Puts `body` at `key` (see [`S3Store::put_once`]), creating the bucket when it is missing;
    /// returns `false` when `only_new` and an object was already there.
    async fn put_creating(
        &self,
        key: &str,
        body: &[u8],
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let _permit = self.permit().await;
        let mut outcome = match self.put_once(key, body, only_new).await {
            Err((_, Some(code))) if code == "NoSuchBucket" => {
                let created = self.client.create_bucket().bucket(&self.options.bucket).send().await;
                if let Err(e) = created {
                    let owned = e.code().is_some_and(|c| {
                        c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists"
                    });
                    if !owned {
                        return Err(self.error(
                            "create the bucket for",
                            key,
                            DisplayErrorContext(&e),
                        ));
                    }
                }
                self.put_once(key, body, only_new).await
            }
            outcome => outcome,
        };
        // Two create-only puts of one key at once: S3 answers 409 to one of them; asking again
        // settles which one stored it.
        for _ in 0..3 {
            match &outcome {
                Err((_, Some(code))) if only_new && code == "ConditionalRequestConflict" => {
                    outcome = self.put_once(key, body, only_new).await;
                }
                _ => break,
            }
        }
        match outcome {
            Ok(()) => Ok(true),
            Err((_, Some(code))) if only_new && code == "PreconditionFailed" => Ok(false),
            Err((e, _)) => Err(self.error(if only_new { "create" } else { "put" }, key, e)),
        }
    }
}

impl ObjectStore for S3Store {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.put_creating(key, &body, false).await.map(drop) })
    }

    fn put_new<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, bool> {
        Box::pin(async move { self.put_creating(key, &body, true).await })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let _permit = self.permit().await;
            let sent = self
                .client
                .get_object()
                .bucket(&self.options.bucket)
                .key(self.full_key(key))
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchBucket")) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.error("get", key, DisplayErrorContext(&e))),
            };
            let body = out.body.collect().await.map_err(|e| self.error("get", key, e))?;
            Ok(Some(body.into_bytes().to_vec()))
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, offset: u64, len: u64) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let _permit = self.permit().await;
            let last = offset + len.max(1) - 1;
            let out = self
                .client
                .get_object()
                .bucket(&self.options.bucket)
                .key(self.full_key(key))
                .range(format!("bytes={offset}-{last}"))
                .send()
                .await
                .map_err(|e| self.error("read a range of", key, DisplayErrorContext(&e)))?;
            let body =
                out.body.collect().await.map_err(|e| self.error("read a range of", key, e))?;
            let bytes = body.into_bytes().to_vec();
            if (bytes.len() as u64) != len {
                return Err(self.error(
                    "read a range of",
                    key,
                    format!("asked for {len} bytes at {offset}, got {}", bytes.len()),
                ));
            }
            Ok(bytes)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let full = self.full_key(prefix);
            let strip =
                if self.options.prefix.is_empty() { 0 } else { self.options.prefix.len() + 1 };
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let _permit = self.permit().await;
                let sent = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.options.bucket)
                    .prefix(&full)
                    .set_continuation_token(token.take())
                    .send()
                    .await;
                let page = match sent {
                    Ok(page) => page,
                    Err(e) if e.code() == Some("NoSuchBucket") => return Ok(keys),
                    Err(e) => return Err(self.error("list", prefix, DisplayErrorContext(&e))),
                };
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .filter_map(|k| k.get(strip..))
                        .map(str::to_owned),
                );
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => {
                        token = Some(next.to_owned())
                    }
                    _ => return Ok(keys),
                }
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _permit = self.permit().await;
            self.client
                .delete_object()
                .bucket(&self.options.bucket)
                .key(self.full_key(key))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("delete", key, DisplayErrorContext(&e)))
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // A completed PUT is durable in S3.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_gives_bucket_prefix_and_options() {
        let o = S3Options::parse(
            "s3://dr-bucket/avocet/pair-1/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1&timeout=3",
        )
        .expect("valid");
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("dr-bucket", "avocet/pair-1"));
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert!(o.path_style, "an endpoint implies path style");
        assert_eq!(o.attempt_timeout, Duration::from_secs(3));
        let plain = S3Options::parse("s3://bucket").expect("valid");
        assert!(!plain.path_style && plain.prefix.is_empty());
    }

    #[test]
    fn a_bad_s3_url_names_the_bad_part() {
        for (url, says) in [
            ("s3://B", "bucket \"B\""),
            ("s3://bucket?regoin=x", "unknown option \"regoin\""),
            ("s3://bucket?endpoint=127.0.0.1:9000", "endpoint \"127.0.0.1:9000\""),
            ("s3://bucket?timeout=0", "timeout \"0\""),
            ("s3://bucket?pathStyle=yes", "pathStyle \"yes\""),
        ] {
            let err = S3Options::parse(url).expect_err(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn credentials_never_print_the_secret() {
        let c = StaticCredentials { access_key: "AK".to_owned(), secret_key: "hush".to_owned() };
        assert!(!format!("{c:?}").contains("hush"));
    }
}
