//! `avocetctl activate|deactivate migrations` against a standby, read back with kubectl.

use std::process::Command;

use serde_json::json;

use crate::harness::Sandbox;

fn avocetctl(sandbox: &Sandbox, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .args(args)
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn activation_restores_replicas_and_deactivation_stops_them() {
    let sandbox = Sandbox::start();
    let standby = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mysql"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "mysql",
                "annotations": {"stork.libopenstorage.org/migrationReplicas": "3", "stork.libopenstorage.org/migrated": "true"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "not-migrated", "namespace": "mysql"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}}}}),
    ];
    sandbox.ok(&["create", "-f", &sandbox.manifest("standby.json", &standby)]);

    let (ok, stdout, stderr) = avocetctl(&sandbox, &["activate", "migrations", "-n", "mysql"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "Updated replicas for deployment mysql/web to 3\n");
    assert_eq!(sandbox.get_json(&["deployment", "web", "-n", "mysql"])["spec"]["replicas"], 3);
    assert_eq!(
        sandbox.get_json(&["deployment", "not-migrated", "-n", "mysql"])["spec"]["replicas"],
        0
    );

    let (ok, stdout, _) = avocetctl(&sandbox, &["activate", "migrations", "-n", "mysql"]);
    assert!(ok && stdout.starts_with("Nothing to activate"), "{stdout}");

    let (ok, stdout, stderr) =
        avocetctl(&sandbox, &["deactivate", "migrations", "--all-namespaces"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "Updated replicas for deployment mysql/web to 0\n");
    assert_eq!(sandbox.get_json(&["deployment", "web", "-n", "mysql"])["spec"]["replicas"], 0);

    let (ok, _, stderr) = avocetctl(&sandbox, &["activate", "migrations", "-n", "nowhere"]);
    assert!(!ok && stderr.contains("namespace \"nowhere\" does not exist"), "{stderr}");
}
