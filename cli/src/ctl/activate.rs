//! `avocetctl activate migrations` and `deactivate migrations`: run against the destination
//! cluster (its kubeconfig), they start or stop the standby's applications (reference §4.7).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use avocet_types::registration::ApplicationResource;
use avocet_workers::resources::activate::{Direction, switch};
use clap::Args;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;

/// Says where and on which cluster to switch a standby.
#[derive(Debug, Args)]
pub(super) struct ActivateArgs {
    /// Names what to switch: migrations (or migration).
    kind: String,
    /// Switches the standby in namespace NS (default: default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespace: Option<String>,
    /// Switches every namespace.
    #[arg(short = 'a', long = "all-namespaces", visible_short_alias = 'A')]
    all_namespaces: bool,
    /// Reads the destination cluster's credentials from FILE (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Uses this context of the kubeconfig instead of its current one.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

async fn client(args: &ActivateArgs) -> anyhow::Result<kube::Client> {
    let options =
        KubeConfigOptions { context: args.context.clone(), ..KubeConfigOptions::default() };
    let config = match &args.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// The ApplicationRegistrations the cluster holds, if it serves Stork's CRDs.
async fn registrations(client: &kube::Client) -> Vec<ApplicationResource> {
    let resource = ApiResource {
        group: avocet_types::API_GROUP.to_owned(),
        version: avocet_types::API_VERSION.to_owned(),
        api_version: avocet_types::meta::API_GROUP_VERSION.to_owned(),
        kind: "ApplicationRegistration".to_owned(),
        plural: "applicationregistrations".to_owned(),
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
    list.items
        .into_iter()
        .filter_map(|o| {
            serde_json::from_value::<avocet_types::ApplicationRegistration>(
                serde_json::to_value(o).ok()?,
            )
            .ok()
        })
        .flat_map(|r| r.resources)
        .collect()
}

pub(super) fn run(
    args: &ActivateArgs,
    direction: Direction,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if !matches!(args.kind.to_ascii_lowercase().as_str(), "migrations" | "migration") {
        anyhow::bail!("{:?}: only migrations can be activated or deactivated", args.kind);
    }
    if args.all_namespaces && args.namespace.is_some() {
        anyhow::bail!(
            "--namespace {:?} and --all-namespaces cannot be used together",
            args.namespace.as_deref().unwrap_or_default()
        );
    }
    let report = super::catalog::runtime()?.block_on(async {
        let client = client(args).await?;
        let registrations = registrations(&client).await;
        let namespaces = [args.namespace.clone().unwrap_or_else(|| "default".to_owned())];
        let scope = if args.all_namespaces { None } else { Some(&namespaces[..]) };
        anyhow::Ok(switch(&client, scope, &registrations, direction).await?)
    })?;
    for line in &report.changed {
        writeln!(out, "{line}")?;
    }
    let verb = if direction == Direction::Activate { "activate" } else { "deactivate" };
    if report.changed.is_empty() && report.failed.is_empty() {
        writeln!(out, "Nothing to {verb}: no migrated application needs a change")?;
    }
    if report.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // Everything else was switched; what failed is named, and the exit code says so.
    let mut err = std::io::stderr().lock();
    for failure in &report.failed {
        writeln!(err, "error: cannot {verb} {failure}")?;
    }
    Ok(ExitCode::FAILURE)
}
