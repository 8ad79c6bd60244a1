//! The connection every server verb shares: endpoint, bearer token, deadlines, and one place
//! that turns a server's refusal into a sentence saying what to check.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::ServerArgs;

/// Bounds the connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bounds one call (writes wait for a commit).
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Adds the bearer token and the deadline to every request.
#[derive(Debug, Clone)]
pub(super) struct TokenInterceptor(
    Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    Option<Duration>,
);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        if let Some(timeout) = self.1 {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

impl TokenInterceptor {
    /// Returns the interceptor without a deadline, for streams that run until stopped.
    pub(super) fn streaming(mut self) -> Self {
        self.1 = None;
        self
    }
}

/// Connects to the server named by `--server` and prepares the token.
pub(super) async fn channel(server: &ServerArgs) -> anyhow::Result<(Channel, TokenInterceptor)> {
    let mut endpoint = Endpoint::from_shared(server.server.clone())
        .map_err(|_| {
            anyhow::anyhow!("--server: {:?} is not a URL like http://127.0.0.1:9001", server.server)
        })?
        .connect_timeout(CONNECT_TIMEOUT);
    if server.server.starts_with("https://") {
        let Some(file) = &server.ca_file else {
            anyhow::bail!(
                "--ca-file: is required for {} (https): give the PEM certificate authority that signed the server's certificate",
                server.server
            );
        };
        let pem = std::fs::read(file).map_err(|error| {
            anyhow::anyhow!("--ca-file: cannot read {}: {error}", file.display())
        })?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint.tls_config(tls).map_err(|error| {
            anyhow::anyhow!("--ca-file: {}", avocet_server::error_chain(&error))
        })?;
    }
    let channel = endpoint.connect().await.map_err(|error| {
        let chain = avocet_server::error_chain(&error);
        let hint = if chain.contains("CaUsedAsEndEntity") {
            " (the server presents a CA certificate as its own; it needs a leaf certificate \
             signed by the CA in --ca-file, e.g. made with basicConstraints=CA:FALSE)"
        } else if chain.contains("UnknownIssuer") {
            " (the server's certificate is not signed by the CA in --ca-file)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "cannot reach the Avocet server at {} (--server or AVOCET_SERVER): {chain}{hint}",
            server.server
        )
    })?;
    let token = match &server.token {
        Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
            anyhow::anyhow!("--token: the token has characters a header cannot carry")
        })?),
        None => None,
    };
    Ok((channel, TokenInterceptor(token, Some(CALL_TIMEOUT))))
}

/// Turns a server's refusal into a sentence that says what to check.
pub(super) fn failed(server: &ServerArgs, status: tonic::Status) -> anyhow::Error {
    let message = status.message();
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{message} (the server wants its admin token: pass --token or set AVOCET_TOKEN)"
        ),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => anyhow::anyhow!(
            "the server at {} did not answer within {CALL_TIMEOUT:?}: {message}",
            server.server
        ),
        tonic::Code::Unavailable => {
            anyhow::anyhow!("the server at {} cannot serve this now: {message}", server.server)
        }
        _ if message == "transport error" && server.server.starts_with("http://") => {
            anyhow::anyhow!(
                "the server at {} did not answer plain-text gRPC: if it serves TLS, use https:// \
             and --ca-file",
                server.server
            )
        }
        _ => anyhow::anyhow!("{message}"),
    }
}
