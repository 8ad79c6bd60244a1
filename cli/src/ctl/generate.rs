//! `avocetctl generate clusterpair NAME`: run against the destination cluster, prints the
//! ClusterPair to create on the source, its kubeconfig pruned to one context with every
//! credential inlined (what `storkctl generate clusterpair` prints).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kube::config::Kubeconfig;

/// Says what `generate clusterpair` prints.
#[derive(Debug, Args)]
pub(super) struct GenerateArgs {
    /// Names what to generate: clusterpair.
    kind: String,
    /// Names the ClusterPair.
    name: String,
    /// Puts it in namespace NS (default: default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespace: Option<String>,
    /// Reads the destination's kubeconfig from FILE (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Uses this context instead of the kubeconfig's current one.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Sets storage options: ip, port, token, mode, backuplocation.
    #[arg(short = 's', long = "storageoptions", value_name = "K=V,...")]
    storage_options: Option<String>,
}

fn parse_options(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    for item in text.split(',').filter(|i| !i.trim().is_empty()) {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--storageoptions: {item:?} is not key=value"))?;
        options.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(options)
}

pub(super) fn run(args: &GenerateArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !matches!(args.kind.to_ascii_lowercase().as_str(), "clusterpair" | "clusterpairs" | "cp") {
        anyhow::bail!("{:?}: only clusterpair can be generated", args.kind);
    }
    let options =
        args.storage_options.as_deref().map(parse_options).transpose()?.unwrap_or_default();
    let (kubeconfig, dir) = match &args.kubeconfig {
        Some(path) => (
            Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?,
            path.parent().map(std::path::Path::to_path_buf),
        ),
        None => {
            let from_env = std::env::var_os("KUBECONFIG").map(PathBuf::from);
            let dir = from_env
                .as_deref()
                .and_then(std::path::Path::parent)
                .map(std::path::Path::to_path_buf);
            (
                Kubeconfig::read()
                    .map_err(|e| anyhow::anyhow!("cannot read the kubeconfig: {e}"))?,
                dir,
            )
        }
    };
    let namespace = args.namespace.as_deref().unwrap_or("default");
    let pair = avocet_workers::pairing::generate(
        &kubeconfig,
        dir.as_deref(),
        args.context.as_deref(),
        &args.name,
        namespace,
        options,
    )?;
    write!(out, "{}", serde_saphyr::to_string(&pair)?)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_options_parse_and_a_bad_item_is_named() {
        let options = parse_options("ip=10.0.0.5, port=9001,token=abc").expect("valid");
        assert_eq!(options["ip"], "10.0.0.5");
        assert_eq!(options["port"], "9001");
        let err = parse_options("ip=1,oops").expect_err("no =");
        assert!(err.to_string().contains("\"oops\""), "{err}");
    }
}
