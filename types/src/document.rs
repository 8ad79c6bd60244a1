//! Reading YAML or JSON text with one or more Stork documents into typed, validated objects.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::meta::{API_GROUP_VERSION, Kind, Scope};
use crate::policy::ParsedPolicy;
use crate::schema::check_structure;
use crate::validate::{FieldPath, ValidationErrors, check_namespace_name, check_object_name};
use crate::{
    ApplicationRegistration, ClusterPair, Migration, MigrationSchedule, NamespacedSchedulePolicy,
    Rule, SchedulePolicy,
};

/// Holds one validated Stork object of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum StorkObject {
    /// A ClusterPair.
    ClusterPair(ClusterPair),
    /// A SchedulePolicy.
    SchedulePolicy(SchedulePolicy),
    /// A NamespacedSchedulePolicy.
    NamespacedSchedulePolicy(NamespacedSchedulePolicy),
    /// A MigrationSchedule.
    MigrationSchedule(MigrationSchedule),
    /// A Migration.
    Migration(Migration),
    /// An ApplicationRegistration.
    ApplicationRegistration(ApplicationRegistration),
    /// A Rule.
    Rule(Rule),
}

impl StorkObject {
    /// Returns the object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            StorkObject::ClusterPair(_) => Kind::ClusterPair,
            StorkObject::SchedulePolicy(_) => Kind::SchedulePolicy,
            StorkObject::NamespacedSchedulePolicy(_) => Kind::NamespacedSchedulePolicy,
            StorkObject::MigrationSchedule(_) => Kind::MigrationSchedule,
            StorkObject::Migration(_) => Kind::Migration,
            StorkObject::ApplicationRegistration(_) => Kind::ApplicationRegistration,
            StorkObject::Rule(_) => Kind::Rule,
        }
    }

    /// Returns the object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            StorkObject::ClusterPair(object) => &object.metadata,
            StorkObject::SchedulePolicy(object) => &object.metadata,
            StorkObject::NamespacedSchedulePolicy(object) => &object.metadata,
            StorkObject::MigrationSchedule(object) => &object.metadata,
            StorkObject::Migration(object) => &object.metadata,
            StorkObject::ApplicationRegistration(object) => &object.metadata,
            StorkObject::Rule(object) => &object.metadata,
        }
    }

    /// Returns the object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Returns the object's namespace as written in the document, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Returns the parsed policy of a SchedulePolicy or NamespacedSchedulePolicy.
    pub fn parsed_policy(&self) -> Option<ParsedPolicy> {
        let item = match self {
            StorkObject::SchedulePolicy(policy) => &policy.policy,
            StorkObject::NamespacedSchedulePolicy(policy) => &policy.policy,
            _ => return None,
        };
        // Documents are validated on the way in, so parsing cannot fail here.
        item.parse(&FieldPath::root().field("policy")).ok()
    }
}

/// Holds one valid document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Gives the document's position in the file, from 1, counting non-empty documents and the
    /// items of a `List` one by one.
    pub index: usize,
    /// Holds the typed object.
    pub object: StorkObject,
    /// Lists things that are allowed but probably not meant, e.g. unknown ClusterPair options.
    pub warnings: Vec<String>,
}

/// Says what is wrong with a file or one of its documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The text is not YAML or JSON at all, so no document could be read.
    #[error("not valid YAML or JSON: {message}")]
    Syntax {
        /// Gives the parser's message with the line and column.
        message: String,
    },
    /// One document has problems; every one is listed.
    #[error("{}: {errors}", DocumentLabel { index: *index, kind: kind.as_deref(), name })]
    Invalid {
        /// Gives the document's position in the file, from 1.
        index: usize,
        /// Names the kind, when the document says one.
        kind: Option<String>,
        /// Names the object, when the document says one.
        name: String,
        /// Lists the problems.
        errors: ValidationErrors,
    },
}

/// Writes `SchedulePolicy/testpolicy (document 2)`, or `document 2` when nothing is known.
struct DocumentLabel<'a> {
    index: usize,
    kind: Option<&'a str>,
    name: &'a str,
}

impl fmt::Display for DocumentLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.name) {
            (Some(kind), name) if !name.is_empty() => {
                write!(f, "{kind}/{name} (document {})", self.index)
            }
            (Some(kind), _) => write!(f, "{kind} (document {})", self.index),
            (None, _) => write!(f, "document {}", self.index),
        }
    }
}

impl DocumentError {
    /// Returns a `kind/name (document N)` label for messages, or `None` for a syntax error.
    pub fn label(&self) -> Option<String> {
        match self {
            DocumentError::Syntax { .. } => None,
            DocumentError::Invalid { index, kind, name, .. } => {
                Some(DocumentLabel { index: *index, kind: kind.as_deref(), name }.to_string())
            }
        }
    }
}

/// Reads every document in `text` (YAML or JSON; `---` separates YAML documents; a `v1` `List`
/// is expanded into its items) and validates each one on its own.
///
/// Returns a syntax error when the text cannot be read at all, else one result per document.
pub fn parse_documents(text: &str) -> Result<Vec<Result<Document, DocumentError>>, DocumentError> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|error| {
        let message = error.to_string();
        let message = message.strip_prefix("error: ").unwrap_or(&message).to_owned();
        DocumentError::Syntax { message }
    })?;
    let mut expanded = Vec::new();
    for value in values {
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("apiVersion").and_then(Value::as_str) == Some("v1");
        match value {
            Value::Object(mut list) if is_list => match list.remove("items") {
                Some(Value::Array(items)) => expanded.extend(items),
                _ => expanded.push(Value::Object(list)),
            },
            other => expanded.push(other),
        }
    }
    Ok(expanded.iter().enumerate().map(|(i, value)| parse_value(i + 1, value)).collect())
}

/// Validates one document given as a JSON value; `index` is its position for messages.
pub fn parse_value(index: usize, value: &Value) -> Result<Document, DocumentError> {
    let mut errors = ValidationErrors::default();
    let root = FieldPath::root();
    let kind_text = value.get("kind").and_then(Value::as_str).map(str::to_owned);
    let name =
        value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let invalid = |errors: ValidationErrors| DocumentError::Invalid {
        index,
        kind: kind_text.clone(),
        name: name.clone(),
        errors,
    };
    if !value.is_object() {
        errors
            .push(&root, format!("is {}, not an object with apiVersion and kind", describe(value)));
        return Err(invalid(errors));
    }
    match value.get("apiVersion") {
        Some(Value::String(api_version)) if api_version == API_GROUP_VERSION => {}
        Some(other) => {
            errors.push(&root.field("apiVersion"), format!("{other} is not {API_GROUP_VERSION}"))
        }
        None => {
            errors.push(&root.field("apiVersion"), format!("is required ({API_GROUP_VERSION})"))
        }
    }
    let kind = match value.get("kind") {
        Some(Value::String(text)) => match Kind::from_name(text) {
            Some(kind) => Some(kind),
            None => {
                let known: Vec<&str> = Kind::ALL.iter().map(|kind| kind.as_str()).collect();
                errors.push(
                    &root.field("kind"),
                    format!("{text:?} is not a Stork kind Avocet knows ({})", known.join(", ")),
                );
                None
            }
        },
        Some(other) => {
            errors.push(&root.field("kind"), format!("{other} is not a kind name"));
            None
        }
        None => {
            errors.push(&root.field("kind"), "is required");
            None
        }
    };
    let Some(kind) = kind else {
        return Err(invalid(errors));
    };
    let pruned = check_structure(kind, value, &mut errors);
    let mut warnings = Vec::new();
    let object = match kind {
        Kind::ClusterPair => decode(&pruned, &mut errors).map(|pair: ClusterPair| {
            warnings = pair.spec.check(&mut errors, &root.field("spec"));
            StorkObject::ClusterPair(pair)
        }),
        Kind::SchedulePolicy => decode(&pruned, &mut errors).map(|policy: SchedulePolicy| {
            if let Err(problems) = policy.policy.parse(&root.field("policy")) {
                errors.errors.extend(problems.errors);
            }
            StorkObject::SchedulePolicy(policy)
        }),
        Kind::NamespacedSchedulePolicy => {
            decode(&pruned, &mut errors).map(|policy: NamespacedSchedulePolicy| {
                if let Err(problems) = policy.policy.parse(&root.field("policy")) {
                    errors.errors.extend(problems.errors);
                }
                StorkObject::NamespacedSchedulePolicy(policy)
            })
        }
        Kind::MigrationSchedule => {
            decode(&pruned, &mut errors).map(|schedule: MigrationSchedule| {
                schedule.spec.check(&mut errors, &root.field("spec"));
                StorkObject::MigrationSchedule(schedule)
            })
        }
        Kind::Migration => decode(&pruned, &mut errors).map(|migration: Migration| {
            migration.spec.check(&mut errors, &root.field("spec"));
            StorkObject::Migration(migration)
        }),
        Kind::ApplicationRegistration => {
            decode(&pruned, &mut errors).map(|registration: ApplicationRegistration| {
                registration.check(&mut errors, &root);
                StorkObject::ApplicationRegistration(registration)
            })
        }
        Kind::Rule => decode(&pruned, &mut errors).map(|rule: Rule| {
            rule.check(&mut errors, &root);
            StorkObject::Rule(rule)
        }),
    };
    if let Some(object) = &object {
        check_metadata(kind, object.metadata(), &mut errors, &mut warnings);
    }
    match object {
        Some(object) if errors.is_empty() => Ok(Document { index, object, warnings }),
        _ => Err(invalid(errors)),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Decodes the structurally checked value; a failure here means the schema let through
/// something the Rust type rejects, reported with its path all the same.
fn decode<T: DeserializeOwned>(pruned: &Value, errors: &mut ValidationErrors) -> Option<T> {
    match serde_path_to_error::deserialize(pruned) {
        Ok(object) => Some(object),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            errors.errors.push(crate::validate::FieldError {
                path: if path == "." { "(document)".to_owned() } else { path },
                message: format!("cannot be read: {inner}"),
            });
            None
        }
    }
}

fn check_metadata(
    kind: Kind,
    metadata: &ObjectMeta,
    errors: &mut ValidationErrors,
    warnings: &mut Vec<String>,
) {
    let path = FieldPath::root().field("metadata");
    check_object_name(errors, &path.field("name"), metadata.name.as_deref().unwrap_or_default());
    match (kind.scope(), metadata.namespace.as_deref()) {
        (Scope::Namespaced, Some(namespace)) => {
            check_namespace_name(errors, &path.field("namespace"), namespace);
        }
        (Scope::Cluster, Some(namespace)) => warnings.push(format!(
            "{}: {kind} is cluster-scoped, so namespace {namespace:?} is ignored",
            path.field("namespace")
        )),
        (_, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_documents_and_validates_each_on_its_own() {
        let text = r#"
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata:
  name: testpolicy
policy:
  daily:
    time: "25:61PM"
  weekly:
    day: Funday
    time: "10:13PM"
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata:
  name: good
policy:
  interval:
    intervalMinutes: 60
"#;
        let documents = parse_documents(text).unwrap();
        assert_eq!(documents.len(), 2);
        let error = documents[0].as_ref().unwrap_err();
        assert_eq!(
            error.to_string(),
            "SchedulePolicy/testpolicy (document 1): policy.daily.time: \"25:61PM\" is not a time \
             like 10:14PM; policy.weekly.day: \"Funday\" is not a day of the week like Thursday or Thu"
        );
        let good = documents[1].as_ref().unwrap();
        assert_eq!(
            (good.index, good.object.kind(), good.object.name()),
            (2, Kind::SchedulePolicy, "good")
        );
    }

    #[test]
    fn a_broken_file_is_a_syntax_error_not_a_panic() {
        for text in ["a: [1, 2", "policy:\n  - a\n b: c", "\"unterminated", "{"] {
            assert!(matches!(parse_documents(text), Err(DocumentError::Syntax { .. })), "{text:?}");
        }
    }

    #[test]
    fn non_objects_and_foreign_kinds_are_named() {
        let documents =
            parse_documents("just a string\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
                .unwrap();
        let messages: Vec<String> =
            documents.iter().map(|d| d.as_ref().unwrap_err().to_string()).collect();
        assert_eq!(
            messages,
            [
                "document 1: (document): is a string, not an object with apiVersion and kind",
                "Pod/p (document 2): apiVersion: \"v1\" is not stork.libopenstorage.org/v1alpha1; \
                 kind: \"Pod\" is not a Stork kind Avocet knows (ClusterPair, SchedulePolicy, \
                 NamespacedSchedulePolicy, MigrationSchedule, Migration, ApplicationRegistration, Rule)",
            ]
        );
    }

    #[test]
    fn a_v1_list_is_expanded() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "Rule",
             "metadata": {"name": "r", "namespace": "ns"},
             "rules": [{"podSelector": {"app": "x"}, "actions": [{"type": "command", "value": "sync"}]}]}]}"#;
        let documents = parse_documents(text).unwrap();
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0].as_ref().unwrap().object.kind(), Kind::Rule);
    }
}
