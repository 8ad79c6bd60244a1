//! OpenAPI schemas of the Stork kinds, and the structural check that walks a document against one.
//!
//! One schema serves two readers: the CRDs in `deploy/base/crds/` (so a Kubernetes API server enforces
//! it) and [`check_structure`] (so `avocetctl validate` and the gRPC `apply` reject exactly what
//! the server would, with every problem at once instead of the first).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use crate::meta::Kind;
use crate::policy::PolicyType;
use crate::validate::{FieldPath, ValidationErrors};

/// Returns the schema of `metadata` as a CRD must carry it: an object the server checks itself.
pub(crate) fn object_meta(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object" })
}

/// Returns the schema of a free-form object kept as it is (kubeconfig extensions, exec plugins).
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Returns the schema of a string map whose values may be unquoted numbers (ClusterPair options).
pub(crate) fn lenient_string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-int-or-string": true }
    })
}

/// Returns the schema of a map keyed by policy type (`Interval`, `Daily`, `Weekly`, `Monthly`).
pub(crate) fn policy_type_map<V: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let items = generator.subschema_for::<V>();
    let mut properties = Map::new();
    for policy_type in PolicyType::ALL {
        properties.insert(
            policy_type.as_str().to_owned(),
            json!({ "type": "array", "items": items.clone() }),
        );
    }
    json_schema!({ "type": "object", "properties": properties })
}

fn generate<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
        object.remove("$schema");
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            properties.insert(
                "apiVersion".to_owned(),
                json!({ "type": "string", "description": "Names the API version, stork.libopenstorage.org/v1alpha1." }),
            );
            properties.insert(
                "kind".to_owned(),
                json!({ "type": "string", "description": "Names the kind." }),
            );
        }
    }
    strip_defaults(&mut schema);
    schema
}

/// Removes `default` keywords: Stork's defaults live in accessors, not in stored objects.
fn strip_defaults(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            object.remove("default");
            for value in object.values_mut() {
                strip_defaults(value);
            }
        }
        Value::Array(values) => values.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

/// Returns the OpenAPI v3 schema of `kind` as its CRD carries it.
pub fn crd_schema(kind: Kind) -> &'static Value {
    static SCHEMAS: OnceLock<BTreeMap<Kind, Value>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        Kind::ALL
            .into_iter()
            .map(|kind| {
                let schema = match kind {
                    Kind::ClusterPair => generate::<crate::ClusterPair>(),
                    Kind::SchedulePolicy => generate::<crate::SchedulePolicy>(),
                    Kind::NamespacedSchedulePolicy => generate::<crate::NamespacedSchedulePolicy>(),
                    Kind::MigrationSchedule => generate::<crate::MigrationSchedule>(),
                    Kind::Migration => generate::<crate::Migration>(),
                    Kind::ApplicationRegistration => generate::<crate::ApplicationRegistration>(),
                    Kind::Rule => generate::<crate::Rule>(),
                };
                (kind, schema)
            })
            .collect()
    });
    &schemas[&kind]
}

/// Returns the schema [`check_structure`] walks: the CRD schema with `metadata` typed as
/// Kubernetes' `ObjectMeta`, so a misspelt `namespace` is an error instead of a default namespace.
fn document_schema(kind: Kind) -> &'static Value {
    static SCHEMAS: OnceLock<BTreeMap<Kind, Value>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let metadata = generate::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        Kind::ALL
            .into_iter()
            .map(|kind| {
                let mut schema = crd_schema(kind).clone();
                schema["properties"]["metadata"] = metadata.clone();
                (kind, schema)
            })
            .collect()
    });
    &schemas[&kind]
}

/// Checks `value` against the schema of `kind`; returns the value with every bad field removed.
///
/// Reports unknown fields (with a suggestion when one is close), values of the wrong type, enum
/// strings that are not allowed, numbers outside `minimum`/`maximum` or their integer format, and
/// timestamps that are not RFC 3339. A `null` object field that is not nullable is dropped, as a
/// Kubernetes API server does; a `null` list item or map value is an error. Whole-number floats
/// become integers where the schema wants integers.
pub fn check_structure(kind: Kind, value: &Value, errors: &mut ValidationErrors) -> Value {
    walk(document_schema(kind), value, &FieldPath::root(), Slot::Element, errors)
        .unwrap_or(Value::Null)
}

/// Says where a node sits, which decides what a `null` there means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A declared object field: a `null` that is not nullable is pruned.
    Field,
    /// A list item, a map value or the root: a `null` that is not nullable is an error.
    Element,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn as_integer(value: &Value) -> Option<Value> {
    match value {
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(value.clone()),
        Value::Number(number) => {
            let float = number.as_f64()?;
            // Only whole floats that an i64 holds exactly are integers.
            let in_range = float.fract() == 0.0 && float.abs() < 9.0e15;
            #[allow(clippy::cast_possible_truncation)]
            in_range.then(|| Value::from(float as i64))
        }
        _ => None,
    }
}

/// Walks one node; returns `None` when the node is removed.
fn walk(
    schema: &Value,
    value: &Value,
    path: &FieldPath,
    slot: Slot,
    errors: &mut ValidationErrors,
) -> Option<Value> {
    if value.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let typed =
            schema.get("type").is_some() || schema.get("x-kubernetes-int-or-string").is_some();
        if nullable || !typed {
            return Some(Value::Null);
        }
        if slot == Slot::Element {
            let expected = schema.get("type").and_then(Value::as_str).unwrap_or("string");
            errors.push(path, format!("is null; give a value of type {expected} or remove it"));
        }
        // A non-nullable null object field is pruned, as a Kubernetes API server does.
        return None;
    }
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return match value {
            Value::String(_) => Some(value.clone()),
            _ => match as_integer(value) {
                Some(integer) => Some(integer),
                None => {
                    errors.push(
                        path,
                        format!(
                            "{} must be an integer or a string, not {}",
                            short(value),
                            type_name(value)
                        ),
                    );
                    None
                }
            },
        };
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let checked = match (expected, value) {
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => {
            Some(value.clone())
        }
        (Some("number"), Value::Number(_)) => Some(value.clone()),
        (Some("integer"), _) => as_integer(value),
        (Some("array"), Value::Array(items)) => {
            let item_schema = schema.get("items").unwrap_or(&Value::Null);
            let checked = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    walk(item_schema, item, &path.index(i), Slot::Element, errors)
                })
                .collect();
            Some(Value::Array(checked))
        }
        (Some("object"), Value::Object(object)) => Some(walk_object(schema, object, path, errors)),
        (None, _) => Some(value.clone()),
        _ => None,
    };
    let Some(checked) = checked else {
        let expected = match expected {
            Some("array") => "a list",
            Some("object") => "an object",
            Some("integer") => "an integer",
            Some("boolean") => "a boolean (true or false)",
            Some("number") => "a number",
            _ => "a string",
        };
        errors.push(path, format!("{} must be {expected}, not {}", short(value), type_name(value)));
        return None;
    };
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(&checked)
    {
        let names: Vec<String> = allowed
            .iter()
            .filter(|value| !value.is_null())
            .map(|value| match value {
                Value::String(text) if text.is_empty() => "\"\"".to_owned(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(path, format!("{} is not one of {}", short(&checked), names.join(", ")));
        return None;
    }
    if let Some(problem) = check_range_and_format(schema, &checked) {
        errors.push(path, format!("{} {problem}", short(&checked)));
        return None;
    }
    Some(checked)
}

/// Returns what is wrong with a scalar given the schema's `minimum`, `maximum` and `format`.
fn check_range_and_format(schema: &Value, value: &Value) -> Option<String> {
    let format = schema.get("format").and_then(Value::as_str);
    match value {
        Value::Number(number) => {
            let (low, high): (i128, i128) = match format {
                Some("int32") => (i32::MIN.into(), i32::MAX.into()),
                Some("uint8") => (0, u8::MAX.into()),
                Some("uint16") => (0, u16::MAX.into()),
                Some("uint32") => (0, u32::MAX.into()),
                Some("uint64") => (0, u64::MAX.into()),
                _ => (i64::MIN.into(), i64::MAX.into()),
            };
            let integer =
                number.as_i64().map(i128::from).or_else(|| number.as_u64().map(i128::from));
            if let Some(integer) = integer
                && schema.get("type").and_then(Value::as_str) == Some("integer")
                && !(low..=high).contains(&integer)
            {
                return Some(format!("is out of range ({low} to {high})"));
            }
            let float = number.as_f64()?;
            if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                && float < minimum
            {
                return Some(format!("is less than the minimum, {minimum}"));
            }
            if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                && float > maximum
            {
                return Some(format!("is more than the maximum, {maximum}"));
            }
            None
        }
        Value::String(text) if format == Some("date-time") => {
            chrono::DateTime::parse_from_rfc3339(text)
                .is_err()
                .then(|| "is not an RFC 3339 time like 2019-02-14T22:16:51Z".to_owned())
        }
        _ => None,
    }
}

fn walk_object(
    schema: &Value,
    object: &Map<String, Value>,
    path: &FieldPath,
    errors: &mut ValidationErrors,
) -> Value {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|value| value.is_object());
    let preserve =
        schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    let mut checked = Map::new();
    for (key, value) in object {
        let child = if properties.is_some() && additional.is_none() {
            path.field(key)
        } else {
            path.key(key)
        };
        if let Some(field_schema) = properties.and_then(|properties| properties.get(key)) {
            if let Some(value) = walk(field_schema, value, &child, Slot::Field, errors) {
                checked.insert(key.clone(), value);
            }
        } else if let Some(value_schema) = additional {
            if let Some(value) = walk(value_schema, value, &child, Slot::Element, errors) {
                checked.insert(key.clone(), value);
            }
        } else if preserve {
            checked.insert(key.clone(), value.clone());
        } else {
            let known: Vec<&str> =
                properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
            let hint = closest(key, &known)
                .map(|name| format!(" (did you mean {name:?}?)"))
                .unwrap_or_default();
            errors.push(path, format!("unknown field {key:?}{hint}"));
        }
    }
    Value::Object(checked)
}

/// Returns the known name closest to `key` within edit distance 2 (the first one on ties).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lowered = key.to_ascii_lowercase();
    known
        .iter()
        .map(|name| (edit_distance(&lowered, &name.to_ascii_lowercase()), *name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: Kind, value: Value) -> (Value, Vec<String>) {
        let mut errors = ValidationErrors::default();
        let pruned = check_structure(kind, &value, &mut errors);
        (pruned, errors.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn reports_unknown_fields_with_a_suggestion() {
        let (pruned, errors) = check(
            Kind::SchedulePolicy,
            json!({"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "SchedulePolicy",
                   "metadata": {"name": "p"},
                   "policy": {"interval": {"intervalMinute": 5}, "dayly": {"time": "10:00PM"}}}),
        );
        assert_eq!(
            errors,
            [
                "policy.interval: unknown field \"intervalMinute\" (did you mean \"intervalMinutes\"?)",
                "policy: unknown field \"dayly\" (did you mean \"daily\"?)",
            ]
        );
        assert_eq!(pruned["policy"], json!({"interval": {}}));
    }

    #[test]
    fn reports_wrong_types_and_enum_strings_and_keeps_going() {
        let (pruned, errors) = check(
            Kind::Migration,
            json!({"metadata": {"name": "m", "labels": {"a": 1}},
                   "spec": {"clusterPair": "cp", "namespaces": "mysql", "includeVolumes": "yes",
                            "selectors": {"app": "web"}},
                   "status": {"stage": "Copying", "status": "Successful", "finishTimestamp": null}}),
        );
        assert_eq!(
            errors,
            [
                "metadata.labels.a: 1 must be a string, not an integer",
                "spec.namespaces: \"mysql\" must be a list, not a string",
                "spec.includeVolumes: \"yes\" must be a boolean (true or false), not a string",
                "status.stage: \"Copying\" is not one of \"\", PreExecRule, PostExecRule, Volumes, Applications, Final",
            ]
        );
        assert_eq!(pruned["spec"], json!({"clusterPair": "cp", "selectors": {"app": "web"}}));
        assert_eq!(pruned["status"]["status"], "Successful");
    }

    #[test]
    fn whole_floats_become_integers_and_ports_may_be_numbers() {
        let (pruned, errors) = check(
            Kind::SchedulePolicy,
            json!({"policy": {"monthly": {"date": 14.0, "time": "8:05PM"}}}),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pruned["policy"]["monthly"]["date"], json!(14));
        let (_, errors) = check(
            Kind::ClusterPair,
            json!({"spec": {"options": {"port": 9001, "ip": "10.0.0.1", "secure": true}}}),
        );
        assert_eq!(
            errors,
            ["spec.options.secure: true must be an integer or a string, not a boolean"]
        );
    }

    #[test]
    fn nulls_are_pruned_where_not_nullable() {
        let (pruned, errors) = check(
            Kind::ClusterPair,
            json!({"metadata": {"creationTimestamp": null, "name": "x"}, "spec": {"config": null}}),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pruned["spec"], json!({}));
        assert_eq!(pruned["metadata"]["creationTimestamp"], Value::Null);
    }

    #[test]
    fn nulls_in_lists_and_maps_are_errors_not_silent_drops() {
        let (pruned, errors) = check(
            Kind::Migration,
            json!({"spec": {"namespaces": ["mysql", null], "selectors": {"app": null}}}),
        );
        assert_eq!(
            errors,
            [
                "spec.namespaces[1]: is null; give a value of type string or remove it",
                "spec.selectors.app: is null; give a value of type string or remove it",
            ]
        );
        assert_eq!(pruned["spec"], json!({"namespaces": ["mysql"], "selectors": {}}));
    }

    #[test]
    fn numbers_and_times_are_checked_against_their_format() {
        let (_, errors) = check(
            Kind::Migration,
            json!({"metadata": {"name": "m", "namespce": "x", "generation": "1",
                                "creationTimestamp": "yesterday"},
                   "status": {"volumes": [{"bytesTotal": -1}],
                              "finishTimestamp": "2019-02-14 22:16:51"}}),
        );
        assert_eq!(
            errors,
            [
                "metadata: unknown field \"namespce\" (did you mean \"namespace\"?)",
                "metadata.generation: \"1\" must be an integer, not a string",
                "metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 time like 2019-02-14T22:16:51Z",
                "status.volumes[0].bytesTotal: -1 is out of range (0 to 18446744073709551615)",
                "status.finishTimestamp: \"2019-02-14 22:16:51\" is not an RFC 3339 time like 2019-02-14T22:16:51Z",
            ]
        );
        let (_, errors) = check(
            Kind::SchedulePolicy,
            json!({"policy": {"interval": {"intervalMinutes": 18_446_744_073_709_551_615u64}}}),
        );
        assert_eq!(
            errors,
            [
                "policy.interval.intervalMinutes: 18446744073709551615 is out of range (-9223372036854775808 to 9223372036854775807)"
            ]
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("time", "time"), 0);
        assert_eq!(edit_distance("tme", "time"), 1);
        assert_eq!(edit_distance("intervalminute", "intervalminutes"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("zzzz", &["time", "retain"]), None);
    }
}
