//! Resource copy between two sandbox clusters, set up and read back with the real kubectl: a
//! realistic "mysql" namespace on the source, every standby transform checked on the
//! destination, a second copy that touches only what changed, and purge.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use avocet_sandbox::Sandbox;
use avocet_types::migration::{MigrationSpec, MigrationStatusType};
use avocet_workers::resources::activate::{Direction, switch};
use avocet_workers::resources::copy::{CopyReport, CopyRequest, copy};
use serde_json::{Value, json};
use tempfile::TempDir;

/// One sandbox cluster and what kubectl needs to reach it.
struct Cluster {
    sandbox: Sandbox,
    dir: TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let sandbox = Sandbox::start_local().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sandbox.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        Cluster { sandbox, dir }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is on the PATH (scripts/test.sh installs it)");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).unwrap()
    }

    fn apply_file(&self, name: &str, docs: &[Value]) {
        let path: PathBuf = self.dir.path().join(name);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": docs});
        std::fs::write(&path, list.to_string()).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }
}

fn mysql() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mysql", "labels": {"team": "db"}}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "cassandradatacenters.cassandra.datastax.com"},
            "spec": {"group": "cassandra.datastax.com", "scope": "Namespaced",
                "names": {"kind": "CassandraDatacenter", "plural": "cassandradatacenters", "shortNames": ["cassdc"]},
                "versions": [{"name": "v1beta1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": "/data/pv"}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "mysql"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard", "volumeName": "pv-data"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "mysql"},
            "data": {"my.cnf": "[mysqld]\nmax_connections=100\n"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scratch", "namespace": "mysql"},
            "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "mysql"},
            "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "mysql"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "mysql"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": "mysql"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "mysql"}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "mysql"},
            "spec": {"type": "NodePort", "selector": {"app": "db"}, "ports": [{"port": 3306}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "mysql", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"serviceAccountName": "app", "containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "mysql"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "mysql"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup", "namespace": "mysql"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "b", "image": "backup:1"}]}}}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "mysql"},
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "db", "port": {"number": 3306}}}}]}}]}}),
        json!({"apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "mysql"}, "spec": {"clusterName": "c1", "size": 3, "stopped": false}}),
    ]
}

fn spec() -> MigrationSpec {
    serde_json::from_value(
        json!({"clusterPair": "remote", "namespaces": ["mysql"], "purgeDeletedResources": true}),
    )
    .unwrap()
}

async fn run(source: &Cluster, destination: &Cluster, name: &str) -> CopyReport {
    let spec = spec();
    let request = CopyRequest {
        volume_paths: &std::collections::BTreeMap::new(),
        spec: &spec,
        migration_name: name,
        migration_namespace: "mysql",
        time: chrono::DateTime::parse_from_rfc3339("2026-11-29T10:15:00Z").unwrap().into(),
        registrations: &[],
    };
    let source_client = source.sandbox.client().await.unwrap();
    let destination_client = destination.sandbox.client().await.unwrap();
    copy(&source_client, &destination_client, &request).await.unwrap()
}

/// (kind/name → resourceVersion) of everything Avocet copied into the namespace.
fn versions(cluster: &Cluster) -> BTreeMap<String, String> {
    let listed = cluster.get(&["configmaps,secrets,serviceaccounts,roles,rolebindings,services,deployments,statefulsets,daemonsets,cronjobs,ingresses,pvc,cassdc", "-n", "mysql"]);
    listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["metadata"]["annotations"]["stork.libopenstorage.org/migrated"] == "true")
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                o["metadata"]["resourceVersion"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_namespace_becomes_a_standby_and_only_changes_travel_again() {
    let (source, destination) = (Cluster::start().await, Cluster::start().await);
    // As on any cluster, the definition goes first: kubectl maps every kind before it applies.
    let (definitions, objects): (Vec<Value>, Vec<Value>) =
        mysql().into_iter().partition(|d| d["kind"] == "CustomResourceDefinition");
    source.apply_file("crd.json", &definitions);
    source.apply_file("mysql.json", &objects);
    let source_svc = source.get(&["service", "db", "-n", "mysql"]);

    let first = run(&source, &destination, "mysql-interval-2026-11-29-101500").await;
    assert_eq!(first.status, MigrationStatusType::Successful, "{:#?}", first.resources);
    let kinds: Vec<&str> = first.resources.iter().map(|r| r.kind.as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "CronJob",
        "Ingress",
        "CassandraDatacenter",
    ] {
        assert!(kinds.contains(&kind), "{kind} was not copied: {kinds:?}");
    }
    let position = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(position("CustomResourceDefinition") < position("ConfigMap"));
    assert!(position("PersistentVolume") < position("PersistentVolumeClaim"));
    assert!(position("PersistentVolumeClaim") < position("StatefulSet"));
    assert!(position("Deployment") < position("Ingress"));

    // Workloads are scaled to 0, remembering their replicas, and marked.
    let web = destination.get(&["deployment", "web", "-n", "mysql"]);
    assert_eq!(web["spec"]["replicas"], 0);
    let annotations = &web["metadata"]["annotations"];
    assert_eq!(annotations["stork.libopenstorage.org/migrationReplicas"], "3");
    assert_eq!(annotations["stork.libopenstorage.org/migrated"], "true");
    assert_eq!(
        annotations["stork.libopenstorage.org/migrationName"],
        "mysql-interval-2026-11-29-101500"
    );
    assert_eq!(annotations["stork.libopenstorage.org/migrationNamespace"], "mysql");
    assert_eq!(annotations["stork.libopenstorage.org/migrationTime"], "2026-11-29-101500");
    assert!(
        annotations["stork.libopenstorage.org/resource-hash"]
            .as_str()
            .is_some_and(|h| h.parse::<u64>().is_ok())
    );
    assert_eq!(web["metadata"]["labels"]["stork.libopenstorage.org/migrated"], "true");
    assert!(web["metadata"].get("ownerReferences").is_none());
    let source_web = source.get(&["deployment", "web", "-n", "mysql"]);
    assert_ne!(
        web["metadata"]["uid"], source_web["metadata"]["uid"],
        "the destination has its own identity"
    );
    let db = destination.get(&["statefulset", "db", "-n", "mysql"]);
    assert_eq!(
        (
            db["spec"]["replicas"].as_i64(),
            db["metadata"]["annotations"]["stork.libopenstorage.org/migrationReplicas"].as_str()
        ),
        (Some(0), Some("1"))
    );

    // CronJobs suspended, DaemonSets held, the registered CR stopped with its value recorded.
    let backup = destination.get(&["cronjob", "backup", "-n", "mysql"]);
    assert_eq!(backup["spec"]["suspend"], true);
    let agent = destination.get(&["daemonset", "agent", "-n", "mysql"]);
    assert_eq!(
        agent["spec"]["template"]["spec"]["nodeSelector"],
        json!({"avocet.dev/standby-hold": "true"})
    );
    let dc = destination.get(&["cassdc", "dc1", "-n", "mysql"]);
    assert_eq!(dc["spec"]["stopped"], true);
    assert_eq!(
        dc["metadata"]["annotations"]["stork.libopenstorage.org/spec.stopped"],
        "false,true"
    );
    assert_eq!(dc["spec"]["size"], 3);

    // Services get the destination's own cluster IP and keep their node ports.
    let svc = destination.get(&["service", "db", "-n", "mysql"]);
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")));
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], source_svc["spec"]["ports"][0]["nodePort"]);
    // `--raw`: kubectl hides managedFields from -o json (1.21 and later).
    let raw: Value = serde_json::from_str(&destination.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/mysql/services/db",
    ]))
    .unwrap();
    let owned_ip = raw["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["manager"] == "avocet")
        .any(|m| m["fieldsV1"]["f:spec"].get("f:clusterIP").is_some());
    assert!(!owned_ip, "Avocet never claims the destination's cluster IP");

    // The volume: Retain, no claim of the source's, its class given back; the claim Bound.
    let pv = destination.get(&["pv", "pv-data"]);
    assert_eq!(
        pv["spec"]["persistentVolumeReclaimPolicy"], "Delete",
        "restored from the annotation once applied"
    );
    assert_eq!(pv["metadata"]["annotations"]["stork.libopenstorage.org/reclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["storageClassName"], "standard");
    assert!(pv["spec"].get("claimRef").is_none());
    let pvc = destination.get(&["pvc", "data", "-n", "mysql"]);
    assert_eq!(pvc["status"]["phase"], "Bound");
    destination.get(&["configmap", "cfg", "-n", "mysql"]);
    destination.get(&["secret", "creds", "-n", "mysql"]);
    destination.get(&["rolebinding", "reader", "-n", "mysql"]);
    destination.get(&["ingress", "web", "-n", "mysql"]);
    assert_eq!(destination.get(&["namespace", "mysql"])["metadata"]["labels"]["team"], "db");

    // A second copy after one ConfigMap changed writes that ConfigMap and nothing else.
    let before = versions(&destination);
    source.kubectl(&[
        "patch",
        "configmap",
        "cfg",
        "-n",
        "mysql",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"my.cnf":"[mysqld]\nmax_connections=200\n"}}"#,
    ]);
    let second = run(&source, &destination, "mysql-interval-2026-11-29-103000").await;
    assert_eq!(second.status, MigrationStatusType::Successful);
    assert_eq!(second.applied, 1, "{:#?}", second.resources);
    let after = versions(&destination);
    let changed: Vec<&String> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k).collect();
    assert_eq!(changed, ["ConfigMap/cfg"]);
    assert!(
        destination.get(&["configmap", "cfg", "-n", "mysql"])["data"]["my.cnf"]
            .as_str()
            .unwrap()
            .contains("200")
    );

    // An object gone from the source is purged from the standby; nothing else is.
    source.kubectl(&["delete", "configmap", "scratch", "-n", "mysql"]);
    destination.kubectl(&[
        "create",
        "configmap",
        "standby-only",
        "-n",
        "mysql",
        "--from-literal=k=v",
    ]);
    // What a controller creates on the standby copies its owner's annotations (a Deployment's
    // ReplicaSets do): it is not Avocet's to purge.
    let web_uid = destination.get(&["deployment", "web", "-n", "mysql"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-child", "namespace": "mysql",
        "annotations": {"stork.libopenstorage.org/migrated": "true", "stork.libopenstorage.org/migrationNamespace": "mysql"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": web_uid}]}});
    destination.apply_file("child.json", &[child]);
    let third = run(&source, &destination, "mysql-interval-2026-11-29-104500").await;
    let purged: Vec<&str> = third
        .resources
        .iter()
        .filter(|r| r.status == MigrationStatusType::Purged)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(purged, ["scratch"]);
    let left = destination.kubectl(&["get", "configmaps", "-n", "mysql", "-o", "name"]);
    assert!(
        !left.contains("configmap/scratch") && left.contains("configmap/standby-only"),
        "{left}"
    );
    assert!(left.contains("configmap/web-child"), "owned objects are never purged: {left}");

    // Failover: activation brings the applications back as they ran on the source.
    let client = destination.sandbox.client().await.unwrap();
    let mysql = ["mysql".to_owned()];
    let report = switch(&client, Some(&mysql), &[], Direction::Activate).await.unwrap();
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let lines = report.changed;
    for expected in [
        "Updated replicas for deployment mysql/web to 3",
        "Updated replicas for statefulset mysql/db to 1",
        "Updated suspend for cronjob mysql/backup to false",
        "Released daemonset mysql/agent",
        "Updated spec.stopped for cassandradatacenter mysql/dc1 to false",
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in {lines:#?}");
    }
    assert_eq!(destination.get(&["deployment", "web", "-n", "mysql"])["spec"]["replicas"], 3);
    assert_eq!(destination.get(&["statefulset", "db", "-n", "mysql"])["spec"]["replicas"], 1);
    assert_eq!(destination.get(&["cronjob", "backup", "-n", "mysql"])["spec"]["suspend"], false);
    assert!(destination.get(&["daemonset", "agent", "-n", "mysql"])["spec"]["template"]["spec"]["nodeSelector"].as_object().is_none_or(serde_json::Map::is_empty));
    assert_eq!(destination.get(&["cassdc", "dc1", "-n", "mysql"])["spec"]["stopped"], false);
    assert!(
        switch(&client, Some(&mysql), &[], Direction::Activate).await.unwrap().changed.is_empty(),
        "activating twice changes nothing"
    );

    // Failback preparation: deactivation stops them again.
    let lines = switch(&client, Some(&mysql), &[], Direction::Deactivate).await.unwrap().changed;
    assert!(
        lines.iter().any(|l| l == "Updated replicas for deployment mysql/web to 0"),
        "{lines:#?}"
    );
    assert_eq!(destination.get(&["deployment", "web", "-n", "mysql"])["spec"]["replicas"], 0);
    assert_eq!(destination.get(&["cronjob", "backup", "-n", "mysql"])["spec"]["suspend"], true);
    assert_eq!(
        destination.get(&["daemonset", "agent", "-n", "mysql"])["spec"]["template"]["spec"]["nodeSelector"],
        json!({"avocet.dev/standby-hold": "true"})
    );
    assert_eq!(destination.get(&["cassdc", "dc1", "-n", "mysql"])["spec"]["stopped"], true);
}
