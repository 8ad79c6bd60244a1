//! One s3s-fs per test, with its data directory beside it.

use avocet_transfer::testing;

/// A running s3s-fs and its data directory.
pub(crate) struct S3Server {
    server: testing::S3Server,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    _data: tempfile::TempDir,
}

impl S3Server {
    /// Starts one.
    pub(crate) fn start() -> S3Server {
        let data = tempfile::tempdir().expect("data dir");
        let server = testing::S3Server::start(data.path()).expect("s3s-fs starts");
        S3Server { port: server.port, server, _data: data }
    }

    /// Options for `bucket`, reached through `port`.
    pub(crate) fn options(&self, bucket: &str, port: u16) -> avocet_transfer::store::s3::S3Options {
        self.server.options(bucket, port)
    }
}
