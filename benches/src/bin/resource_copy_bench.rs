//! Resource copy of 1,000 objects between two in-process sandbox clusters, through the kube
//! crate as against real clusters: the first copy (everything applied), a copy with nothing
//! changed (everything skipped by hash), and a copy after 10 objects changed. Prints a table.
//!
//! `cargo run --release -p avocet-benches --bin resource_copy_bench [-- --objects N]`

// A bench binary prints its table.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use avocet_sandbox::Sandbox;
use avocet_types::migration::MigrationSpec;
use avocet_workers::resources::copy::{CopyRequest, copy};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

#[allow(clippy::disallowed_methods)] // A bench measures wall time.
fn now() -> Instant {
    Instant::now()
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version =
        if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version,
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// The i-th object of a realistic mix: 60% ConfigMaps, 15% Secrets, 15% Deployments, 10% Services.
fn object(i: usize) -> (ApiResource, Value) {
    let name = format!("app-{i:05}");
    match i % 20 {
        0..=11 => (
            resource("", "v1", "ConfigMap", "configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": name}}, "data": {"settings.conf": "x".repeat(512), "index": i.to_string()}}),
        ),
        12..=14 => (
            resource("", "v1", "Secret", "secrets"),
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        ),
        15..=17 => (
            resource("apps", "v1", "Deployment", "deployments"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                     "env": [{"name": "MODE", "value": "primary"}], "resources": {"requests": {"cpu": "100m"}}}]}}}}),
        ),
        _ => (
            resource("", "v1", "Service", "services"),
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--objects")
        .and_then(|i| args.get(i + 1))
        .map_or(1_000, |n| n.parse().expect("--objects N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (source, destination) = (Sandbox::start_local().await.expect("source"), Sandbox::start_local().await.expect("destination"));
        let (src, dst) = (source.client().await.expect("client"), destination.client().await.expect("client"));
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(src.clone());
        ns.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "bench"}})).expect("ns")).await.expect("namespace");
        for i in 0..count {
            let (r, obj) = object(i);
            let api = Api::<DynamicObject>::namespaced_with(src.clone(), "bench", &r);
            api.create(&PostParams::default(), &serde_json::from_value(obj).expect("object")).await.expect("create");
        }
        let spec: MigrationSpec = serde_json::from_value(json!({"clusterPair": "remote", "namespaces": ["bench"]})).expect("spec");
        let no_paths = std::collections::BTreeMap::new();
        let request = |name: &'static str| CopyRequest {
            volume_paths: &no_paths,
            spec: &spec,
            migration_name: name,
            migration_namespace: "bench",
            time: chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").expect("time").into(),
            registrations: &[],
        };
        let mut rows: Vec<(&str, Duration, usize, usize)> = Vec::new();
        let started = now();
        let first = copy(&src, &dst, &request("first")).await.expect("first copy");
        rows.push(("first copy (all applied)", started.elapsed(), first.applied, first.unchanged));
        let started = now();
        let second = copy(&src, &dst, &request("second")).await.expect("second copy");
        rows.push(("nothing changed (all skipped)", started.elapsed(), second.applied, second.unchanged));
        for i in (0..count).step_by(count / 10).take(10) {
            let (r, _) = object(i);
            let api = Api::<DynamicObject>::namespaced_with(src.clone(), "bench", &r);
            let patch = json!({"metadata": {"annotations": {"bench/changed": "yes"}}});
            api.patch(&format!("app-{i:05}"), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change");
        }
        let started = now();
        let third = copy(&src, &dst, &request("third")).await.expect("third copy");
        rows.push(("10 objects changed", started.elapsed(), third.applied, third.unchanged));
        println!("Resource copy of {count} objects (60% ConfigMaps, 15% Secrets, 15% Deployments, 10% Services) between two in-process sandbox clusters, one namespace:");
        println!("{:<32} {:>10} {:>10} {:>10} {:>12}", "run", "seconds", "applied", "unchanged", "objects/s");
        for (name, took, applied, unchanged) in rows {
            let secs = took.as_secs_f64();
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let rate = (applied + unchanged) as f64 / secs;
            println!("{name:<32} {secs:>10.2} {applied:>10} {unchanged:>10} {rate:>12.0}");
        }
        source.shutdown().await;
        destination.shutdown().await;
    });
}
