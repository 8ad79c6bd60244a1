//! Test support: a real S3 server (s3s-fs 0.14.1, which `scripts/test.sh` installs) on a free
//! loopback port with its own data directory, killed when dropped. Used by this crate's tests
//! and the command-line tests; never by the product.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::store::s3::{S3Options, StaticCredentials};

/// The access key the test servers accept.
pub const ACCESS_KEY: &str = "avocet-test";
/// The secret key the test servers accept.
pub const SECRET_KEY: &str = "avocet-test-secret-key";

/// Deterministic bytes that do not repeat or compress (xorshift), fast enough for hundreds of
/// MiB: test trees and bench data.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A running s3s-fs.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The s3s-fs binary: `$AVOCET_S3S_FS`, else cargo's bin folder, else the `PATH`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AVOCET_S3S_FS") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin/s3s-fs");
    if installed.exists() { installed } else { PathBuf::from("s3s-fs") }
}

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl S3Server {
    /// Starts a server keeping its objects under `data` and waits until it accepts
    /// connections.
    pub fn start(data: &Path) -> Result<S3Server, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start s3s-fs ({e}); ./scripts/test.sh installs s3s-fs 0.14.1 (or set AVOCET_S3S_FS)")
            })?;
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(S3Server { child, port });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("s3s-fs did not listen on port {port} within 5 s"))
    }

    /// Options for `bucket` on this server, reached through `port` (the server's own, or a
    /// proxy's in front of it).
    pub fn options(&self, bucket: &str, port: u16) -> S3Options {
        let mut options = S3Options::new(bucket);
        options.endpoint = Some(format!("http://127.0.0.1:{port}"));
        options.region = Some("us-east-1".to_owned());
        options.path_style = true;
        options.credentials = Some(StaticCredentials {
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
        });
        options
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
