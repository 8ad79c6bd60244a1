//! `avocet.api.v1.Credentials`: object-store credentials, the seed's `pxctl credentials create`
//! step. The secrets (access key, secret key, and a random data key for the pair created now,
//! on first use) are sealed with the service's master key (`--master-key-file`, typically a
//! mounted Kubernetes Secret) before the command is proposed, so the Raft log and its
//! snapshots never hold them in the clear. Listing never returns them.

use std::sync::Arc;

use avocet_proto::api::credentials_server::Credentials as CredentialsService;
use avocet_proto::api::{
    CreateCredentialRequest, CreateCredentialResponse, CredentialInfo, DeleteCredentialRequest,
    DeleteCredentialResponse, ListCredentialsRequest, ListCredentialsResponse,
};
use avocet_scheduler::catalog::Credential;
use avocet_scheduler::{Command, Response as Answer};
use avocet_transfer::seal::{self, Key};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::catalog_api::{CatalogApi, rfc3339};

/// The secrets of one credential, as sealed (never printed).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// The pair's data key material (hex of 32 random bytes), from which chunk keys derive.
    pub pair_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// The label a credential's secrets are sealed under.
fn label(name: &str) -> String {
    format!("credentials/{name}")
}

/// Opens a stored credential's secrets with the master key.
pub fn open_secrets(master: &Key, credential: &Credential) -> Result<Secrets, String> {
    let sealed =
        base64::engine::general_purpose::STANDARD.decode(&credential.sealed).map_err(|_| {
            format!("credentials {:?}: the sealed secrets are not base64", credential.name)
        })?;
    let plain = seal::open_labelled(master, &label(&credential.name), &sealed, 1 << 20)
        .map_err(|e| format!("credentials {:?}: {e}", credential.name))?;
    serde_json::from_slice(&plain)
        .map_err(|e| format!("credentials {:?}: the secrets do not read: {e}", credential.name))
}

/// Serves the credentials of one node.
#[derive(Clone)]
pub struct CredentialsApi {
    /// The catalog.
    pub catalog: CatalogApi,
    /// The master key, when configured.
    pub master: Option<Arc<Key>>,
}

fn check(request: &CreateCredentialRequest) -> Result<(String, String), Status> {
    let bad =
        |field: &str, message: String| Err(Status::invalid_argument(format!("{field}: {message}")));
    let name_ok = (1..=128).contains(&request.name.len())
        && request
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return bad(
            "name",
            format!(
                "{:?} is not a name of 1 to 128 letters, digits, '_', '-' or '.' (use clusterPair_<cluster id>)",
                request.name
            ),
        );
    }
    match request.provider.as_str() {
        "s3" => {}
        "azure" | "google" => {
            return Err(Status::invalid_argument(format!(
                "--provider {}: not supported yet; Avocet stores volumes in S3-compatible object stores (or, without credentials, in its internal store)",
                request.provider
            )));
        }
        other => return bad("--provider", format!("{other:?} is not one of s3, azure, google")),
    }
    for (field, value) in [
        ("--s3-access-key", &request.access_key),
        ("--s3-secret-key", &request.secret_key),
        ("--s3-region", &request.region),
        ("--s3-endpoint", &request.endpoint),
    ] {
        if value.trim().is_empty() {
            return bad(field, "is required".to_owned());
        }
    }
    let storage_class = match request.storage_class.as_str() {
        "" | "STANDARD" => "STANDARD",
        "STANDARD-IA" => "STANDARD-IA",
        other => {
            return bad(
                "--s3-storage-class",
                format!("{other:?} is neither STANDARD nor STANDARD-IA"),
            );
        }
    };
    let bucket_ok = request.bucket.is_empty()
        || ((3..=63).contains(&request.bucket.len())
            && request
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'));
    if !bucket_ok {
        return bad(
            "--bucket",
            format!(
                "{:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '.' or '-')",
                request.bucket
            ),
        );
    }
    let endpoint = if request.endpoint.contains("://") {
        request.endpoint.clone()
    } else if request.disable_ssl {
        format!("http://{}", request.endpoint)
    } else {
        format!("https://{}", request.endpoint)
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return bad("--s3-endpoint", format!("{:?} is not an http(s) address", request.endpoint));
    }
    Ok((endpoint, storage_class.to_owned()))
}

#[tonic::async_trait]
impl CredentialsService for CredentialsApi {
    async fn create(
        &self,
        request: Request<CreateCredentialRequest>,
    ) -> Result<Response<CreateCredentialResponse>, Status> {
        let request = request.into_inner();
        let (endpoint, storage_class) = check(&request)?;
        let Some(master) = &self.master else {
            return Err(Status::failed_precondition(
                "this Avocet has no master key (--master-key-file), so it cannot store credentials sealed",
            ));
        };
        let mut pair_key = [0u8; 32];
        seal::random_bytes(&mut pair_key);
        let secrets = Secrets {
            access_key: request.access_key,
            secret_key: request.secret_key,
            pair_key: pair_key.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let plain = serde_json::to_vec(&secrets).map_err(|e| Status::internal(e.to_string()))?;
        let sealed = seal::seal_labelled(master, &label(&request.name), &plain)
            .map_err(|e| Status::internal(e.to_string()))?;
        let credential = Credential {
            name: request.name,
            provider: request.provider,
            bucket: request.bucket,
            endpoint,
            region: request.region,
            storage_class,
            disable_ssl: request.disable_ssl,
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
            created_at: self.catalog.now(),
        };
        let at = self.catalog.now();
        match self
            .catalog
            .write(Command::PutCredential { credential: Box::new(credential), at })
            .await?
        {
            Answer::CredentialStored => Ok(Response::new(CreateCredentialResponse {})),
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn list(
        &self,
        _: Request<ListCredentialsRequest>,
    ) -> Result<Response<ListCredentialsResponse>, Status> {
        let credentials = self
            .catalog
            .read(|catalog| {
                catalog
                    .credentials()
                    .map(|c| CredentialInfo {
                        name: c.name.clone(),
                        provider: c.provider.clone(),
                        bucket: c.bucket.clone(),
                        endpoint: c.endpoint.clone(),
                        region: c.region.clone(),
                        storage_class: c.storage_class.clone(),
                        disable_ssl: c.disable_ssl,
                        created_at: rfc3339(c.created_at),
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        Ok(Response::new(ListCredentialsResponse { credentials }))
    }

    async fn delete(
        &self,
        request: Request<DeleteCredentialRequest>,
    ) -> Result<Response<DeleteCredentialResponse>, Status> {
        let name = request.into_inner().name;
        let at = self.catalog.now();
        self.catalog.write(Command::DeleteCredential { name, at }).await?;
        Ok(Response::new(DeleteCredentialResponse {}))
    }
}
