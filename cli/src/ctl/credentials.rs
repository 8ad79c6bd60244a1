//! `avocetctl credentials create|list|delete`: object-store credentials for a pair, the seed's
//! `pxctl credentials create` step. The service seals the secrets with its master key; `list`
//! never shows them.

use std::io::Write;
use std::process::ExitCode;

use avocet_proto::api::credentials_client::CredentialsClient;
use avocet_proto::api::{CreateCredentialRequest, DeleteCredentialRequest, ListCredentialsRequest};
use clap::{Args, Subcommand};

use super::client::failed;
use super::{OutputFormat, ServerArgs};
use crate::output::Table;

#[derive(Debug, Subcommand)]
pub(super) enum CredentialsCommand {
    /// Stores credentials for a pair's object store (name them clusterPair_<cluster id> of the
    /// destination, as `avocetctl cluster status` shows it there).
    Create(CreateArgs),
    /// Lists stored credentials (never their secrets).
    List {
        /// Prints a table or JSON.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Deletes stored credentials.
    Delete {
        /// Names them.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// Names the provider: s3 (azure and google are not supported yet).
    #[arg(long)]
    provider: String,
    /// Gives the S3 access key id.
    #[arg(long = "s3-access-key", value_name = "KEY", default_value = "")]
    access_key: String,
    /// Gives the S3 secret access key.
    #[arg(
        long = "s3-secret-key",
        value_name = "SECRET",
        default_value = "",
        hide_default_value = true
    )]
    secret_key: String,
    /// Gives the S3 region.
    #[arg(long = "s3-region", value_name = "REGION", default_value = "")]
    region: String,
    /// Gives the S3 endpoint (host:port or URL).
    #[arg(long = "s3-endpoint", value_name = "ENDPOINT", default_value = "")]
    endpoint: String,
    /// Gives the storage class: STANDARD or STANDARD-IA.
    #[arg(long = "s3-storage-class", value_name = "CLASS", default_value = "STANDARD")]
    storage_class: String,
    /// Names the bucket (default: one per pair).
    #[arg(long, value_name = "BUCKET", default_value = "")]
    bucket: String,
    /// Talks plain HTTP to the endpoint.
    #[arg(long)]
    disable_ssl: bool,
    /// Names the credentials: clusterPair_<cluster id of the destination>.
    name: String,
}

/// Runs a credentials verb.
pub(super) fn run(
    server: &ServerArgs,
    command: CredentialsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    super::catalog::runtime()?.block_on(async {
        let (channel, interceptor) = super::client::channel(server).await?;
        let mut client = CredentialsClient::with_interceptor(channel, interceptor);
        match command {
            CredentialsCommand::Create(args) => {
                let name = args.name.clone();
                let request = CreateCredentialRequest {
                    name: args.name,
                    provider: args.provider,
                    access_key: args.access_key,
                    secret_key: args.secret_key,
                    region: args.region,
                    endpoint: args.endpoint,
                    storage_class: args.storage_class,
                    bucket: args.bucket,
                    disable_ssl: args.disable_ssl,
                };
                client.create(request).await.map_err(|status| failed(server, status))?;
                writeln!(out, "Credentials created successfully: {name}")?;
            }
            CredentialsCommand::List { output } => {
                let list = client
                    .list(ListCredentialsRequest {})
                    .await
                    .map_err(|status| failed(server, status))?
                    .into_inner()
                    .credentials;
                if output == OutputFormat::Json {
                    let items: Vec<serde_json::Value> = list
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "name": c.name, "provider": c.provider, "bucket": c.bucket,
                                "endpoint": c.endpoint, "region": c.region,
                                "storageClass": c.storage_class, "disableSsl": c.disable_ssl,
                                "createdAt": c.created_at,
                            })
                        })
                        .collect();
                    serde_json::to_writer_pretty(&mut *out, &items)?;
                    writeln!(out)?;
                } else {
                    let mut table = Table::new(&[
                        "NAME",
                        "PROVIDER",
                        "BUCKET",
                        "ENDPOINT",
                        "REGION",
                        "STORAGE-CLASS",
                        "CREATED",
                    ]);
                    for c in list {
                        table.row(vec![
                            c.name,
                            c.provider,
                            c.bucket,
                            c.endpoint,
                            c.region,
                            c.storage_class,
                            c.created_at,
                        ]);
                    }
                    table.write(out)?;
                }
            }
            CredentialsCommand::Delete { name } => {
                client
                    .delete(DeleteCredentialRequest { name: name.clone() })
                    .await
                    .map_err(|status| failed(server, status))?;
                writeln!(out, "Credentials deleted successfully: {name}")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
