//! The sandbox issue's "done means", with the real kubectl: every kind Avocet copies round-trips
//! through `get -o json`, and label, scale, merge patch, apply (twice), delete, watch, stale
//! updates, paging and bad requests behave as on a real cluster.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sandbox, contains};

fn mysql_namespace() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mysql", "labels": {"team": "db"}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "mysql", "labels": {"app": "web"}, "annotations": {"owner": "platform"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "primary"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "mysql"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4",
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "mysql"},
            "spec": {"type": "NodePort", "selector": {"app": "db"}, "ports": [{"name": "mysql", "port": 3306, "targetPort": 3306}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "mysql"},
            "data": {"my.cnf": "[mysqld]\nmax_connections=100\n"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "mysql"},
            "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard", "hostPath": {"path": "/data/pv"}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "mysql"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard", "volumeName": "pv-data"}}),
    ]
}

fn cassandra_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "cassandradatacenters.cassandra.datastax.com"},
        "spec": {"group": "cassandra.datastax.com", "scope": "Namespaced",
            "names": {"kind": "CassandraDatacenter", "listKind": "CassandraDatacenterList",
                "plural": "cassandradatacenters", "singular": "cassandradatacenter", "shortNames": ["cassdc"]},
            "versions": [{"name": "v1beta1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn cassandra_dc() -> Value {
    json!({"apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "mysql"},
        "spec": {"clusterName": "c1", "size": 3, "stopped": false, "racks": [{"name": "r1"}, {"name": "r2"}]}})
}

/// The path kubectl would use for each object, to read it back.
fn kubectl_ref(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap().to_lowercase();
    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
    let mut args = vec![kind, name];
    if let Some(ns) = doc["metadata"]["namespace"].as_str() {
        args.extend(["-n".to_owned(), ns.to_owned()]);
    }
    args
}

#[test]
fn kubectl_round_trips_every_kind_and_every_verb_behaves() {
    let sandbox = Sandbox::start();
    let docs = mysql_namespace();
    let file = sandbox.manifest("mysql.json", &docs);
    let created = sandbox.ok(&["create", "-f", &file]);
    assert!(created.contains("deployment.apps/web created"), "{created}");
    let crd_file = sandbox.manifest("crd.json", &[cassandra_crd()]);
    sandbox.ok(&["create", "-f", &crd_file]);
    let dc_file = sandbox.manifest("dc.json", &[cassandra_dc()]);
    sandbox.ok(&["create", "-f", &dc_file]);

    // Every field that was set comes back; the server added uid, resourceVersion and the rest.
    for doc in docs.iter().chain([&cassandra_crd(), &cassandra_dc()]) {
        let args = kubectl_ref(doc);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = sandbox.get_json(&args);
        contains(&got, doc).unwrap_or_else(|e| panic!("{args:?}: {e}\n{got:#}"));
        assert!(got["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "{got}");
        assert!(got["metadata"]["resourceVersion"].as_str().is_some(), "{got}");
    }
    // `-o yaml` prints the same object.
    let yaml = sandbox.ok(&["get", "deployment", "web", "-n", "mysql", "-o", "yaml"]);
    let from_yaml: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, sandbox.get_json(&["deployment", "web", "-n", "mysql"]));
    let svc = sandbox.get_json(&["service", "db", "-n", "mysql"]);
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")), "{svc}");
    assert!(
        svc["spec"]["ports"][0]["nodePort"].as_u64().is_some_and(|p| (30000..=32767).contains(&p)),
        "{svc}"
    );
    let pvc = sandbox.get_json(&["pvc", "data", "-n", "mysql"]);
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    assert!(
        sandbox.ok(&["get", "cassdc", "-n", "mysql"]).contains("dc1"),
        "short names resolve through discovery"
    );

    // label, scale and a merge patch.
    sandbox.ok(&["label", "deployment", "web", "-n", "mysql", "tier=frontend"]);
    sandbox.ok(&["scale", "deployment", "web", "-n", "mysql", "--replicas=5"]);
    sandbox.ok(&["scale", "statefulset", "db", "-n", "mysql", "--replicas=2"]);
    sandbox.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-n",
        "mysql",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    sandbox.ok(&[
        "patch",
        "cassdc",
        "dc1",
        "-n",
        "mysql",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    let web = sandbox.get_json(&["deployment", "web", "-n", "mysql"]);
    assert_eq!(web["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    assert_eq!(web["spec"]["replicas"], 5);
    assert_eq!(web["metadata"]["generation"], 2, "scaling changes the spec: {web}");
    assert_eq!(sandbox.get_json(&["statefulset", "db", "-n", "mysql"])["spec"]["replicas"], 2);
    assert_eq!(sandbox.get_json(&["configmap", "cfg", "-n", "mysql"])["data"]["extra"], "1");
    assert_eq!(sandbox.get_json(&["cassdc", "dc1", "-n", "mysql"])["spec"]["size"], 5);

    // apply -f twice: the first takes over the objects, the second changes only what changed.
    let applied = sandbox.ok(&["apply", "-f", &file]);
    assert!(applied.contains("deployment.apps/web configured"), "{applied}");
    let mut changed = docs.clone();
    changed[1]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    changed[1]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("standby");
    let file2 = sandbox.manifest("mysql-v2.json", &changed);
    let applied = sandbox.ok(&["apply", "-f", &file2]);
    assert!(applied.contains("deployment.apps/web configured"), "{applied}");
    assert!(applied.contains("configmap/cfg unchanged"), "{applied}");
    assert!(applied.contains("service/db unchanged"), "{applied}");
    let web = sandbox.get_json(&["deployment", "web", "-n", "mysql"]);
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(container["env"], json!([{"name": "MODE", "value": "standby"}]));
    assert_eq!(web["spec"]["replicas"], 3, "apply restores the declared replicas");
    assert_eq!(web["metadata"]["labels"]["tier"], "frontend", "apply keeps labels it never set");
    let cfg = sandbox.get_json(&["configmap", "cfg", "-n", "mysql"]);
    assert_eq!(cfg["data"]["extra"], "1", "a three-way merge keeps fields the manifest never had");

    // A stale update gets 409.
    let stale = sandbox.get_json(&["configmap", "cfg", "-n", "mysql"]);
    sandbox.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-n",
        "mysql",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"x":"2"}}"#,
    ]);
    let stale_path = sandbox.dir.path().join("stale.json");
    std::fs::write(&stale_path, stale.to_string()).unwrap();
    let err = sandbox.fails(&["replace", "-f", stale_path.to_str().unwrap()]);
    assert!(err.contains("Conflict") && err.contains("the object has been modified"), "{err}");

    // A list with --chunk-size pages through continue tokens.
    for i in 0..7 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("page-{i}"), "namespace": "mysql"}});
        sandbox.ok(&["create", "-f", &sandbox.manifest(&format!("page-{i}.json"), &[cm])]);
    }
    let out = sandbox.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "mysql",
        "--chunk-size=3",
        "-o",
        "name",
        "-v=6",
    ]);
    let (stdout, log) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("configmap/page-")).count(), 7, "{stdout}");
    let pages = log.lines().filter(|l| l.contains("/configmaps?") && l.contains("limit=3")).count();
    let continued = log.lines().filter(|l| l.contains("continue=")).count();
    assert!(pages >= 3 && continued >= 2, "expected at least three pages:\n{log}");

    // get --watch sees an object come and go.
    let mut watcher = sandbox
        .kubectl_command(&sandbox.kubeconfig())
        .args([
            "get",
            "configmaps",
            "-n",
            "mysql",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The initial listing arrives first; wait for the last initial object before changing anything.
    let mut seen = String::new();
    while !seen.contains("page-6") {
        seen.push_str(
            &rx.recv_timeout(Duration::from_secs(20)).expect("the watch lists existing objects"),
        );
    }
    let w = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": "mysql"}});
    sandbox.ok(&["create", "-f", &sandbox.manifest("watched.json", &[w])]);
    sandbox.ok(&["delete", "configmap", "watched", "-n", "mysql"]);
    let mut events = String::new();
    while !events.contains("\"DELETED\"") {
        events.push_str(
            &rx.recv_timeout(Duration::from_secs(20)).expect("the watch reports the deletion"),
        );
    }
    assert!(events.contains("\"ADDED\""), "{events}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    // delete: gone, and reads say so.
    sandbox.ok(&["delete", "deployment", "web", "-n", "mysql"]);
    let err = sandbox.fails(&["get", "deployment", "web", "-n", "mysql"]);
    assert!(
        err.contains("NotFound") && err.contains("deployments.apps \"web\" not found"),
        "{err}"
    );

    // Bad requests get Status errors with the right codes.
    let err = sandbox.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/mysql/configmaps?labelSelector=app+in+web",
    ]);
    assert!(err.contains("BadRequest"), "400: {err}");
    let err = sandbox.fails(&["create", "-f", &file]);
    assert!(err.contains("AlreadyExists"), "409: {err}");
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": "mysql"}});
    let err = sandbox.fails(&["create", "-f", &sandbox.manifest("bad.json", &[bad])]);
    assert!(err.contains("is invalid") && err.contains("metadata.name"), "422: {err}");
    let err = sandbox.fails(&[
        "patch",
        "statefulset",
        "db",
        "-n",
        "mysql",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"serviceName":"x"}}"#,
    ]);
    assert!(err.contains("Forbidden: updates to statefulset spec"), "422: {err}");

    // Deleting the namespace deletes what is in it.
    sandbox.ok(&["delete", "namespace", "mysql"]);
    let left = sandbox.ok(&["get", "configmaps,cassdc", "-A", "-o", "name"]);
    assert!(!left.contains("cfg") && !left.contains("dc1"), "{left}");
}
