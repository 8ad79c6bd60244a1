//! ClusterPairs from the Kubernetes side: generating one from a destination kubeconfig (what
//! `storkctl generate clusterpair` does), turning a pair's `spec.config` back into a client, and
//! checking that the destination's API answers with those credentials.

use std::collections::BTreeMap;
use std::path::Path;

use avocet_types::ClusterPair;
use avocet_types::clusterpair::KubeConfig;
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Map, Value, json};

/// Why a pair cannot be generated or used.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The kubeconfig has no usable context.
    #[error("{0}")]
    Config(String),
    /// The destination did not answer.
    #[error("{0}")]
    Unreachable(String),
}

/// Reads a credential file a kubeconfig names, relative to the kubeconfig's directory, as the
/// base64 a `*-data` field holds.
fn inline(path: &str, base: Option<&Path>, what: &str) -> Result<String, PairingError> {
    let full = match base {
        Some(dir) if Path::new(path).is_relative() => dir.join(path),
        _ => Path::new(path).to_path_buf(),
    };
    let bytes = std::fs::read(&full).map_err(|e| {
        PairingError::Config(format!("cannot read the {what} file {}: {e}", full.display()))
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Replaces `file_key` (a path) with `data_key` (its contents, base64).
fn inline_file(
    object: &mut Value,
    file_key: &str,
    data_key: &str,
    what: &str,
    base: Option<&Path>,
) -> Result<(), PairingError> {
    if let Some(path) = object.get(file_key).and_then(Value::as_str).map(str::to_owned) {
        object[data_key] = json!(inline(&path, base, what)?);
        if let Some(m) = object.as_object_mut() {
            m.remove(file_key);
        }
    }
    Ok(())
}

/// Builds a ClusterPair from a destination kubeconfig: pruned to one context (`context`, or
/// the current one), with certificate, key and token files inlined as data, and `options`
/// (storkctl's placeholder key `insert_storage_options_here` when none are given).
pub fn generate(
    kubeconfig: &Kubeconfig,
    kubeconfig_dir: Option<&Path>,
    context: Option<&str>,
    name: &str,
    namespace: &str,
    options: BTreeMap<String, String>,
) -> Result<ClusterPair, PairingError> {
    let context_name = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            PairingError::Config("the kubeconfig has no current-context; give --context".to_owned())
        })?;
    let listed =
        serde_json::to_value(kubeconfig).map_err(|e| PairingError::Config(e.to_string()))?;
    let find = |section: &str, wanted: &str| -> Option<Value> {
        listed[section].as_array()?.iter().find(|e| e["name"] == wanted).cloned()
    };
    let named_context = find("contexts", &context_name).ok_or_else(|| {
        PairingError::Config(format!("the kubeconfig has no context {context_name:?}"))
    })?;
    let ctx = named_context["context"].clone();
    let cluster_name = ctx["cluster"].as_str().unwrap_or_default().to_owned();
    let user_name = ctx["user"].as_str().unwrap_or_default().to_owned();
    let mut cluster = find("clusters", &cluster_name)
        .map(|c| c["cluster"].clone())
        .ok_or_else(|| PairingError::Config(format!("context {context_name:?} names cluster {cluster_name:?}, which the kubeconfig lacks")))?;
    let mut user =
        find("users", &user_name).map(|u| u["user"].clone()).unwrap_or_else(|| json!({}));
    inline_file(
        &mut cluster,
        "certificate-authority",
        "certificate-authority-data",
        "certificate authority",
        kubeconfig_dir,
    )?;
    inline_file(
        &mut user,
        "client-certificate",
        "client-certificate-data",
        "client certificate",
        kubeconfig_dir,
    )?;
    inline_file(&mut user, "client-key", "client-key-data", "client key", kubeconfig_dir)?;
    if let Some(path) = user.get("tokenFile").and_then(Value::as_str).map(str::to_owned) {
        let full = kubeconfig_dir.map_or_else(|| Path::new(&path).to_path_buf(), |d| d.join(&path));
        let token = std::fs::read_to_string(&full).map_err(|e| {
            PairingError::Config(format!("cannot read the token file {}: {e}", full.display()))
        })?;
        user["token"] = json!(token.trim());
        if let Some(m) = user.as_object_mut() {
            m.remove("tokenFile");
        }
    }
    let config = json!({
        "clusters": { cluster_name.clone(): cluster },
        "users": { user_name.clone(): user },
        "contexts": { context_name.clone(): ctx },
        "current-context": context_name,
        "preferences": {},
    });
    let options: Map<String, Value> = if options.is_empty() {
        Map::from_iter([("insert_storage_options_here".to_owned(), json!(""))])
    } else {
        options.into_iter().map(|(k, v)| (k, json!(v))).collect()
    };
    let pair = json!({
        "apiVersion": avocet_types::meta::API_GROUP_VERSION,
        "kind": "ClusterPair",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "config": config, "options": options },
    });
    serde_json::from_value(pair)
        .map_err(|e| PairingError::Config(format!("the generated ClusterPair does not parse: {e}")))
}

/// The pair's `spec.config` as a kube kubeconfig (client-go's map form to the file's list form).
pub fn kubeconfig_of(config: &KubeConfig) -> Result<Kubeconfig, PairingError> {
    let mapped = serde_json::to_value(config).map_err(|e| PairingError::Config(e.to_string()))?;
    let listed = |section: &str, inner: &str| -> Vec<Value> {
        mapped[section]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, body)| {
                let mut body = body.clone();
                if let Some(m) = body.as_object_mut() {
                    m.remove("LocationOfOrigin");
                }
                json!({ "name": name, inner: body })
            })
            .collect()
    };
    let file = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": listed("clusters", "cluster"),
        "users": listed("users", "user"),
        "contexts": listed("contexts", "context"),
        "current-context": mapped["current-context"],
    });
    serde_json::from_value(file)
        .map_err(|e| PairingError::Config(format!("spec.config is not a usable kubeconfig: {e}")))
}

/// A client for the pair's destination.
pub async fn client_for(pair: &ClusterPair) -> Result<kube::Client, PairingError> {
    let kubeconfig = kubeconfig_of(&pair.spec.config)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| PairingError::Config(format!("spec.config: {e}")))?;
    kube::Client::try_from(config).map_err(|e| PairingError::Config(format!("spec.config: {e}")))
}

/// Asks the destination's API server for its version with the pair's credentials; the version
/// on success, the reason on failure.
pub async fn check_scheduler(pair: &ClusterPair) -> Result<String, PairingError> {
    let client = client_for(pair).await?;
    let version = client.apiserver_version().await.map_err(|e| {
        PairingError::Unreachable(format!(
            "the destination API server does not answer with the pair's credentials: {e}"
        ))
    })?;
    Ok(version.git_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: dest
  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: Q0E=}
- name: other
  cluster: {server: "https://10.0.0.2:6443"}
users:
- name: admin
  user: {token: s3cret}
- name: someone
  user: {token: nope}
contexts:
- name: dest-admin
  context: {cluster: dest, user: admin}
- name: other-someone
  context: {cluster: other, user: someone}
current-context: dest-admin
"#;

    #[test]
    fn generate_prunes_to_the_current_context_and_round_trips() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let pair =
            generate(&kubeconfig, None, None, "remote", "mysql", BTreeMap::new()).expect("pair");
        let config = &pair.spec.config;
        assert_eq!(config.current_context, "dest-admin");
        assert_eq!(config.clusters.keys().collect::<Vec<_>>(), ["dest"]);
        assert_eq!(config.users["admin"].token, "s3cret");
        assert!(pair.spec.options.contains_key("insert_storage_options_here"));
        assert_eq!(pair.api_version, "stork.libopenstorage.org/v1alpha1");
        let back = kubeconfig_of(config).expect("usable");
        assert_eq!(back.current_context.as_deref(), Some("dest-admin"));
        assert_eq!(
            back.clusters[0].cluster.as_ref().and_then(|c| c.server.as_deref()),
            Some("https://10.0.0.1:6443")
        );
    }

    #[test]
    fn a_missing_context_or_credential_file_is_named() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let err = generate(&kubeconfig, None, Some("absent"), "p", "ns", BTreeMap::new())
            .expect_err("no such context");
        assert!(err.to_string().contains("\"absent\""), "{err}");
        let with_file = KUBECONFIG.replace(
            "certificate-authority-data: Q0E=",
            "certificate-authority: /nonexistent/ca.crt",
        );
        let err = generate(
            &Kubeconfig::from_yaml(&with_file).expect("kubeconfig"),
            None,
            None,
            "p",
            "ns",
            BTreeMap::new(),
        )
        .expect_err("unreadable file");
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
    }
}
