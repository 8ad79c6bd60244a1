//! The process: a token is required when given, the kubeconfig it writes is all a client needs,
//! and objects survive a SIGKILL and restart with `--data-dir`.

use serde_json::json;

use crate::harness::{Sandbox, TOKEN};

#[test]
fn a_wrong_token_gets_401_and_objects_survive_a_kill() {
    let mut sandbox = Sandbox::start();
    let kubeconfig = std::fs::read_to_string(sandbox.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains("current-context: sandbox") && kubeconfig.contains(TOKEN),
        "{kubeconfig}"
    );

    let wrong = sandbox.dir.path().join("wrong-kubeconfig");
    std::fs::write(&wrong, kubeconfig.replace(TOKEN, "not-the-token")).unwrap();
    let out = sandbox.kubectl_command(&wrong).args(["get", "namespaces"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && (err.contains("Unauthorized") || err.contains("provide credentials")),
        "401: {err}"
    );

    let namespaces = sandbox.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(&format!("namespace/{ns}")), "{namespaces}");
    }
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "default"},
        "data": {"k": "v"}});
    sandbox.ok(&["create", "-f", &sandbox.manifest("kept.json", &[cm])]);
    let before = sandbox.get_json(&["configmap", "kept"]);

    sandbox.kill();
    sandbox.spawn();
    let after = sandbox.get_json(&["configmap", "kept"]);
    assert_eq!(after, before, "the same object, uid and resourceVersion after a restart");
    sandbox.ok(&["patch", "configmap", "kept", "--type", "merge", "-p", r#"{"data":{"k":"w"}}"#]);
    let patched = sandbox.get_json(&["configmap", "kept"]);
    let (old, new) = (
        before["metadata"]["resourceVersion"].as_str().unwrap(),
        patched["metadata"]["resourceVersion"].as_str().unwrap(),
    );
    assert!(
        new.parse::<u64>().unwrap() > old.parse::<u64>().unwrap(),
        "versions keep growing across restarts"
    );
}
