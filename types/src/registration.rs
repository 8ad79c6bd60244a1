//! ApplicationRegistration: how to collect a custom resource kind and how to suspend it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::validate::{FieldPath, ValidationErrors};

/// Holds the registrations of one application's custom resource kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRegistration {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `ApplicationRegistration`.
    #[serde(default = "application_registration_kind")]
    pub kind: String,
    /// Holds the object's name and labels.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Lists the registered kinds.
    #[serde(default)]
    pub resources: Vec<ApplicationResource>,
}

fn application_registration_kind() -> String {
    Kind::ApplicationRegistration.as_str().to_owned()
}

stork_resource!(
    ApplicationRegistration,
    Kind::ApplicationRegistration,
    k8s_openapi::ClusterResourceScope
);

/// Registers one custom resource kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationResource {
    /// Names the API group.
    #[serde(default)]
    pub group: String,
    /// Names the API version.
    #[serde(default)]
    pub version: String,
    /// Names the kind.
    #[serde(default)]
    pub kind: String,
    /// Keeps `status` when collecting (default false: stripped).
    #[serde(default)]
    pub keep_status: bool,
    /// Says which spec field disables the resource on the standby.
    #[serde(default)]
    pub suspend_options: SuspendOptions,
    /// Lists more fields handled like `suspendOptions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_suspend_options: Vec<SuspendOptions>,
    /// Gives the dotted path to a list of pod names deleted on deactivation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pods_path: String,
    /// Says whether to keep the resource in a ConfigMap until activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stash_strategy: Option<StashStrategy>,
}

/// Says which field suspends a resource and to what value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuspendOptions {
    /// Gives the dotted spec path, e.g. `spec.stopped`.
    #[serde(default)]
    pub path: String,
    /// Names the field's type: `int`, `string` or `bool`.
    #[serde(default, rename = "type")]
    pub value_type: String,
    /// Gives the suspended value for `string` fields.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// Says whether a resource is stashed instead of applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StashStrategy {
    /// Stashes the resource in a ConfigMap materialised on activation.
    #[serde(default, rename = "stashCR")]
    pub stash_cr: bool,
}

impl SuspendOptions {
    fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        if self.path.is_empty() {
            if !self.value_type.is_empty() || !self.value.is_empty() {
                errors.push(&path.field("path"), "is required when type or value is set");
            }
            return;
        }
        if self.path.split('.').any(str::is_empty) {
            errors.push(
                &path.field("path"),
                format!("{:?} is not a dotted path like spec.stopped", self.path),
            );
        }
        match self.value_type.as_str() {
            "int" | "bool" => {}
            "string" => {
                if self.value.is_empty() {
                    errors.push(&path.field("value"), "is required for type string");
                }
            }
            other => errors.push(
                &path.field("type"),
                format!("{other:?} is not a suspend type (int, string or bool)"),
            ),
        }
    }
}

impl ApplicationRegistration {
    /// Checks every registered kind.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        let resources = path.field("resources");
        if self.resources.is_empty() {
            errors.push(&resources, "is empty; register at least one kind");
        }
        for (i, resource) in self.resources.iter().enumerate() {
            let entry = resources.index(i);
            if resource.version.is_empty() {
                errors.push(&entry.field("version"), "is required");
            }
            if resource.kind.is_empty() || !resource.kind.chars().all(|c| c.is_ascii_alphanumeric())
            {
                errors.push(
                    &entry.field("kind"),
                    format!("{:?} is not a kind name like CassandraDatacenter", resource.kind),
                );
            }
            resource.suspend_options.check(errors, &entry.field("suspendOptions"));
            for (j, options) in resource.custom_suspend_options.iter().enumerate() {
                options.check(errors, &entry.field("customSuspendOptions").index(j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_bad_suspend_options() {
        let registration: ApplicationRegistration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cassandra"},
            "resources": [{"group": "cassandra.datastax.com", "version": "v1beta1",
                           "kind": "CassandraDatacenter", "keepStatus": false,
                           "suspendOptions": {"path": "spec.stopped", "type": "boolean"}}]
        }))
        .unwrap();
        let mut errors = ValidationErrors::default();
        registration.check(&mut errors, &FieldPath::root());
        assert_eq!(
            errors.to_string(),
            "resources[0].suspendOptions.type: \"boolean\" is not a suspend type (int, string or bool)"
        );
    }
}
