//! A minimal OpenAPI v3 index. kubectl (1.27 and later) reads it before writing, to learn
//! whether the server validates fields itself (`fieldValidation`); it finds, for every served
//! kind, the PATCH operation that declares that parameter. No schemas are published: kubectl
//! then falls back to its compiled-in types for strategic merge patches, as it does against any
//! server without them.

use serde_json::{Map, Value, json};

use crate::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `GET /openapi/v3`.
pub(crate) fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for t in registry.all() {
        let gv = gv_path(&t.group, &t.version);
        paths
            .entry(gv.clone())
            .or_insert_with(|| json!({ "serverRelativeURL": format!("/openapi/v3/{gv}") }));
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub(crate) fn group_version(registry: &Registry, rest: &[&str]) -> Option<Value> {
    let (group, version) = match rest {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let mut paths = Map::new();
    for t in registry.all().iter().filter(|t| t.group == group && t.version == version) {
        let base = format!("/{}", gv_path(group, version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let query =
            |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string" } });
        paths.insert(
            item,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": { "group": group, "version": version, "kind": t.kind },
                    "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                    "responses": { "200": { "description": "OK" } },
                }
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes (Avocet sandbox)", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}
