//! A Kubernetes-API-compatible server, **for tests and the demo only**.
//!
//! No real kube-apiserver can be installed on our machines, yet resource copy, the CRD
//! controller, the chaos tests and `avocet demo` need clusters. The sandbox serves the real REST
//! protocol well enough that the kube crate and real `kubectl` cannot tell the difference for
//! what Avocet does: discovery, create/get/list/update/patch/delete/watch of the built-in kinds
//! and of any custom resource once its definition exists, namespaces, uid and resourceVersion
//! with 409 on a stale write, generateName, finalizers, ownerReference cascades, label and field
//! selectors, paging, the status and scale subresources, JSON / merge / strategic merge patches,
//! server-side apply with field managers, bearer-token auth and `Status` errors. The product
//! talks to it only through the kube crate, exactly as to a real cluster.
//!
//! What it does not do, on purpose: run controllers (no Pods appear for a Deployment; status is
//! whatever a client writes to `/status`), validate objects against OpenAPI schemas (it checks
//! names, labels, workload selectors and the immutable fields Avocet can trip over), convert
//! between versions of a custom resource (it serves the stored object at every version), or
//! speak protobuf. Server-side apply's simplifications are listed in `fields`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sandbox = avocet_sandbox::Sandbox::start_local().await?;
//! let client = sandbox.client().await?;
//! # let _ = client;
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod clock;
mod error;
mod exec;
mod fields;
mod http;
mod kinds;
mod openapi;
mod ops;
mod patch;
mod protobuf;
mod registry;
mod select;
mod store;
mod table;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::ApiError;

/// The token a kubeconfig for an open sandbox (no `--token`) carries.
const OPEN_SANDBOX_TOKEN: &str = "any-token-is-accepted";

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory to journal objects in; `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// Bearer token clients must present; `None` accepts any client.
    pub token: Option<String>,
    /// Runs `pods/exec` commands as local processes in `<exec_root>/<namespace>/<pod>` (the
    /// sandbox runs no containers); `None` refuses exec.
    pub exec_root: Option<PathBuf>,
}

impl SandboxConfig {
    /// In memory, on a free loopback port, open to any client, without exec.
    pub fn local() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            token: None,
            exec_root: None,
        }
    }
}

/// A running sandbox API server.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    token: Option<String>,
    ca_pem: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Starts a sandbox; it serves until [`Sandbox::shutdown`] or until dropped.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Self> {
        let store = store::Store::open(config.data_dir.as_deref())?;
        let tls = tls::Tls::load_or_create(config.data_dir.as_deref(), config.listen.ip())?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(http::Shared {
            store: Mutex::new(store),
            token: config.token.clone(),
            exec_root: config.exec_root.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        let task = tokio::spawn(accept_loop(listener, acceptor, shared, stopped));
        tracing::info!(%addr, persisted = config.data_dir.is_some(), auth = config.token.is_some(), "sandbox API server listening");
        Ok(Self { addr, token: config.token, ca_pem: tls.ca_pem, stop, task })
    }

    /// [`Sandbox::start`] with [`SandboxConfig::local`].
    pub async fn start_local() -> anyhow::Result<Self> {
        Self::start(SandboxConfig::local()).await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server URL clients use (`https://127.0.0.1:PORT`; an unspecified listen address is
    /// reached through loopback).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        format!("https://{addr}")
    }

    /// A kubeconfig with one cluster, user and context, each named `sandbox`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url(), &self.ca_pem, self.token.as_deref())
    }

    /// The PEM of the certificate authority that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`Sandbox::kubeconfig`] to a file (mode 0600: it may hold the token).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        write_private(path, &self.kubeconfig())
    }

    /// A `kube::Client` for this sandbox, built from its kubeconfig as for any cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Serves until the accept loop ends (it does not, unless the listener fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<http::Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox accept failed");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let mut stop = stopped.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "sandbox TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("sandbox TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req| http::serve(Arc::clone(&shared), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "sandbox connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

/// A kubeconfig for `server` (trusting `ca_pem`), with one cluster, user and context named
/// `sandbox`.
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, token: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    // A sandbox without a token accepts any client, but kubectl with no credentials at all
    // prompts for a user name and password; a placeholder token keeps it quiet.
    let token = token.unwrap_or(OPEN_SANDBOX_TOKEN);
    let user = format!("    token: {}\n", serde_json::Value::from(token));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: sandbox\n  user:\n{user}contexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\ncurrent-context: sandbox\npreferences: {{}}\n"
    )
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the kubeconfig {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write the kubeconfig {}", path.display()))?;
    Ok(())
}
