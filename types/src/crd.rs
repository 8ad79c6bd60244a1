//! CustomResourceDefinitions of the Stork kinds, built from the Rust types.
//!
//! Differences from the CRDs Stork registers: structural schemas instead of
//! `x-kubernetes-preserve-unknown-fields` on everything (Stork YAML still applies unchanged, but
//! unknown fields are rejected), a `status` subresource on the kinds that have status (so spec
//! edits and controller status writes never overwrite each other; a client that writes status with
//! a whole-object update, as storkctl does, must use `/status` instead), and printer columns for
//! `kubectl get`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::meta::{API_GROUP, API_VERSION, Kind, Scope};
use crate::schema::crd_schema;

fn column(name: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_owned(),
        json_path: json_path.to_owned(),
        type_: "string".to_owned(),
        ..Default::default()
    }
}

fn printer_columns(kind: Kind) -> Vec<CustomResourceColumnDefinition> {
    let mut columns = match kind {
        Kind::ClusterPair => vec![
            column("Storage-Status", ".status.storageStatus"),
            column("Scheduler-Status", ".status.schedulerStatus"),
        ],
        Kind::SchedulePolicy | Kind::NamespacedSchedulePolicy => vec![
            CustomResourceColumnDefinition {
                type_: "integer".to_owned(),
                ..column("Interval-Minutes", ".policy.interval.intervalMinutes")
            },
            column("Daily", ".policy.daily.time"),
            column("Weekly-Day", ".policy.weekly.day"),
            column("Weekly-Time", ".policy.weekly.time"),
            CustomResourceColumnDefinition {
                type_: "integer".to_owned(),
                ..column("Monthly-Date", ".policy.monthly.date")
            },
            column("Monthly-Time", ".policy.monthly.time"),
            column("Timezone", ".policy.timezone"),
        ],
        Kind::MigrationSchedule => vec![
            column("Policy", ".spec.schedulePolicyName"),
            column("ClusterPair", ".spec.template.spec.clusterPair"),
            CustomResourceColumnDefinition {
                type_: "boolean".to_owned(),
                ..column("Suspend", ".spec.suspend")
            },
        ],
        Kind::Migration => vec![
            column("ClusterPair", ".spec.clusterPair"),
            column("Stage", ".status.stage"),
            column("Status", ".status.status"),
        ],
        Kind::ApplicationRegistration | Kind::Rule => Vec::new(),
    };
    columns.push(CustomResourceColumnDefinition {
        type_: "date".to_owned(),
        ..column("Age", ".metadata.creationTimestamp")
    });
    columns
}

fn has_status(kind: Kind) -> bool {
    matches!(kind, Kind::ClusterPair | Kind::MigrationSchedule | Kind::Migration)
}

/// Returns the CRD of `kind`.
pub fn custom_resource_definition(kind: Kind) -> CustomResourceDefinition {
    let schema: JSONSchemaProps = serde_json::from_value(crd_schema(kind).clone())
        .expect("schemas generated from our types are valid JSONSchemaProps (tested)");
    let short_names: Vec<String> = kind.short_names().iter().map(|s| (*s).to_owned()).collect();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{}.{API_GROUP}", kind.plural())),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: API_GROUP.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: kind.as_str().to_owned(),
                list_kind: Some(format!("{}List", kind.as_str())),
                plural: kind.plural().to_owned(),
                singular: Some(kind.singular().to_owned()),
                short_names: (!short_names.is_empty()).then_some(short_names),
                categories: Some(vec!["stork".to_owned(), "avocet".to_owned()]),
            },
            scope: match kind.scope() {
                Scope::Namespaced => "Namespaced".to_owned(),
                Scope::Cluster => "Cluster".to_owned(),
            },
            versions: vec![CustomResourceDefinitionVersion {
                name: API_VERSION.to_owned(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation { open_api_v3_schema: Some(schema) }),
                subresources: has_status(kind).then(|| CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                    scale: None,
                }),
                additional_printer_columns: Some(printer_columns(kind)),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// Returns the CRDs of every kind, in [`Kind::ALL`] order.
pub fn custom_resource_definitions() -> Vec<CustomResourceDefinition> {
    Kind::ALL.into_iter().map(custom_resource_definition).collect()
}

/// Returns the file name under `deploy/base/crds/` of the CRD of `kind`.
pub fn file_name(kind: Kind) -> String {
    format!("{API_GROUP}_{}.yaml", kind.plural())
}

/// Returns the YAML text of the CRD of `kind` as committed in `deploy/base/crds/`.
pub fn to_yaml(kind: Kind) -> String {
    let crd = custom_resource_definition(kind);
    let body = serde_saphyr::to_string(&crd).expect("a CRD always serializes");
    format!(
        "# Generated from avocet-types; do not edit. Regenerate: AVOCET_BLESS=1 cargo test -p avocet-types --test crds\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Walks a schema and returns the paths of nodes a structural schema does not allow.
    fn non_structural(schema: &Value, path: &str, found: &mut Vec<String>) {
        let Some(object) = schema.as_object() else { return };
        for banned in ["anyOf", "oneOf", "allOf", "not", "$ref", "propertyNames", "const"] {
            if object.contains_key(banned) {
                found.push(format!("{path}: {banned}"));
            }
        }
        let typed = object.contains_key("type")
            || object.contains_key("x-kubernetes-int-or-string")
            || object.contains_key("x-kubernetes-preserve-unknown-fields");
        if !typed {
            found.push(format!("{path}: no type"));
        }
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, child) in properties {
                non_structural(child, &format!("{path}.{name}"), found);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child @ Value::Object(_)) = object.get(key) {
                non_structural(child, &format!("{path}[{key}]"), found);
            }
        }
    }

    #[test]
    fn schemas_are_structural() {
        for kind in Kind::ALL {
            let mut found = Vec::new();
            non_structural(crd_schema(kind), kind.as_str(), &mut found);
            assert!(found.is_empty(), "{kind}: {found:#?}");
        }
    }

    /// Makes every number a float, as `JSONSchemaProps` stores `minimum` and `maximum`.
    fn floats(value: &Value) -> Value {
        match value {
            Value::Number(number) => serde_json::json!(number.as_f64().unwrap()),
            Value::Array(items) => Value::Array(items.iter().map(floats).collect()),
            Value::Object(object) => {
                Value::Object(object.iter().map(|(k, v)| (k.clone(), floats(v))).collect())
            }
            other => other.clone(),
        }
    }

    #[test]
    fn schemas_survive_the_kubernetes_type_unchanged() {
        for kind in Kind::ALL {
            let schema = crd_schema(kind);
            let typed: JSONSchemaProps = serde_json::from_value(schema.clone()).unwrap();
            assert_eq!(floats(&serde_json::to_value(&typed).unwrap()), floats(schema), "{kind}");
        }
    }

    #[test]
    fn crds_name_group_plural_and_scope() {
        let crd = custom_resource_definition(Kind::SchedulePolicy);
        assert_eq!(crd.metadata.name.as_deref(), Some("schedulepolicies.stork.libopenstorage.org"));
        assert_eq!(crd.spec.scope, "Cluster");
        assert!(crd.spec.versions[0].subresources.is_none());
        let crd = custom_resource_definition(Kind::Migration);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert!(crd.spec.versions[0].subresources.is_some());
    }
}
