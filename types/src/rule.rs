//! Rule: commands run in selected pods before or after a migration.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::validate::{FieldPath, ValidationErrors, check_label_map};

/// Names the placeholder a background command must contain (Stork's `${WAIT_CMD}`).
pub const WAIT_CMD: &str = "${WAIT_CMD}";

/// Holds a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `Rule`.
    #[serde(default = "rule_kind")]
    pub kind: String,
    /// Holds the object's name, namespace and labels.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Lists the rule items.
    #[serde(default)]
    pub rules: Vec<RuleItem>,
}

fn rule_kind() -> String {
    Kind::Rule.as_str().to_owned()
}

stork_resource!(Rule, Kind::Rule, k8s_openapi::NamespaceResourceScope);

/// Selects pods and lists the actions to run in them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleItem {
    /// Selects pods by label.
    #[serde(default)]
    pub pod_selector: BTreeMap<String, String>,
    /// Names the container to run in, when pods have several.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// Lists the actions.
    #[serde(default)]
    pub actions: Vec<RuleAction>,
}

/// Describes one action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleAction {
    /// Names the action type; `command` is the only one.
    #[serde(default, rename = "type")]
    pub action_type: String,
    /// Runs the command in the background until the migration's volumes are snapshotted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// Runs the command in only the first matching pod.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_in_single_pod: bool,
    /// Gives the command.
    #[serde(default)]
    pub value: String,
}

impl Rule {
    /// Checks every item and action.
    pub fn check(&self, errors: &mut ValidationErrors, path: &FieldPath) {
        let rules = path.field("rules");
        if self.rules.is_empty() {
            errors.push(&rules, "is empty; give at least one rule item");
        }
        for (i, item) in self.rules.iter().enumerate() {
            let entry = rules.index(i);
            check_label_map(errors, &entry.field("podSelector"), &item.pod_selector);
            if item.actions.is_empty() {
                errors.push(&entry.field("actions"), "is empty; give at least one action");
            }
            for (j, action) in item.actions.iter().enumerate() {
                let action_path = entry.field("actions").index(j);
                if action.action_type != "command" {
                    errors.push(
                        &action_path.field("type"),
                        format!(
                            "{:?} is not an action type (the one known is command)",
                            action.action_type
                        ),
                    );
                }
                if action.value.trim().is_empty() {
                    errors.push(&action_path.field("value"), "is empty; give the command to run");
                } else if action.background && !action.value.contains(WAIT_CMD) {
                    errors.push(
                        &action_path.field("value"),
                        format!("a background command must contain {WAIT_CMD}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_commands_need_the_wait_placeholder() {
        let rule: Rule = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "mysql-pre", "namespace": "mysql"},
            "rules": [{"podSelector": {"app": "mysql"},
                       "actions": [{"type": "command", "background": true,
                                    "value": "mysql -e 'flush tables with read lock'"}]}]
        }))
        .unwrap();
        let mut errors = ValidationErrors::default();
        rule.check(&mut errors, &FieldPath::root());
        assert_eq!(errors.errors.len(), 1);
        assert_eq!(errors.errors[0].path, "rules[0].actions[0].value");
    }
}
