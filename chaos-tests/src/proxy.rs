//! A fault-injecting TCP proxy on loopback, for the services a migration talks to (the S3
//! server, the destination Avocet's API). Each new connection takes the proxy's current mode:
//!
//! - [`Mode::Pass`]: bytes flow both ways;
//! - [`Mode::Unavailable`]: the request head is read and answered `503 Slow Down`, as S3 does
//!   when it throttles (for HTTP/1 clients such as the S3 SDK);
//! - [`Mode::Stall`]: the connection is accepted and never answered;
//! - [`Mode::Reset`]: the connection is closed at once.
//!
//! [`Mode::Flaky`] mixes them: one connection in `every` gets the next fault in turn. The
//! proxy counts connections and faults. It runs on threads and stops when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What new connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwarded.
    Pass,
    /// Answered 503.
    Unavailable,
    /// Never answered.
    Stall,
    /// Closed at once.
    Reset,
    /// One connection in `every` gets a fault (503, stall, reset in turn); the rest pass.
    Flaky {
        /// How many connections per fault.
        every: u64,
    },
}

/// A proxy in front of `127.0.0.1:<upstream>`.
#[derive(Debug)]
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    /// Faults injected.
    pub faults: Arc<AtomicU64>,
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

impl Proxy {
    /// Starts forwarding to `upstream`.
    pub fn start(upstream: u16) -> Result<Proxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let proxy = Proxy {
            port,
            mode: Arc::new(Mutex::new(Mode::Pass)),
            stop: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(AtomicU64::new(0)),
            faults: Arc::new(AtomicU64::new(0)),
        };
        let (mode, stop) = (Arc::clone(&proxy.mode), Arc::clone(&proxy.stop));
        let (connections, faults) = (Arc::clone(&proxy.connections), Arc::clone(&proxy.faults));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (client, _) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let n = connections.fetch_add(1, Ordering::Relaxed);
                let current = *mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let fault = match current {
                    Mode::Pass => None,
                    Mode::Flaky { every } if every > 0 && n % every == 0 => Some(
                        [Mode::Unavailable, Mode::Stall, Mode::Reset][((n / every) % 3) as usize],
                    ),
                    Mode::Flaky { .. } => None,
                    other => Some(other),
                };
                if fault.is_some() {
                    faults.fetch_add(1, Ordering::Relaxed);
                }
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || serve(client, upstream, fault, &stop));
            }
        });
        Ok(proxy)
    }

    /// Sets the mode of new connections.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, upstream: u16, fault: Option<Mode>, stop: &AtomicBool) {
    match fault {
        Some(Mode::Reset) => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Mode::Stall) => {
            // Hold the connection, unanswered, until the client gives up or the proxy stops.
            let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
            let mut sink = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match client.read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }
        Some(Mode::Unavailable) => {
            // Read the request head, then answer 503 and close.
            let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
                match client.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let response = format!(
                "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{SLOW_DOWN}",
                SLOW_DOWN.len()
            );
            let _ = client.write_all(response.as_bytes());
            let _ = client.shutdown(Shutdown::Both);
        }
        _ => {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let (Ok(mut client_read), Ok(mut server_write)) =
                (client.try_clone(), server.try_clone())
            else {
                return;
            };
            let upstream_copy = std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_read, &mut server_write);
                let _ = server_write.shutdown(Shutdown::Write);
            });
            let (mut server_read, mut client_write) = (server, client);
            let _ = std::io::copy(&mut server_read, &mut client_write);
            let _ = client_write.shutdown(Shutdown::Write);
            let _ = upstream_copy.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn ask(port: u16, text: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let mut answer = vec![0u8; 1024];
        let n = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    #[test]
    fn each_mode_does_what_it_says() {
        let proxy = Proxy::start(echo_server()).unwrap();
        assert_eq!(ask(proxy.port, "hello"), "hello");
        proxy.set(Mode::Unavailable);
        assert!(ask(proxy.port, "GET / HTTP/1.1\r\nhost: x\r\n\r\n").starts_with("HTTP/1.1 503"));
        proxy.set(Mode::Reset);
        assert_eq!(ask(proxy.port, "hello"), "");
        proxy.set(Mode::Stall);
        assert_eq!(ask(proxy.port, "hello"), "");
        proxy.set(Mode::Pass);
        assert_eq!(ask(proxy.port, "again"), "again");
        assert_eq!(proxy.faults.load(Ordering::Relaxed), 3);
        assert_eq!(proxy.connections.load(Ordering::Relaxed), 5);
    }
}
