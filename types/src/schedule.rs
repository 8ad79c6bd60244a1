//! MigrationSchedule: a Migration template fired on the schedule of a named policy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::migration::{MigrationSpec, MigrationStatusType};
use crate::policy::PolicyType;
use crate::time::Time;
use crate::validate::{FieldPath, ValidationErrors, check_object_name};

/// Holds a migration schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSchedule {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `MigrationSchedule`.
    #[serde(default = "migration_schedule_kind")]
    pub kind: String,
    /// Holds the object's name, namespace, labels and annotations.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Says which policy fires which migration template.
    #[serde(default)]
    pub spec: MigrationScheduleSpec,
    /// Reports the migrations fired per policy type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MigrationScheduleStatus>,
}

fn migration_schedule_kind() -> String {
    Kind::MigrationSchedule.as_str().to_owned()
}

stork_resource!(MigrationSchedule, Kind::MigrationSchedule, k8s_openapi::NamespaceResourceScope);

/// Says which policy fires which template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationScheduleSpec {
    /// Holds the spec copied into each fired Migration.
    #[serde(default)]
    pub template: MigrationTemplateSpec,
    /// Names a NamespacedSchedulePolicy in this namespace or, failing that, a SchedulePolicy.
    #[serde(default)]
    pub schedule_policy_name: String,
    /// Stops new fires while true (default false); a running migration is not cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Suspends the schedule by itself once the destination's applications are activated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_suspend: bool,
}

impl MigrationScheduleSpec {
    /// Returns `suspend`, default false.
    pub fn suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }

    /// Checks every field; the path is `spec`.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        let policy = path.field("schedulePolicyName");
        if self.schedule_policy_name.is_empty() {
            errors
                .push(&policy, "is required: it names the SchedulePolicy that fires this schedule");
        } else {
            check_object_name(errors, &policy, &self.schedule_policy_name);
        }
        self.template.spec.check(errors, &path.field("template").field("spec"));
    }
}

/// Holds the template of fired migrations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MigrationTemplateSpec {
    /// Holds the Migration spec.
    #[serde(default)]
    pub spec: MigrationSpec,
}

/// Reports the migrations a schedule fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationScheduleStatus {
    /// Maps each policy type to its migrations: the last success and everything newer.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::policy_type_map::<ScheduledMigrationStatus>")]
    pub items: BTreeMap<PolicyType, Vec<ScheduledMigrationStatus>>,
    /// Says whether the migrated applications were activated on this cluster.
    #[serde(default)]
    pub application_activated: bool,
}

/// Reports one fired migration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledMigrationStatus {
    /// Names the Migration.
    #[serde(default)]
    pub name: String,
    /// Says when it was created.
    #[serde(default)]
    pub creation_timestamp: Option<Time>,
    /// Says when the schedule first saw it finish.
    #[serde(default)]
    pub finish_timestamp: Option<Time>,
    /// Gives its result.
    #[serde(default)]
    pub status: MigrationStatusType,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_items_are_keyed_by_policy_type() {
        let status: MigrationScheduleStatus = serde_json::from_value(serde_json::json!({
            "items": {"Daily": [{"name": "s-daily-2019-02-14-221651",
                                 "creationTimestamp": "2019-02-14T22:16:51Z",
                                 "finishTimestamp": null, "status": "InProgress"}]},
            "applicationActivated": false
        }))
        .unwrap();
        assert_eq!(status.items[&PolicyType::Daily][0].status, MigrationStatusType::InProgress);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["items"]["Daily"][0]["creationTimestamp"], "2019-02-14T22:16:51Z");
    }

    #[test]
    fn check_requires_a_policy_and_checks_the_template() {
        let mut errors = ValidationErrors::default();
        MigrationScheduleSpec::default().check(&mut errors, &FieldPath::root().field("spec"));
        let paths: Vec<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.schedulePolicyName",
                "spec.template.spec.clusterPair",
                "spec.template.spec.namespaces"
            ]
        );
    }
}
