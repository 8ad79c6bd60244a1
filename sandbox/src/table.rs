//! `meta.k8s.io/v1` Tables: what `kubectl get` asks for (`Accept: …;as=Table`) so that it prints
//! the columns a real cluster prints for the kinds Avocet works with.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Kubernetes' short human durations (`45s`, `3m20s`, `5h`, `2d3h`, `12d`).
pub(crate) fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", s % 60) }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    let Some(created) = obj["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".to_owned();
    };
    match chrono::DateTime::parse_from_rfc3339(created) {
        Ok(t) => human_age((crate::clock::now_utc() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<invalid>".to_owned(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn text(v: &Value, default: &str) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Array(a) if !a.is_empty() => {
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        }
        _ => default.to_owned(),
    }
}

fn count(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
}

fn service_ports(spec: &Value) -> String {
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(node) => format!("{}:{node}/{proto}", int(&p["port"])),
                None => format!("{}/{proto}", int(&p["port"])),
            }
        })
        .collect();
    if ports.is_empty() { "<none>".to_owned() } else { ports.join(",") }
}

/// Column names and the cells of one object, per kind.
fn columns(rt: &ResourceType, obj: &Value) -> (Vec<&'static str>, Vec<Value>) {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let name = json!(obj["metadata"]["name"]);
    let age = json!(age(obj));
    if rt.custom {
        return (vec!["Name", "Age"], vec![name, age]);
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments") => (
            vec!["Name", "Ready", "Up-to-date", "Available", "Age"],
            vec![
                name,
                json!(format!("{}/{}", int(&status["readyReplicas"]), int(&spec["replicas"]))),
                json!(int(&status["updatedReplicas"])),
                json!(int(&status["availableReplicas"])),
                age,
            ],
        ),
        ("apps", "statefulsets" | "replicasets") => (
            vec!["Name", "Ready", "Age"],
            vec![
                name,
                json!(format!("{}/{}", int(&status["readyReplicas"]), int(&spec["replicas"]))),
                age,
            ],
        ),
        ("", "namespaces") => {
            (vec!["Name", "Status", "Age"], vec![name, json!(text(&status["phase"], "")), age])
        }
        ("", "services") => (
            vec!["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
            vec![
                name,
                json!(text(&spec["type"], "ClusterIP")),
                json!(text(&spec["clusterIP"], "<none>")),
                json!(text(&spec["externalIPs"], "<none>")),
                json!(service_ports(spec)),
                age,
            ],
        ),
        ("", "configmaps") => (
            vec!["Name", "Data", "Age"],
            vec![name, json!(count(&obj["data"]) + count(&obj["binaryData"])), age],
        ),
        ("", "secrets") => (
            vec!["Name", "Type", "Data", "Age"],
            vec![name, json!(text(&obj["type"], "Opaque")), json!(count(&obj["data"])), age],
        ),
        ("", "persistentvolumeclaims") => (
            vec!["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "Age"],
            vec![
                name,
                json!(text(&status["phase"], "")),
                json!(text(&spec["volumeName"], "")),
                json!(text(&status["capacity"]["storage"], "")),
                json!(access_modes(&status["accessModes"])),
                json!(text(&spec["storageClassName"], "<unset>")),
                age,
            ],
        ),
        ("", "persistentvolumes") => {
            let claim =
                match (spec["claimRef"]["namespace"].as_str(), spec["claimRef"]["name"].as_str()) {
                    (Some(ns), Some(n)) => format!("{ns}/{n}"),
                    _ => String::new(),
                };
            (
                vec![
                    "Name",
                    "Capacity",
                    "Access Modes",
                    "Reclaim Policy",
                    "Status",
                    "Claim",
                    "StorageClass",
                    "Age",
                ],
                vec![
                    name,
                    json!(text(&spec["capacity"]["storage"], "")),
                    json!(access_modes(&spec["accessModes"])),
                    json!(text(&spec["persistentVolumeReclaimPolicy"], "Retain")),
                    json!(text(&status["phase"], "")),
                    json!(claim),
                    json!(text(&spec["storageClassName"], "")),
                    age,
                ],
            )
        }
        ("apiextensions.k8s.io", _) => {
            (vec!["Name", "Created At"], vec![name, json!(obj["metadata"]["creationTimestamp"])])
        }
        _ => (vec!["Name", "Age"], vec![name, age]),
    }
}

fn access_modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn table(rt: &ResourceType, items: &[Value], metadata: Value) -> Value {
    let probe = items.first().cloned().unwrap_or_else(|| json!({}));
    let (names, _) = columns(rt, &probe);
    let definitions: Vec<Value> = names
        .iter()
        .map(|n| {
            let format = if *n == "Name" { "name" } else { "" };
            json!({ "name": n, "type": "string", "format": format, "description": "", "priority": 0 })
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            json!({
                "cells": columns(rt, obj).1,
                "object": { "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"] },
            })
        })
        .collect();
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows })
}

/// A list as a Table.
pub(crate) fn list(rt: &ResourceType, list: &Value) -> Value {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    table(rt, &items, list["metadata"].clone())
}

/// One object as a Table.
pub(crate) fn single(rt: &ResourceType, obj: &Value) -> Value {
    table(
        rt,
        std::slice::from_ref(obj),
        json!({ "resourceVersion": obj["metadata"]["resourceVersion"] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(200), "3m20s");
        assert_eq!(human_age(3600 * 5), "5h");
        assert_eq!(human_age(86_400 * 2 + 3600 * 3), "2d3h");
        assert_eq!(human_age(86_400 * 12), "12d");
    }
}
