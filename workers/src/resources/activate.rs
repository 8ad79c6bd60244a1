//! Activation and deactivation of a standby (reference §4.7), run on the destination cluster:
//! workloads get their replicas back from `stork.libopenstorage.org/migrationReplicas` (or go
//! back to 0), the CronJobs Avocet suspended get their source `suspend` back, held DaemonSets
//! their node selector, registered custom resources their recorded values, and the static
//! copies of the schedules that migrate these namespaces their `status.applicationActivated`.
//!
//! Better than Stork: only the CronJobs and DaemonSets Avocet changed are touched (Stork
//! unsuspends every CronJob in the namespace), each registered path is restored to the value
//! the source had, and a deactivation records the replicas it stops so that the next
//! activation brings back what was running.

use std::collections::BTreeSet;

use avocet_types::registration::ApplicationResource;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use serde_json::{Value, json};

use super::kinds;
use super::registrations;
use super::transform::{
    self, HELD_NODE_LABEL, MIGRATED, MIGRATION_REPLICAS, ORIGINAL_NODE_SELECTOR, ORIGINAL_SUSPEND,
    RESOURCE_HASH, SUSPEND_PATH_PREFIX,
};

/// The field manager activation writes with.
const FIELD_MANAGER: &str = "avocet-activate";

/// Which way to switch a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Start the applications (failover).
    Activate,
    /// Stop them again.
    Deactivate,
}

/// Why activation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The cluster could not be read or written.
    #[error("{0}")]
    Cluster(String),
    /// A named namespace does not exist.
    #[error("namespace {0:?} does not exist on this cluster")]
    NoNamespace(String),
}

fn cluster_err(e: kube::Error) -> ActivateError {
    ActivateError::Cluster(e.to_string())
}

fn annotation<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// The change one object needs, as a merge patch, and the line that reports it; `None` when
/// the object is not a migrated one of its kind or is already as wanted.
///
/// Activation turns the standby into the live copy: it restores the recorded values and drops
/// the records (so a later failback records the values as they are then), and clears the
/// resource hash so that the next copy into this namespace rewrites every object instead of
/// leaving some running and stopping others. Deactivation records what it stops.
pub fn change_for(
    group: &str,
    kind: &str,
    obj: &Value,
    registration: Option<&ApplicationResource>,
    direction: Direction,
) -> Option<(Value, String)> {
    let name = format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    );
    let kind_word = kind.to_lowercase();
    let activate = direction == Direction::Activate;
    let migrated = annotation(obj, MIGRATED) == Some("true");
    if kinds::scaled(group, kind) {
        let owned = obj["metadata"]["ownerReferences"].as_array().is_some_and(|r| !r.is_empty());
        let recorded = annotation(obj, MIGRATION_REPLICAS)?.parse::<i64>().ok()?;
        if owned {
            return None;
        }
        let current = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        if activate {
            return (current != recorded).then(|| {
                let patch = json!({"metadata": {"annotations": {RESOURCE_HASH: null}}, "spec": {"replicas": recorded}});
                (patch, format!("Updated replicas for {kind_word} {name} to {recorded}"))
            });
        }
        if current == 0 {
            return None;
        }
        let patch = json!({"metadata": {"annotations": {MIGRATION_REPLICAS: current.to_string(), RESOURCE_HASH: null}},
            "spec": {"replicas": 0}});
        return Some((patch, format!("Updated replicas for {kind_word} {name} to 0")));
    }
    match (group, kind) {
        ("batch", "CronJob") => {
            let current = obj["spec"]["suspend"].as_bool().unwrap_or(false);
            if activate {
                let original = annotation(obj, ORIGINAL_SUSPEND)?.parse::<bool>().ok()?;
                let patch = json!({"metadata": {"annotations": {ORIGINAL_SUSPEND: null, RESOURCE_HASH: null}},
                    "spec": {"suspend": original}});
                return Some((
                    patch,
                    format!("Updated suspend for {kind_word} {name} to {original}"),
                ));
            }
            if !migrated || (current && annotation(obj, ORIGINAL_SUSPEND).is_some()) {
                return None;
            }
            let patch = json!({"metadata": {"annotations": {ORIGINAL_SUSPEND: current.to_string(), RESOURCE_HASH: null}},
                "spec": {"suspend": true}});
            Some((patch, format!("Updated suspend for {kind_word} {name} to true")))
        }
        ("apps", "DaemonSet") => {
            let current = &obj["spec"]["template"]["spec"]["nodeSelector"];
            let held = current.get(HELD_NODE_LABEL).is_some();
            // A merge patch changes a map key by key: clear what goes, then set what comes.
            let mut selector = json!({});
            if activate {
                let original: Value =
                    serde_json::from_str(annotation(obj, ORIGINAL_NODE_SELECTOR)?).ok()?;
                selector[HELD_NODE_LABEL] = Value::Null;
                if let Some(m) = original.as_object() {
                    for (k, v) in m {
                        selector[k] = v.clone();
                    }
                }
                let patch = json!({"metadata": {"annotations": {ORIGINAL_NODE_SELECTOR: null, RESOURCE_HASH: null}},
                    "spec": {"template": {"spec": {"nodeSelector": selector}}}});
                return Some((patch, format!("Released {kind_word} {name}")));
            }
            if !migrated || held {
                return None;
            }
            if let Some(m) = current.as_object() {
                for k in m.keys() {
                    selector[k] = Value::Null;
                }
            }
            selector[HELD_NODE_LABEL] = json!("true");
            let original = if current.is_null() { "{}".to_owned() } else { current.to_string() };
            let patch = json!({"metadata": {"annotations": {ORIGINAL_NODE_SELECTOR: original, RESOURCE_HASH: null}},
                "spec": {"template": {"spec": {"nodeSelector": selector}}}});
            Some((patch, format!("Held {kind_word} {name}")))
        }
        _ => {
            let registration = registration?;
            let mut patch = json!({"metadata": {"annotations": {RESOURCE_HASH: null}}});
            let mut lines = Vec::new();
            for option in std::iter::once(&registration.suspend_options)
                .chain(&registration.custom_suspend_options)
            {
                if option.path.is_empty() {
                    continue;
                }
                let key = format!("{SUSPEND_PATH_PREFIX}{}", option.path);
                let typed = |text: &str| match option.value_type.as_str() {
                    "int" => json!(text.parse::<i64>().unwrap_or(0)),
                    "bool" => json!(text.parse::<bool>().unwrap_or(true)),
                    _ => json!(text),
                };
                let current = transform::at_path(obj, &option.path);
                if activate {
                    let Some(recorded) = annotation(obj, &key) else { continue };
                    let original = recorded.split_once(',').map_or(recorded, |(o, _)| o);
                    // A path the source never had is removed again, not set to a zero.
                    let value = if original.is_empty() { Value::Null } else { typed(original) };
                    transform::set_path(&mut patch, &option.path, value.clone());
                    patch["metadata"]["annotations"][&key] = Value::Null;
                    lines
                        .push(format!("Updated {} for {kind_word} {name} to {value}", option.path));
                } else {
                    if !migrated {
                        continue;
                    }
                    let suspended = transform::suspended_value(option);
                    if annotation(obj, &key).is_some() && current == Some(&suspended) {
                        continue;
                    }
                    let recorded = format!(
                        "{},{}",
                        transform::text_of(current),
                        transform::text_of(Some(&suspended))
                    );
                    patch["metadata"]["annotations"][&key] = json!(recorded);
                    transform::set_path(&mut patch, &option.path, suspended.clone());
                    lines.push(format!(
                        "Updated {} for {kind_word} {name} to {suspended}",
                        option.path
                    ));
                }
            }
            (!lines.is_empty()).then(|| (patch, lines.join("\n")))
        }
    }
}

/// What a switch did: one line per object changed, and one per object it could not change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchReport {
    /// `Updated replicas for deployment mysql/web to 3`, …
    pub changed: Vec<String>,
    /// `deployment mysql/web: <error>`, … (the switch carries on past each).
    pub failed: Vec<String>,
}

/// Activates or deactivates the standby in `namespaces` (every namespace when `None`). A failure
/// on one object is reported and the rest still switch; the schedules are marked either way.
pub async fn switch(
    client: &Client,
    namespaces: Option<&[String]>,
    user_registrations: &[ApplicationResource],
    direction: Direction,
) -> Result<SwitchReport, ActivateError> {
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let namespaces: Vec<String> = match namespaces {
        Some(list) => {
            for ns in list {
                if ns_api.get_opt(ns).await.map_err(cluster_err)?.is_none() {
                    return Err(ActivateError::NoNamespace(ns.clone()));
                }
            }
            list.to_vec()
        }
        None => ns_api
            .list(&ListParams::default())
            .await
            .map_err(cluster_err)?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect(),
    };
    let built_in = registrations::built_in();
    let mut report = SwitchReport::default();
    let mut schedule_type: Option<ApiResource> = None;
    for (resource, caps) in
        super::copy::discover(client, &mut report.failed).await.map_err(cluster_err)?
    {
        if caps.scope != Scope::Namespaced {
            continue;
        }
        if resource.group == avocet_types::API_GROUP && resource.kind == "MigrationSchedule" {
            schedule_type = Some(resource.clone());
            continue;
        }
        let registration =
            registrations::find(user_registrations, &built_in, &resource.group, &resource.kind);
        let relevant = kinds::scaled(&resource.group, &resource.kind)
            || matches!(
                (resource.group.as_str(), resource.kind.as_str()),
                ("batch", "CronJob") | ("apps", "DaemonSet")
            )
            || registration.is_some();
        if !relevant {
            continue;
        }
        for ns in &namespaces {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
            let objects = match api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) => {
                    report.failed.push(format!("{} in {ns}: {e}", resource.plural));
                    continue;
                }
            };
            for object in objects {
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                let Some((patch, line)) =
                    change_for(&resource.group, &resource.kind, &value, registration, direction)
                else {
                    continue;
                };
                let name = object.metadata.name.clone().unwrap_or_default();
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                };
                match api.patch(&name, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => report.changed.extend(line.lines().map(str::to_owned)),
                    Err(e) => report
                        .failed
                        .push(format!("{} {ns}/{name}: {e}", resource.kind.to_lowercase())),
                }
            }
        }
    }
    if let Some(resource) = schedule_type {
        mark_schedules(client, &resource, &namespaces, direction, &mut report).await;
    }
    Ok(report)
}

/// Sets `status.applicationActivated` on the static copies of the schedules that migrate these
/// namespaces (deactivation only touches static copies, as Stork does).
async fn mark_schedules(
    client: &Client,
    resource: &ApiResource,
    namespaces: &[String],
    direction: Direction,
    report: &mut SwitchReport,
) {
    let wanted = direction == Direction::Activate;
    let targets: BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    let schedules = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            report.failed.push(format!("migrationschedules: {e}"));
            return;
        }
    };
    for schedule in schedules {
        let value = serde_json::to_value(&schedule).unwrap_or(Value::Null);
        let migrated = value["spec"]["template"]["spec"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        let in_scope = targets
            .contains(value["metadata"]["namespace"].as_str().unwrap_or_default())
            || migrated.into_iter().any(|ns| targets.contains(ns));
        let static_copy =
            annotation(&value, "stork.libopenstorage.org/static-copy") == Some("true");
        if !in_scope
            || (!wanted && !static_copy)
            || value["status"]["applicationActivated"].as_bool() == Some(wanted)
        {
            continue;
        }
        let ns = schedule.metadata.namespace.clone().unwrap_or_default();
        let name = schedule.metadata.name.clone().unwrap_or_default();
        let namespaced = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, resource);
        let params =
            PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
        let marked = namespaced
            .patch_status(
                &name,
                &params,
                &Patch::Merge(json!({"status": {"applicationActivated": wanted}})),
            )
            .await;
        match marked {
            Ok(_) => report.changed.push(format!(
                "Setting the ApplicationActivated status in the MigrationSchedule {ns}/{name} to {wanted}"
            )),
            Err(e) => report.failed.push(format!("migrationschedule {ns}/{name}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_come_back_to_their_recorded_replicas_and_go_back_to_zero() {
        let standby = json!({"metadata": {"name": "web", "namespace": "mysql", "annotations": {MIGRATION_REPLICAS: "3"}}, "spec": {"replicas": 0}});
        let (patch, line) = change_for("apps", "Deployment", &standby, None, Direction::Activate)
            .expect("a change");
        assert_eq!(patch["spec"], json!({"replicas": 3}));
        assert!(
            patch["metadata"]["annotations"][RESOURCE_HASH].is_null(),
            "the next copy rewrites everything"
        );
        assert_eq!(line, "Updated replicas for deployment mysql/web to 3");
        let running = json!({"metadata": {"name": "web", "namespace": "mysql", "annotations": {MIGRATION_REPLICAS: "3"}}, "spec": {"replicas": 5}});
        let (patch, _) = change_for("apps", "Deployment", &running, None, Direction::Deactivate)
            .expect("a change");
        assert_eq!(
            patch["metadata"]["annotations"][MIGRATION_REPLICAS], "5",
            "the next activation brings back 5"
        );
        let owned = json!({"metadata": {"name": "rs", "ownerReferences": [{"uid": "x"}], "annotations": {MIGRATION_REPLICAS: "3"}}, "spec": {"replicas": 0}});
        assert!(change_for("apps", "ReplicaSet", &owned, None, Direction::Activate).is_none());
        let unmigrated = json!({"metadata": {"name": "other"}, "spec": {"replicas": 0}});
        assert!(change_for("apps", "Deployment", &unmigrated, None, Direction::Activate).is_none());
    }

    #[test]
    fn only_cron_jobs_avocet_suspended_are_restored_to_their_source_value() {
        let suspended = json!({"metadata": {"name": "b", "annotations": {ORIGINAL_SUSPEND: "false"}}, "spec": {"suspend": true}});
        let (patch, _) = change_for("batch", "CronJob", &suspended, None, Direction::Activate)
            .expect("a change");
        assert_eq!(patch["spec"], json!({"suspend": false}));
        assert!(
            patch["metadata"]["annotations"][ORIGINAL_SUSPEND].is_null(),
            "the record goes: a failback records anew"
        );
        let theirs = json!({"metadata": {"name": "b"}, "spec": {"suspend": true}});
        assert!(change_for("batch", "CronJob", &theirs, None, Direction::Activate).is_none());
        assert!(
            change_for("batch", "CronJob", &theirs, None, Direction::Deactivate).is_none(),
            "not migrated"
        );
        // Deactivating a live migrated CronJob records what it stops.
        let live = json!({"metadata": {"name": "b", "annotations": {MIGRATED: "true"}}, "spec": {"suspend": false}});
        let (patch, _) =
            change_for("batch", "CronJob", &live, None, Direction::Deactivate).expect("a change");
        assert_eq!(patch["spec"], json!({"suspend": true}));
        assert_eq!(patch["metadata"]["annotations"][ORIGINAL_SUSPEND], "false");
    }

    #[test]
    fn held_daemon_sets_are_released_with_their_selector() {
        let held = json!({"metadata": {"name": "a", "annotations": {ORIGINAL_NODE_SELECTOR: r#"{"disk":"ssd"}"#}},
            "spec": {"template": {"spec": {"nodeSelector": {HELD_NODE_LABEL: "true"}}}}});
        let (patch, _) =
            change_for("apps", "DaemonSet", &held, None, Direction::Activate).expect("a change");
        assert_eq!(
            patch["spec"]["template"]["spec"]["nodeSelector"],
            json!({HELD_NODE_LABEL: null, "disk": "ssd"})
        );
    }

    #[test]
    fn registered_paths_get_the_source_value_back() {
        let registration: ApplicationResource = serde_json::from_value(json!({"group": "cassandra.datastax.com",
            "version": "v1beta1", "kind": "CassandraDatacenter", "suspendOptions": {"path": "spec.stopped", "type": "bool"}}))
        .expect("registration");
        let standby = json!({"metadata": {"name": "dc1", "namespace": "mysql",
            "annotations": {"stork.libopenstorage.org/spec.stopped": "false,true"}}, "spec": {"stopped": true}});
        let (patch, line) = change_for(
            "cassandra.datastax.com",
            "CassandraDatacenter",
            &standby,
            Some(&registration),
            Direction::Activate,
        )
        .expect("a change");
        assert_eq!(patch["spec"], json!({"stopped": false}));
        assert_eq!(line, "Updated spec.stopped for cassandradatacenter mysql/dc1 to false");
        // A path the source never had is removed again rather than set to a zero.
        let replicas: ApplicationResource =
            serde_json::from_value(json!({"group": "rabbitmq.com", "version": "v1beta1",
            "kind": "RabbitmqCluster", "suspendOptions": {"path": "spec.replicas", "type": "int"}}))
            .expect("registration");
        let absent = json!({"metadata": {"name": "r", "namespace": "mq",
            "annotations": {"stork.libopenstorage.org/spec.replicas": ",0"}}, "spec": {"replicas": 0}});
        let (patch, _) = change_for(
            "rabbitmq.com",
            "RabbitmqCluster",
            &absent,
            Some(&replicas),
            Direction::Activate,
        )
        .expect("a change");
        assert!(patch["spec"]["replicas"].is_null(), "{patch}");
    }
}
