//! The four PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch (built-in kinds only, as on a real server) and server-side apply (in `fields`).
//!
//! Strategic merge patch keys lists of objects by the merge keys the Kubernetes types declare
//! (`containers` by `name`, container `ports` by `containerPort`, `volumeMounts` by `mountPath`
//! …) and honours the directives kubectl writes: `$patch: replace|delete|merge`, `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`. The merge keys come from a
//! table of field names rather than from OpenAPI schemas; a list the table does not name is
//! replaced whole.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The merge key of a list field in the built-in kinds, judged from the field name and, for
/// `ports`, from the items (container ports are keyed by `containerPort`, service ports by `port`).
pub(crate) fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let key = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    };
    Some(key)
}

/// Lists of strings that strategic merge patch merges as sets rather than replacing.
fn primitive_merge(field: &str) -> bool {
    field == "finalizers"
}

/// Applies an RFC 6902 JSON patch.
pub(crate) fn json_patch(target: &Value, patch_body: &[u8]) -> ApiResult<Value> {
    let patch: json_patch::Patch = serde_json::from_slice(patch_body).map_err(|e| {
        ApiError::bad_request(format!("the JSON patch body is not a list of operations: {e}"))
    })?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &patch).map_err(|e| {
        ApiError::invalid_patch(format!("the JSON patch could not be applied: {e}"))
    })?;
    Ok(doc)
}

/// Applies an RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &Value, patch_body: &[u8]) -> ApiResult<Value> {
    let patch: Value = serde_json::from_slice(patch_body)
        .map_err(|e| ApiError::bad_request(format!("the merge patch body is not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("the merge patch body must be a JSON object"));
    }
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

/// Applies a strategic merge patch to a built-in object.
pub(crate) fn strategic_merge_patch(target: &Value, patch_body: &[u8]) -> ApiResult<Value> {
    let patch: Value = serde_json::from_slice(patch_body).map_err(|e| {
        ApiError::bad_request(format!("the strategic merge patch body is not JSON: {e}"))
    })?;
    match (target, &patch) {
        (Value::Object(orig), Value::Object(p)) => merge_map(orig, p),
        _ => Err(ApiError::bad_request("the strategic merge patch body must be a JSON object")),
    }
}

/// Removes `$`-directives from a value being inserted as new.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| !matches!(i.get("$patch"), Some(Value::String(_))))
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_map(orig: &Map<String, Value>, patch: &Map<String, Value>) -> ApiResult<Value> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(strip(&Value::Object(patch.clone()))),
        Some("delete") => return Ok(Value::Null),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown patch type {other:?} in $patch")));
        }
    }
    let mut out = orig.clone();
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((field, order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(gone)) = (out.get_mut(field), v) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => merge_map(o, p)?,
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(k, o, p)?),
            (None, Value::Array(p)) => Value::Array(merge_list(k, &[], p)?),
            (_, Value::Object(p)) => merge_map(&Map::new(), p)?,
            (_, other) => strip(other),
        };
        if merged.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), merged);
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = out.get_mut(field) {
            reorder(field, list, order);
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        out.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(Value::Object(out))
}

fn same_item(key: Option<&str>, a: &Value, b: &Value) -> bool {
    match key {
        Some(key) => a.get(key).is_some() && a.get(key) == b.get(key),
        None => a == b,
    }
}

fn merge_list(field: &str, orig: &[Value], patch: &[Value]) -> ApiResult<Vec<Value>> {
    if patch.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Ok(patch.iter().filter(|i| i.get("$patch").is_none()).map(strip).collect());
    }
    let objects = |items: &[Value]| items.iter().all(Value::is_object);
    let key = if objects(orig) && objects(patch) {
        merge_key(field, patch).or_else(|| merge_key(field, orig))
    } else {
        None
    };
    if let Some(key) = key {
        let mut out = orig.to_vec();
        for p in patch {
            let Value::Object(pm) = p else { continue };
            if pm.get(key).is_none() {
                return Err(ApiError::bad_request(format!(
                    "an item of the list {field:?} in the strategic merge patch has no merge key {key:?}"
                )));
            }
            let position = out.iter().position(|o| same_item(Some(key), o, p));
            let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
            match (position, delete) {
                (Some(i), true) => {
                    out.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => {
                    let merged = match &out[i] {
                        Value::Object(o) => merge_map(o, pm)?,
                        _ => strip(p),
                    };
                    out[i] = merged;
                }
                (None, false) => out.push(strip(p)),
            }
        }
        return Ok(out);
    }
    if primitive_merge(field) {
        let mut out = orig.to_vec();
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(out);
    }
    Ok(patch.iter().map(strip).collect())
}

fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let key = merge_key(field, list);
    let mut rest = std::mem::take(list);
    for wanted in order {
        if let Some(i) = rest.iter().position(|item| same_item(key, item, wanted)) {
            list.push(rest.remove(i));
        }
    }
    list.append(&mut rest);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn smp(orig: Value, patch: Value) -> Value {
        strategic_merge_patch(&orig, patch.to_string().as_bytes()).expect("patch applies")
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let orig = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
            {"name": "sidecar", "image": "s:1"}]}});
        let out = smp(
            orig,
            json!({"spec": {"containers": [{"name": "app", "image": "a:2", "ports": [{"containerPort": 8080}]}]}}),
        );
        let containers = &out["spec"]["containers"];
        assert_eq!(containers[0]["image"], "a:2");
        assert_eq!(containers[0]["ports"].as_array().map(Vec::len), Some(3));
        assert_eq!(containers[1]["name"], "sidecar");
    }

    #[test]
    fn directives_delete_replace_order_and_retain() {
        let orig = json!({
            "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "tolerations": [{"key": "k"}]}});
        let out = smp(
            orig,
            json!({
                "metadata": {"labels": {"y": null}, "$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]},
                "spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
                    "containers": [{"name": "a", "$patch": "delete"}, {"name": "c"}],
                    "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                    "tolerations": [{"key": "other"}]}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "c"}, {"name": "b"}]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "other"}]));
    }

    #[test]
    fn json_and_merge_patches_report_failures_with_the_right_codes() {
        let doc = json!({"spec": {"replicas": 1}});
        let ok = json_patch(&doc, br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#)
            .expect("applies");
        assert_eq!(ok["spec"]["replicas"], 3);
        assert_eq!(
            json_patch(&doc, br#"[{"op":"test","path":"/spec/replicas","value":9}]"#)
                .expect_err("test")
                .code,
            422
        );
        assert_eq!(json_patch(&doc, b"{}").expect_err("not a list").code, 400);
        let merged =
            merge_patch(&doc, br#"{"spec":{"replicas":null,"paused":true}}"#).expect("merges");
        assert_eq!(merged, json!({"spec": {"paused": true}}));
    }
}
