//! Migration: one run that copies namespaces' objects and volumes to a ClusterPair's destination.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::time::Time;
use crate::validate::{
    FieldPath, ValidationErrors, check_label_map, check_namespace_name, check_object_name,
};

/// Holds one migration run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `Migration`.
    #[serde(default = "migration_kind")]
    pub kind: String,
    /// Holds the object's name, namespace, labels and annotations.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Says what to migrate and where.
    #[serde(default)]
    pub spec: MigrationSpec,
    /// Reports the run's stage, result and per-object outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MigrationStatus>,
}

fn migration_kind() -> String {
    Kind::Migration.as_str().to_owned()
}

stork_resource!(Migration, Kind::Migration, k8s_openapi::NamespaceResourceScope);

/// Says what a migration copies and where; MigrationSchedule templates use the same shape.
///
/// Pointer-bools keep Stork's defaults: read them through the accessor methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// Names the ClusterPair (in the migration's namespace) to migrate to.
    #[serde(default)]
    pub cluster_pair: String,
    /// Names a ClusterPair in the admin namespace used for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub admin_cluster_pair: String,
    /// Lists the namespaces to migrate.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Selects more namespaces by label; each pair is listed separately and the results unioned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_selectors: BTreeMap<String, String>,
    /// Copies Kubernetes objects (default true); false copies only PVs and PVCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_resources: Option<bool>,
    /// Copies volume data (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_volumes: Option<bool>,
    /// Starts applications on the destination (default false: scaled to 0 until activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_applications: Option<bool>,
    /// Deletes destination objects Avocet migrated earlier that are gone from the source
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_deleted_resources: Option<bool>,
    /// Keeps Services' cluster IPs instead of clearing them (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_service_update: Option<bool>,
    /// Also copies NetworkPolicies that name CIDRs (default false).
    #[serde(
        default,
        rename = "includeNetworkPolicyWithCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub include_network_policy_with_cidr: Option<bool>,
    /// Selects objects by label; all pairs must match (AND).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selectors: BTreeMap<String, String>,
    /// Excludes objects carrying any of these labels (OR).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_selectors: BTreeMap<String, String>,
    /// Excludes objects by label: the older Stork name of `excludeSelectors`, read the same way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_resources: BTreeMap<String, String>,
    /// Names a Rule to run before the migration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pre_exec_rule: String,
    /// Names a Rule to run after the migration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub post_exec_rule: String,
    /// Lists optional kinds to collect; `job` (or `jobs`) is the one Stork knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_optional_resource_types: Vec<String>,
    /// Skips namespaces that no longer exist instead of failing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_deleted_namespaces: Option<bool>,
    /// Names at most one ResourceTransformation to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform_specs: Vec<String>,
    /// Also collects objects whose owner is collected (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_owner_references_check: Option<bool>,
    /// Lists kinds to skip (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_resource_types: Vec<String>,
}

impl MigrationSpec {
    /// Returns `includeResources`, default true.
    pub fn include_resources(&self) -> bool {
        self.include_resources.unwrap_or(true)
    }

    /// Returns `includeVolumes`, default true.
    pub fn include_volumes(&self) -> bool {
        self.include_volumes.unwrap_or(true)
    }

    /// Returns `startApplications`, default false.
    pub fn start_applications(&self) -> bool {
        self.start_applications.unwrap_or(false)
    }

    /// Returns `purgeDeletedResources`, default false.
    pub fn purge_deleted_resources(&self) -> bool {
        self.purge_deleted_resources.unwrap_or(false)
    }

    /// Returns `skipServiceUpdate`, default false.
    pub fn skip_service_update(&self) -> bool {
        self.skip_service_update.unwrap_or(false)
    }

    /// Returns `includeNetworkPolicyWithCIDR`, default false.
    pub fn include_network_policy_with_cidr(&self) -> bool {
        self.include_network_policy_with_cidr.unwrap_or(false)
    }

    /// Returns `skipDeletedNamespaces`, default true.
    pub fn skip_deleted_namespaces(&self) -> bool {
        self.skip_deleted_namespaces.unwrap_or(true)
    }

    /// Returns `ignoreOwnerReferencesCheck`, default false.
    pub fn ignore_owner_references_check(&self) -> bool {
        self.ignore_owner_references_check.unwrap_or(false)
    }

    /// Returns the exclusion labels: `excludeSelectors` merged with the older `excludeResources`.
    pub fn exclusion_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.exclude_resources.clone();
        labels.extend(self.exclude_selectors.clone());
        labels
    }

    /// Returns whether batch Jobs are collected (`includeOptionalResourceTypes` has job/jobs).
    pub fn includes_jobs(&self) -> bool {
        self.include_optional_resource_types
            .iter()
            .any(|kind| kind.eq_ignore_ascii_case("job") || kind.eq_ignore_ascii_case("jobs"))
    }

    /// Checks every field; the path is `spec` or `spec.template.spec`.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        check_object_name(errors, &path.field("clusterPair"), &self.cluster_pair);
        if !self.admin_cluster_pair.is_empty() {
            check_object_name(errors, &path.field("adminClusterPair"), &self.admin_cluster_pair);
        }
        for (i, namespace) in self.namespaces.iter().enumerate() {
            check_namespace_name(errors, &path.field("namespaces").index(i), namespace);
        }
        if self.namespaces.is_empty() && self.namespace_selectors.is_empty() {
            errors.push(
                &path.field("namespaces"),
                "is empty; list at least one namespace or set namespaceSelectors",
            );
        }
        check_label_map(errors, &path.field("namespaceSelectors"), &self.namespace_selectors);
        check_label_map(errors, &path.field("selectors"), &self.selectors);
        check_label_map(errors, &path.field("excludeSelectors"), &self.exclude_selectors);
        check_label_map(errors, &path.field("excludeResources"), &self.exclude_resources);
        if !self.pre_exec_rule.is_empty() {
            check_object_name(errors, &path.field("preExecRule"), &self.pre_exec_rule);
        }
        if !self.post_exec_rule.is_empty() {
            check_object_name(errors, &path.field("postExecRule"), &self.post_exec_rule);
        }
        for (i, kind) in self.include_optional_resource_types.iter().enumerate() {
            if !kind.eq_ignore_ascii_case("job") && !kind.eq_ignore_ascii_case("jobs") {
                errors.push(
                    &path.field("includeOptionalResourceTypes").index(i),
                    format!("{kind:?} is not an optional resource type (the one known is job)"),
                );
            }
        }
        if self.transform_specs.len() > 1 {
            errors.push(
                &path.field("transformSpecs"),
                format!(
                    "names {} ResourceTransformations; at most 1 is allowed",
                    self.transform_specs.len()
                ),
            );
        }
        for (i, name) in self.transform_specs.iter().enumerate() {
            check_object_name(errors, &path.field("transformSpecs").index(i), name);
        }
        for (i, kind) in self.exclude_resource_types.iter().enumerate() {
            if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
                errors.push(
                    &path.field("excludeResourceTypes").index(i),
                    format!("{kind:?} is not a kind name like Secret or ConfigMap"),
                );
            }
        }
    }
}

/// Names a migration stage, as Stork's `MigrationStageType` strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MigrationStage {
    /// Created, not started (the empty string).
    #[default]
    #[serde(rename = "")]
    Initial,
    /// Running the pre-exec rule.
    PreExecRule,
    /// Running the post-exec rule.
    PostExecRule,
    /// Copying volume data.
    Volumes,
    /// Copying Kubernetes objects.
    Applications,
    /// Done.
    Final,
}

impl MigrationStage {
    /// Returns the Stork string (`Volumes`; empty for Initial).
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStage::Initial => "",
            MigrationStage::PreExecRule => "PreExecRule",
            MigrationStage::PostExecRule => "PostExecRule",
            MigrationStage::Volumes => "Volumes",
            MigrationStage::Applications => "Applications",
            MigrationStage::Final => "Final",
        }
    }
}

impl fmt::Display for MigrationStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names a migration or per-object result, as Stork's `MigrationStatusType` strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MigrationStatusType {
    /// Created, not started (the empty string; shown as Pending in schedule status).
    #[default]
    #[serde(rename = "")]
    Initial,
    /// Waiting to start.
    Pending,
    /// Running.
    InProgress,
    /// Failed.
    Failed,
    /// Finished with some objects failed.
    PartialSuccess,
    /// Finished with everything copied.
    Successful,
    /// A destination object was purged (per-object entries only).
    Purged,
}

impl MigrationStatusType {
    /// Returns the Stork string (`InProgress`; empty for Initial).
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatusType::Initial => "",
            MigrationStatusType::Pending => "Pending",
            MigrationStatusType::InProgress => "InProgress",
            MigrationStatusType::Failed => "Failed",
            MigrationStatusType::PartialSuccess => "PartialSuccess",
            MigrationStatusType::Successful => "Successful",
            MigrationStatusType::Purged => "Purged",
        }
    }

    /// Returns whether the run is over (Failed, PartialSuccess, Successful or Purged).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MigrationStatusType::Failed
                | MigrationStatusType::PartialSuccess
                | MigrationStatusType::Successful
                | MigrationStatusType::Purged
        )
    }

    /// Returns whether the run counts as a success for retention (Successful or PartialSuccess).
    pub fn is_success(self) -> bool {
        matches!(self, MigrationStatusType::Successful | MigrationStatusType::PartialSuccess)
    }
}

impl fmt::Display for MigrationStatusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reports a migration's progress and result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Names the current stage.
    #[serde(default)]
    pub stage: MigrationStage,
    /// Names the overall result so far.
    #[serde(default)]
    pub status: MigrationStatusType,
    /// Lists per-object outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<MigrationResourceInfo>,
    /// Lists per-volume outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<MigrationVolumeInfo>,
    /// Says when the run finished.
    #[serde(default)]
    pub finish_timestamp: Option<Time>,
    /// Says when the volume stage finished.
    #[serde(default)]
    pub volume_migration_finish_timestamp: Option<Time>,
    /// Says when the resource stage finished.
    #[serde(default)]
    pub resource_migration_finish_timestamp: Option<Time>,
    /// Summarises counts, bytes and elapsed times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<MigrationSummary>,
}

/// Reports the outcome for one Kubernetes object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationResourceInfo {
    /// Names the object.
    #[serde(default)]
    pub name: String,
    /// Names the object's namespace (empty for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
    /// Names the API group (`core` for the core API).
    #[serde(default)]
    pub group: String,
    /// Names the API version.
    #[serde(default)]
    pub version: String,
    /// Names the kind.
    #[serde(default)]
    pub kind: String,
    /// Gives the outcome.
    #[serde(default)]
    pub status: MigrationStatusType,
    /// Explains the outcome.
    #[serde(default)]
    pub reason: String,
    /// Names the ResourceTransformation that changed the object, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transformed_by: String,
}

/// Reports the outcome for one volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationVolumeInfo {
    /// Names the PVC.
    #[serde(default)]
    pub persistent_volume_claim: String,
    /// Names the PVC's namespace.
    #[serde(default)]
    pub namespace: String,
    /// Names the volume (the PV).
    #[serde(default)]
    pub volume: String,
    /// Gives the outcome.
    #[serde(default)]
    pub status: MigrationStatusType,
    /// Counts the bytes of the volume's snapshot.
    #[serde(default)]
    pub bytes_total: u64,
    /// Explains the outcome.
    #[serde(default)]
    pub reason: String,
}

/// Summarises a migration (Stork's JSON names, e.g. `numOfMigratedVolumes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MigrationSummary {
    /// Counts the volumes.
    #[serde(default, rename = "totalNumberOfVolumes")]
    pub total_number_of_volumes: u64,
    /// Counts the volumes copied.
    #[serde(default, rename = "numOfMigratedVolumes")]
    pub num_of_migrated_volumes: u64,
    /// Counts the objects.
    #[serde(default, rename = "totalNumberOfResources")]
    pub total_number_of_resources: u64,
    /// Counts the objects copied.
    #[serde(default, rename = "numOfMigratedResources")]
    pub num_of_migrated_resources: u64,
    /// Counts the bytes of successfully copied volumes.
    #[serde(default, rename = "totalBytesMigrated")]
    pub total_bytes_migrated: u64,
    /// Gives the volume stage's duration as a Go duration string, or `NA`.
    #[serde(default, rename = "elapsedTimeForVolumeMigration")]
    pub elapsed_time_for_volume_migration: String,
    /// Gives the resource stage's duration as a Go duration string, or `NA`.
    #[serde(default, rename = "elapsedTimeForResourceMigration")]
    pub elapsed_time_for_resource_migration: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_bools_keep_storks_defaults() {
        let spec: MigrationSpec = serde_json::from_value(serde_json::json!({
            "clusterPair": "remotecluster", "namespaces": ["mysql"]
        }))
        .unwrap();
        assert!(spec.include_resources());
        assert!(spec.include_volumes());
        assert!(!spec.start_applications());
        assert!(!spec.purge_deleted_resources());
        assert!(spec.skip_deleted_namespaces());
        assert!(!spec.includes_jobs());
        let spec: MigrationSpec = serde_json::from_value(serde_json::json!({
            "startApplications": true, "skipDeletedNamespaces": false,
            "includeOptionalResourceTypes": ["Jobs"]
        }))
        .unwrap();
        assert!(spec.start_applications());
        assert!(!spec.skip_deleted_namespaces());
        assert!(spec.includes_jobs());
    }

    #[test]
    fn status_strings_are_storks() {
        let status: MigrationStatus = serde_json::from_value(serde_json::json!({
            "stage": "", "status": "PartialSuccess", "finishTimestamp": null,
            "summary": {"numOfMigratedVolumes": 2, "elapsedTimeForVolumeMigration": "NA"}
        }))
        .unwrap();
        assert_eq!(status.stage, MigrationStage::Initial);
        assert!(status.status.is_terminal() && status.status.is_success());
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["stage"], "");
        assert_eq!(json["summary"]["numOfMigratedVolumes"], 2);
        assert_eq!(json["summary"]["totalBytesMigrated"], 0);
    }

    #[test]
    fn check_names_each_bad_field() {
        let spec = MigrationSpec {
            cluster_pair: String::new(),
            namespaces: vec!["Bad_NS".into()],
            include_optional_resource_types: vec!["cronjob".into()],
            transform_specs: vec!["a".into(), "b".into()],
            selectors: BTreeMap::from([("app".into(), "bad value".into())]),
            ..Default::default()
        };
        let mut errors = ValidationErrors::default();
        spec.check(&mut errors, &FieldPath::root().field("spec"));
        let paths: Vec<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.clusterPair",
                "spec.namespaces[0]",
                "spec.selectors.app",
                "spec.includeOptionalResourceTypes[0]",
                "spec.transformSpecs",
            ]
        );
    }
}
