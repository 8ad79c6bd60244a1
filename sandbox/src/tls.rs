//! The sandbox serves HTTPS, as every real API server does (kubectl sends a bearer token only
//! over TLS). It makes its own certificate authority and a server certificate for loopback and
//! the listen address; with a data directory both are kept there, so a kubeconfig written before
//! a restart still works after it.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The server's TLS material.
pub(crate) struct Tls {
    /// PEM of the certificate authority clients trust (`certificate-authority-data`).
    pub(crate) ca_pem: String,
    /// The rustls configuration to serve with.
    pub(crate) config: Arc<rustls::ServerConfig>,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "avocet-sandbox-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn server_names(listen: IpAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    names
}

impl Tls {
    /// Loads the authority (and a server certificate covering `listen`) from `dir`, or makes
    /// and keeps new ones.
    pub(crate) fn load_or_create(dir: Option<&Path>, listen: IpAddr) -> anyhow::Result<Self> {
        let names = server_names(listen);
        let stored = dir.map(|d| d.join("tls"));
        let read = |file: &str| stored.as_ref().and_then(|d| fs::read_to_string(d.join(file)).ok());
        let (ca_pem, ca_key) = match (read("ca.crt"), read("ca.key")) {
            (Some(cert), Some(key)) => (
                cert,
                KeyPair::from_pem(&key)
                    .context("the sandbox CA key in the data directory is unreadable")?,
            ),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                (cert.pem(), key)
            }
        };
        let names_file = names.join(",");
        let (server_pem, server_key) =
            match (read("server.crt"), read("server.key"), read("server.names")) {
                (Some(cert), Some(key), Some(stored_names)) if stored_names == names_file => {
                    (cert, key)
                }
                _ => {
                    let key = KeyPair::generate()?;
                    let mut params = CertificateParams::new(names.clone())?;
                    params.distinguished_name.push(DnType::CommonName, "avocet-sandbox");
                    let issuer = Issuer::new(ca_params()?, &ca_key);
                    let cert = params.signed_by(&key, &issuer)?;
                    (cert.pem(), key.serialize_pem())
                }
            };
        if let Some(d) = &stored {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            for (file, text) in [
                ("ca.crt", ca_pem.as_str()),
                ("ca.key", &ca_key.serialize_pem()),
                ("server.crt", &server_pem),
                ("server.key", &server_key),
                ("server.names", &names_file),
            ] {
                crate::write_private(&d.join(file), text)?;
            }
        }
        let certs = rustls_pemfile_certs(&server_pem)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(pem_der(&server_key, "PRIVATE KEY")?)
            .map_err(|e| anyhow::anyhow!("the sandbox server key is unusable: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { ca_pem, config: Arc::new(config) })
    }
}

/// The DER of the first PEM block with this label.
fn pem_der(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).with_context(|| format!("no {label} in PEM"))? + begin.len();
    let stop =
        pem[start..].find(&end).with_context(|| format!("unterminated {label} in PEM"))? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

fn rustls_pemfile_certs(
    pem: &str,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    Ok(vec![rustls::pki_types::CertificateDer::from(pem_der(pem, "CERTIFICATE")?)])
}
