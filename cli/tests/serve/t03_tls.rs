//! The public API over TLS: `avocet serve --tls-cert --tls-key`, and `avocetctl` trusting the
//! certificate authority with `--ca-file`; a plain-text client and a client without the CA are
//! refused with messages that say why.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::group::{ADMIN_TOKEN, avocetctl as ctl};

fn port() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

#[test]
fn the_public_api_serves_tls_to_clients_that_trust_its_authority() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key, ca) =
        (dir.path().join("tls.crt"), dir.path().join("tls.key"), dir.path().join("ca.crt"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let (api, raft) = (port(), port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(["serve", "--id", "1", "--listen", &api, "--raft-listen", &raft, "--bootstrap"])
        .args(["--peers", &format!("1={raft}"), "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("AVOCET_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AVOCET_PEER_TOKEN", "peer")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let https = format!("https://localhost:{}", api.rsplit_once(':').unwrap().1);
    let ca_file = ca.to_str().unwrap();
    let mut answered = None;
    for _ in 0..100 {
        let (ok, out, _) =
            ctl(&["--server", &https, "--ca-file", ca_file, "cluster", "status", "-o", "json"]);
        if ok && out.contains("\"leaderId\": 1") {
            answered = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered.is_some(), "no answer over TLS");

    let (ok, _, err) = ctl(&["--server", &https, "cluster", "status"]);
    assert!(!ok && err.contains("--ca-file: is required"), "{err}");
    let (ok, _, err) = ctl(&["--server", &format!("http://{api}"), "cluster", "status"]);
    assert!(!ok, "a plain-text client is refused: {err}");

    let _ = server.kill();
    let _ = server.wait();
}
