//! Rules against a sandbox whose pods/exec runs real local processes: which pods a rule
//! selects, `runInSinglePod`, background commands that end too early or hold too long, the
//! post-exec ban on background actions, and the sandbox's own exec refusals.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};
use avocet_types::rule::Rule;
use avocet_workers::rules::{Holding, RuleContext, RuleSettings, run_rule, take};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, AttachParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn pod(client: &kube::Client, name: &str, app: &str, phase: &str, containers: &[&str]) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "db");
    let containers: Vec<_> =
        containers.iter().map(|c| json!({"name": c, "image": "busybox"})).collect();
    let pod = json!({
        "metadata": {"name": name, "namespace": "db", "labels": {"app": app}},
        "spec": {"containers": containers}
    });
    pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    let status = json!({"status": {"phase": phase}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

/// A sandbox with exec under `root`, namespace db and pods db-0, db-1 (Running), db-2
/// (Pending), all app=db, and web-0 (Running, app=web).
async fn cluster(root: &Path) -> (Sandbox, kube::Client) {
    let config = SandboxConfig { exec_root: Some(root.to_owned()), ..SandboxConfig::local() };
    let sandbox = Sandbox::start(config).await.unwrap();
    let client = sandbox.client().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": "db"}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    pod(&client, "db-0", "db", "Running", &["db"]).await;
    pod(&client, "db-1", "db", "Running", &["db", "sidecar"]).await;
    pod(&client, "db-2", "db", "Pending", &["db"]).await;
    pod(&client, "web-0", "web", "Running", &["web"]).await;
    (sandbox, client)
}

fn rule(actions: serde_json::Value) -> Rule {
    serde_json::from_value(json!({
        "metadata": {"name": "r", "namespace": "db"},
        "rules": [{"podSelector": {"app": "db"}, "container": "db", "actions": actions}]
    }))
    .unwrap()
}

fn fast() -> RuleSettings {
    RuleSettings {
        attempts: 1,
        retry_after: Duration::from_millis(10),
        background_timeout: Duration::from_secs(10),
        hold_limit: Duration::from_secs(30),
        command_timeout: Duration::from_secs(30),
    }
}

const PRE: RuleContext<'static> =
    RuleContext { field: "spec.preExecRule", token: 1, background_allowed: true };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_runs_in_the_running_pods_its_selector_picks_and_single_pod_takes_the_first() {
    let root = tempfile::tempdir().unwrap();
    let (_sandbox, client) = cluster(root.path()).await;
    let namespaces = vec!["db".to_owned()];
    let actions = json!([
        {"type": "command", "value": "echo \"$POD_NAME\" > all.txt"},
        {"type": "command", "value": "touch single.txt", "runInSinglePod": true}
    ]);
    let holding = Holding::default();
    run_rule(&client, &rule(actions), &namespaces, PRE, &fast(), &holding).await.unwrap();
    let ran = |pod: &str, file: &str| root.path().join("db").join(pod).join(file).exists();
    assert!(ran("db-0", "all.txt") && ran("db-1", "all.txt"));
    assert!(!ran("db-2", "all.txt"), "a Pending pod is skipped");
    assert!(!ran("web-0", "all.txt"), "a pod the selector does not pick is skipped");
    assert!(ran("db-0", "single.txt") && !ran("db-1", "single.txt"));
    let text = std::fs::read_to_string(root.path().join("db/db-1/all.txt")).unwrap();
    assert_eq!(text, "db-1\n", "the command ran with the pod's environment");
    assert!(take(&holding).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_commands_fail_when_they_end_early_or_outlive_their_hold() {
    let root = tempfile::tempdir().unwrap();
    let (_sandbox, client) = cluster(root.path()).await;
    let namespaces = vec!["db".to_owned()];
    let single = |value: &str| {
        rule(
            json!([{"type": "command", "value": value, "background": true, "runInSinglePod": true}]),
        )
    };

    let early = single("echo broken >&2; exit 1; ${WAIT_CMD}");
    let holding = Holding::default();
    let error = run_rule(&client, &early, &namespaces, PRE, &fast(), &holding).await.unwrap_err();
    for part in
        ["spec.preExecRule \"r\"", "rules[0].actions[0]", "db/db-0", "before it reached", "broken"]
    {
        assert!(error.contains(part), "{part:?} in {error:?}");
    }

    let settings = RuleSettings { hold_limit: Duration::from_millis(400), ..fast() };
    let holding = Holding::default();
    run_rule(&client, &single("${WAIT_CMD}"), &namespaces, PRE, &settings, &holding).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let error = take(&holding).release().await.unwrap_err();
    assert!(error.contains("its hold ran out before the release"), "{error}");

    let post = RuleContext { field: "spec.postExecRule", token: 2, background_allowed: false };
    let error = run_rule(&client, &single("${WAIT_CMD}"), &namespaces, post, &fast(), &holding)
        .await
        .unwrap_err();
    assert!(error.contains("spec.postExecRule \"r\": rules[0].actions[0].background is true, but background actions are not allowed in a post-exec rule"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_exec_without_a_root_in_a_pending_pod_or_an_unknown_container() {
    let root = tempfile::tempdir().unwrap();
    let (_sandbox, client) = cluster(root.path()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "db");
    let params = || AttachParams::default().stdin(false).stdout(true).stderr(true);
    let refused = |error: kube::Error| error.to_string();
    let pending = pods.exec("db-2", ["true"], &params().container("db")).await;
    assert!(refused(pending.err().unwrap()).contains("pod db/db-2 is not running"));
    let wrong = pods.exec("db-0", ["true"], &params().container("nope")).await;
    assert!(refused(wrong.err().unwrap()).contains("container nope is not valid for pod db-0"));
    let unnamed = pods.exec("db-1", ["true"], &params()).await;
    assert!(refused(unnamed.err().unwrap()).contains("choose one of: [db sidecar]"));

    let plain = Sandbox::start_local().await.unwrap();
    let plain_client = plain.client().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(plain_client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": "db"}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    pod(&plain_client, "db-0", "db", "Running", &["db"]).await;
    let pods: Api<Pod> = Api::namespaced(plain_client, "db");
    let off = pods.exec("db-0", ["true"], &AttachParams::default().container("db")).await;
    assert!(refused(off.err().unwrap()).contains("pods/exec is off in this sandbox"));
}
