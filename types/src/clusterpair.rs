//! ClusterPair: the destination's Kubernetes credentials (a kubeconfig) and storage options.
//!
//! `spec.config` is client-go's in-memory `clientcmd/api.Config`, which is what Stork embeds: its
//! `clusters`, `users` and `contexts` are maps keyed by name (not the lists of a kubeconfig
//! file), `LocationOfOrigin` appears because client-go never tagged it, and impersonation is
//! spelled `act-as` (a kubeconfig file says `as`).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::validate::{FieldPath, ValidationErrors, check_object_name};

/// Holds a pairing with one destination cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPair {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `ClusterPair`.
    #[serde(default = "cluster_pair_kind")]
    pub kind: String,
    /// Holds the object's name, namespace and labels.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Holds the destination's credentials and storage options.
    #[serde(default)]
    pub spec: ClusterPairSpec,
    /// Reports whether the destination's API and storage are reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterPairStatus>,
}

fn cluster_pair_kind() -> String {
    Kind::ClusterPair.as_str().to_owned()
}

stork_resource!(ClusterPair, Kind::ClusterPair, k8s_openapi::NamespaceResourceScope);

/// Holds the destination's credentials and options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPairSpec {
    /// Holds the destination's kubeconfig, pruned to one context with credentials inlined.
    #[serde(default)]
    pub config: KubeConfig,
    /// Carries storage options: `ip`, `port` (default 9001), `token`, `mode`, `backuplocation`.
    /// Unquoted numbers and booleans are read as strings.
    #[serde(default, deserialize_with = "string_map")]
    #[schemars(schema_with = "crate::schema::lenient_string_map")]
    pub options: BTreeMap<String, String>,
    /// Holds platform options (Rancher project mappings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_options: Option<PlatformOptions>,
}

/// Holds platform-specific pairing options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformOptions {
    /// Holds Rancher options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rancher: Option<RancherOptions>,
}

/// Holds Rancher options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RancherOptions {
    /// Maps source project ids to destination project ids.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub project_mappings: BTreeMap<String, String>,
}

/// Reads a map whose values may be written as unquoted YAML numbers or booleans.
fn string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, serde_json::Value>>::deserialize(deserializer)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                serde_json::Value::Null => String::new(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "option {key:?} must be a string, got {other}"
                    )));
                }
            };
            Ok((key, text))
        })
        .collect()
}

/// Holds client-go's `clientcmd/api.Config` as Stork embeds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeConfig {
    /// Carries the legacy `kind` field of a kubeconfig.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Carries the legacy `apiVersion` field of a kubeconfig.
    #[serde(default, rename = "apiVersion", skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Holds kubectl preferences (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<KubePreferences>,
    /// Maps cluster names to API endpoints.
    #[serde(default)]
    pub clusters: BTreeMap<String, KubeCluster>,
    /// Maps user names to credentials.
    #[serde(default)]
    pub users: BTreeMap<String, KubeAuthInfo>,
    /// Maps context names to (cluster, user, namespace) triples.
    #[serde(default)]
    pub contexts: BTreeMap<String, KubeContext>,
    /// Names the context used to reach the destination.
    #[serde(default, rename = "current-context")]
    pub current_context: String,
    /// Carries extensions (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub extensions: Option<serde_json::Value>,
}

/// Holds kubectl preferences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubePreferences {
    /// Says where the entry came from (client-go round-trip field).
    #[serde(default, rename = "LocationOfOrigin", skip_serializing_if = "String::is_empty")]
    pub location_of_origin: String,
    /// Turns colored output on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub colors: bool,
    /// Carries extensions (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub extensions: Option<serde_json::Value>,
}

/// Holds one API endpoint of a kubeconfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeCluster {
    /// Says where the entry came from (client-go round-trip field).
    #[serde(default, rename = "LocationOfOrigin", skip_serializing_if = "String::is_empty")]
    pub location_of_origin: String,
    /// Gives the API server URL, e.g. `https://192.168.56.74:6443`.
    #[serde(default)]
    pub server: String,
    /// Names the TLS server name to verify.
    #[serde(default, rename = "tls-server-name", skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    /// Skips TLS verification (insecure).
    #[serde(
        default,
        rename = "insecure-skip-tls-verify",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    /// Names a CA file (storkctl inlines it as data).
    #[serde(default, rename = "certificate-authority", skip_serializing_if = "String::is_empty")]
    pub certificate_authority: String,
    /// Holds the CA bundle, base64.
    #[serde(
        default,
        rename = "certificate-authority-data",
        skip_serializing_if = "String::is_empty"
    )]
    pub certificate_authority_data: String,
    /// Gives a proxy URL.
    #[serde(default, rename = "proxy-url", skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    /// Turns response compression off.
    #[serde(default, rename = "disable-compression", skip_serializing_if = "std::ops::Not::not")]
    pub disable_compression: bool,
    /// Carries extensions (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub extensions: Option<serde_json::Value>,
}

/// Holds one user's credentials in a kubeconfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeAuthInfo {
    /// Says where the entry came from (client-go round-trip field).
    #[serde(default, rename = "LocationOfOrigin", skip_serializing_if = "String::is_empty")]
    pub location_of_origin: String,
    /// Names a client certificate file.
    #[serde(default, rename = "client-certificate", skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// Holds the client certificate, base64.
    #[serde(default, rename = "client-certificate-data", skip_serializing_if = "String::is_empty")]
    pub client_certificate_data: String,
    /// Names a client key file.
    #[serde(default, rename = "client-key", skip_serializing_if = "String::is_empty")]
    pub client_key: String,
    /// Holds the client key, base64.
    #[serde(default, rename = "client-key-data", skip_serializing_if = "String::is_empty")]
    pub client_key_data: String,
    /// Holds a bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Names a bearer token file.
    #[serde(default, rename = "tokenFile", skip_serializing_if = "String::is_empty")]
    pub token_file: String,
    /// Names a user to impersonate.
    #[serde(default, rename = "act-as", skip_serializing_if = "String::is_empty")]
    pub impersonate: String,
    /// Names a uid to impersonate.
    #[serde(default, rename = "act-as-uid", skip_serializing_if = "String::is_empty")]
    pub impersonate_uid: String,
    /// Lists groups to impersonate.
    #[serde(default, rename = "act-as-groups", skip_serializing_if = "Vec::is_empty")]
    pub impersonate_groups: Vec<String>,
    /// Holds extra impersonation fields.
    #[serde(default, rename = "act-as-user-extra", skip_serializing_if = "BTreeMap::is_empty")]
    pub impersonate_user_extra: BTreeMap<String, Vec<String>>,
    /// Holds a basic-auth user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Holds a basic-auth password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// Holds an auth-provider plugin configuration.
    #[serde(default, rename = "auth-provider", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub auth_provider: Option<serde_json::Value>,
    /// Holds an exec credential plugin configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub exec: Option<serde_json::Value>,
    /// Carries extensions (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub extensions: Option<serde_json::Value>,
}

/// Holds one context of a kubeconfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeContext {
    /// Says where the entry came from (client-go round-trip field).
    #[serde(default, rename = "LocationOfOrigin", skip_serializing_if = "String::is_empty")]
    pub location_of_origin: String,
    /// Names the cluster entry.
    #[serde(default)]
    pub cluster: String,
    /// Names the user entry.
    #[serde(default)]
    pub user: String,
    /// Names the default namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Carries extensions (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub extensions: Option<serde_json::Value>,
}

/// Names a pairing state, as Stork's `ClusterPairStatusType` strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ClusterPairStatusType {
    /// Not checked yet (the empty string).
    #[default]
    #[serde(rename = "")]
    Initial,
    /// Being checked.
    Pending,
    /// Reachable with the given credentials.
    Ready,
    /// Not reachable; an event says why.
    Error,
    /// Partly reachable.
    Degraded,
    /// Being deleted.
    Deleting,
    /// No storage options were given, so storage is not paired.
    NotProvided,
}

impl ClusterPairStatusType {
    /// Returns the Stork string (`Ready`; empty for Initial).
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPairStatusType::Initial => "",
            ClusterPairStatusType::Pending => "Pending",
            ClusterPairStatusType::Ready => "Ready",
            ClusterPairStatusType::Error => "Error",
            ClusterPairStatusType::Degraded => "Degraded",
            ClusterPairStatusType::Deleting => "Deleting",
            ClusterPairStatusType::NotProvided => "NotProvided",
        }
    }
}

impl fmt::Display for ClusterPairStatusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reports the pairing state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPairStatus {
    /// Says whether the destination's Kubernetes API answers with the given credentials.
    #[serde(default)]
    pub scheduler_status: ClusterPairStatusType,
    /// Says whether the destination's Avocet answers at `options.ip:port` with `options.token`.
    #[serde(default)]
    pub storage_status: ClusterPairStatusType,
    /// Identifies the paired remote storage.
    #[serde(default, rename = "remoteStorageId")]
    pub remote_storage_id: String,
    /// Says where the pair's volume data goes (an Avocet extension): the store of credentials
    /// `clusterPair_<remoteStorageId>`, or the internal store when there are none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object_store: String,
}

/// Names the transfer mode in `options.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ClusterPairMode {
    /// Every seventh run of a volume is a full copy.
    #[default]
    Default,
    /// Every run after the first is incremental.
    DisasterRecovery,
    /// A one-off migration.
    OneTimeMigration,
}

impl ClusterPairMode {
    /// Parses the `options.mode` string.
    pub fn parse(text: &str) -> Option<ClusterPairMode> {
        match text {
            "Default" => Some(ClusterPairMode::Default),
            "DisasterRecovery" => Some(ClusterPairMode::DisasterRecovery),
            "OneTimeMigration" => Some(ClusterPairMode::OneTimeMigration),
            _ => None,
        }
    }
}

/// Lists the `options` keys Avocet reads. `cadata` is Avocet's own: the base64 PEM certificate
/// authority of a destination Avocet that serves TLS (Stork's PX API has no such key).
pub const KNOWN_OPTIONS: [&str; 6] = ["ip", "port", "token", "mode", "backuplocation", "cadata"];

/// Gives the destination Avocet port when `options.port` is not set.
pub const DEFAULT_STORAGE_PORT: u16 = 9001;

impl ClusterPairSpec {
    /// Returns the storage mode; unset means Default.
    pub fn mode(&self) -> ClusterPairMode {
        self.options.get("mode").and_then(|text| ClusterPairMode::parse(text)).unwrap_or_default()
    }

    /// Checks the spec; returns warnings for options Avocet ignores.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) -> Vec<String> {
        let mut warnings = Vec::new();
        self.config.check(errors, &path.field("config"));
        let options = path.field("options");
        for (key, value) in &self.options {
            let entry = options.key(key);
            match key.as_str() {
                "port" => {
                    if !value.parse::<u16>().is_ok_and(|port| port > 0) {
                        errors.push(&entry, format!("{value:?} is not a port number (1 to 65535)"));
                    }
                }
                "mode" => {
                    if ClusterPairMode::parse(value).is_none() {
                        errors.push(
                            &entry,
                            format!(
                                "{value:?} is not a mode (Default, DisasterRecovery or OneTimeMigration)"
                            ),
                        );
                    }
                }
                "token" => {
                    if value.is_empty() {
                        errors.push(
                            &entry,
                            "is empty; give the destination's token or remove the key",
                        );
                    }
                }
                "backuplocation" => check_object_name(errors, &entry, value),
                "cadata" => {
                    use base64::Engine as _;
                    let pem = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok();
                    let is_pem = pem.as_deref().is_some_and(|pem| {
                        String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
                    });
                    if !is_pem {
                        let shown: String = value.chars().take(24).collect();
                        errors.push(
                            &entry,
                            format!(
                                "\"{shown}…\" is not a base64 PEM certificate (base64 -w0 ca.crt)"
                            ),
                        );
                    }
                }
                "ip" => {
                    if value.is_empty() || value.contains(char::is_whitespace) {
                        errors.push(&entry, format!("{value:?} is not a host name or address"));
                    }
                }
                _ => warnings.push(format!(
                    "{entry}: unknown option is ignored (known: {})",
                    KNOWN_OPTIONS.join(", ")
                )),
            }
        }
        let has_token = self.options.contains_key("token");
        if !has_token && (self.options.contains_key("ip") || self.options.contains_key("port")) {
            warnings.push(format!(
                "{options}: ip or port is set without token, so volumes will not be paired"
            ));
        }
        warnings
    }
}

impl KubeConfig {
    /// Checks that the current context exists and names a cluster and user that exist.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        if self.clusters.is_empty() && self.contexts.is_empty() && self.users.is_empty() {
            errors.push(
                path,
                "is empty; it must hold the destination's kubeconfig (clusters, users, contexts \
                 and current-context), as `storkctl generate clusterpair` prints it",
            );
            return;
        }
        for (name, cluster) in &self.clusters {
            let entry = path.field("clusters").key(name);
            let server = &cluster.server;
            let scheme_ok = server.starts_with("https://") || server.starts_with("http://");
            let host = server.split_once("://").map_or("", |(_, rest)| rest);
            if !scheme_ok || host.is_empty() || server.contains(char::is_whitespace) {
                errors.push(
                    &entry.field("server"),
                    format!("{server:?} is not an API server URL like https://10.0.0.1:6443"),
                );
            }
            check_base64(
                errors,
                &entry.field("certificate-authority-data"),
                &cluster.certificate_authority_data,
            );
        }
        for (name, user) in &self.users {
            let entry = path.field("users").key(name);
            check_base64(
                errors,
                &entry.field("client-certificate-data"),
                &user.client_certificate_data,
            );
            check_base64(errors, &entry.field("client-key-data"), &user.client_key_data);
        }
        let current = path.field("current-context");
        if self.current_context.is_empty() {
            errors
                .push(&current, "is required: it names the context used to reach the destination");
        } else if let Some(context) = self.contexts.get(&self.current_context) {
            let entry = path.field("contexts").key(&self.current_context);
            if !self.clusters.contains_key(&context.cluster) {
                errors.push(
                    &entry.field("cluster"),
                    format!("{:?} is not a cluster of {}", context.cluster, path.field("clusters")),
                );
            }
            if !context.user.is_empty() && !self.users.contains_key(&context.user) {
                errors.push(
                    &entry.field("user"),
                    format!("{:?} is not a user of {}", context.user, path.field("users")),
                );
            }
        } else {
            errors.push(
                &current,
                format!(
                    "{:?} is not a context of {}",
                    self.current_context,
                    path.field("contexts")
                ),
            );
        }
    }
}

fn check_base64(errors: &mut ValidationErrors, path: &FieldPath, data: &str) {
    if !data.is_empty() && base64::engine::general_purpose::STANDARD.decode(data).is_err() {
        let shown: String = data.chars().take(24).collect();
        let ellipsis = if data.chars().count() > 24 { "…" } else { "" };
        errors.push(path, format!("\"{shown}{ellipsis}\" is not base64 data"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml_json: serde_json::Value) -> ClusterPairSpec {
        serde_json::from_value(yaml_json).unwrap()
    }

    fn valid_config() -> serde_json::Value {
        serde_json::json!({
            "clusters": {"kubernetes": {"server": "https://192.168.56.74:6443",
                                        "certificate-authority-data": "Q0E="}},
            "contexts": {"admin@kubernetes": {"cluster": "kubernetes", "user": "admin"}},
            "users": {"admin": {"token": "t"}},
            "current-context": "admin@kubernetes"
        })
    }

    #[test]
    fn unquoted_port_is_read_as_a_string() {
        let spec = spec(serde_json::json!({
            "config": valid_config(),
            "options": {"ip": "10.0.0.2", "port": 9001, "token": "abc", "mode": "DisasterRecovery"}
        }));
        assert_eq!(spec.options["port"], "9001");
        assert_eq!(spec.mode(), ClusterPairMode::DisasterRecovery);
        let mut errors = ValidationErrors::default();
        let warnings = spec.check(&mut errors, &FieldPath::root().field("spec"));
        assert!(errors.is_empty(), "{errors}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn cadata_must_be_a_base64_pem_certificate() {
        use base64::Engine as _;
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let good = base64::engine::general_purpose::STANDARD.encode(pem);
        for (value, ok) in [(good.as_str(), true), ("not base64!", false), ("aGVsbG8=", false)] {
            let spec = spec(serde_json::json!({"config": valid_config(),
                "options": {"ip": "10.0.0.2", "token": "abc", "cadata": value}}));
            let mut errors = ValidationErrors::default();
            let warnings = spec.check(&mut errors, &FieldPath::root().field("spec"));
            assert_eq!(errors.is_empty(), ok, "{value}: {errors}");
            assert!(warnings.is_empty(), "{warnings:?}");
            if !ok {
                assert!(errors.to_string().contains("spec.options.cadata"), "{errors}");
            }
        }
    }

    #[test]
    fn reports_bad_options_and_a_dangling_context() {
        let mut config = valid_config();
        config["current-context"] = "nope".into();
        config["clusters"]["kubernetes"]["certificate-authority-data"] = "not base64!".into();
        let spec = spec(serde_json::json!({
            "config": config,
            "options": {"port": "90o1", "mode": "Async", "insert_storage_options_here": ""}
        }));
        let mut errors = ValidationErrors::default();
        let warnings = spec.check(&mut errors, &FieldPath::root().field("spec"));
        let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "spec.config.clusters.kubernetes.certificate-authority-data: \"not base64!\" is not base64 data",
                "spec.config.current-context: \"nope\" is not a context of spec.config.contexts",
                "spec.options.mode: \"Async\" is not a mode (Default, DisasterRecovery or OneTimeMigration)",
                "spec.options.port: \"90o1\" is not a port number (1 to 65535)",
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
