//! The controller: Stork resources applied with kubectl to the source cluster drive the
//! scheduler, and the scheduler's migrations, status and events come back as resources.

use std::path::Path;
use std::time::Duration;

use avocet_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::group::{Group, kubectl};

fn apply(kubeconfig: &Path, name: &str, docs: &[Value]) {
    let file = kubeconfig.parent().unwrap().join(name);
    std::fs::write(&file, json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string())
        .unwrap();
    let (ok, out, err) = kubectl(kubeconfig, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

fn get(kubeconfig: &Path, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let (ok, out, _) = kubectl(kubeconfig, &all);
    ok.then(|| serde_json::from_str(&out).unwrap())
}

#[test]
fn stork_resources_drive_the_scheduler_and_results_come_back_as_resources() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let sandbox = runtime.block_on(Sandbox::start_local()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("source.kubeconfig");
    sandbox.write_kubeconfig(&kubeconfig).unwrap();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crds");
    let (ok, out, err) = kubectl(&kubeconfig, &["apply", "-f", crds.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let group = Group::start_with(1, &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let node = group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| group.ctl(node, args);

    apply(
        &kubeconfig,
        "namespace.json",
        &[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})],
    );
    // The policy first: a schedule whose policy arrives later owes slots only from then on
    // (its creation slot would be past), and the controller mirrors kinds in any order.
    apply(
        &kubeconfig,
        "policy.json",
        &[
            json!({"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "SchedulePolicy",
            "metadata": {"name": "every-minute"}, "policy": {"interval": {"intervalMinutes": 1}}}),
            json!({"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "ClusterPair",
            "metadata": {"name": "remote", "namespace": "apps"},
            "spec": {"config": {"clusters": {"dest": {"server": "https://127.0.0.1:1"}},
                "users": {"admin": {"token": "t"}}, "contexts": {"dest-admin": {"cluster": "dest", "user": "admin"}},
                "current-context": "dest-admin"}, "options": {}}}),
        ],
    );
    group.eventually(Duration::from_secs(30), "the policy in the catalog", || {
        ctl(&["get", "schedulepolicy", "every-minute"]).0.then_some(())
    });
    apply(
        &kubeconfig,
        "stork.json",
        &[
            json!({"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "MigrationSchedule",
            "metadata": {"name": "apps-dr", "namespace": "apps"},
            "spec": {"schedulePolicyName": "every-minute",
                "template": {"spec": {"clusterPair": "remote", "namespaces": ["apps"]}}}}),
            json!({"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "SchedulePolicy",
            "metadata": {"name": "broken"}, "policy": {"daily": {"time": "25:61PM"}}}),
        ],
    );

    // Specs in: the schedule reaches the scheduler, through the same validation as avocetctl.
    group.eventually(Duration::from_secs(30), "the schedule in the catalog", || {
        let (ok, out, _) = ctl(&["get", "migrationschedule", "apps-dr", "-n", "apps"]);
        ok.then_some(out)
    });
    let (ok, _, err) = ctl(&["get", "schedulepolicy", "broken"]);
    assert!(!ok, "an invalid resource is never stored: {err}");
    let invalid = group.eventually(Duration::from_secs(30), "an Invalid event", || {
        let events = get(&kubeconfig, &["events", "-n", "default"])?;
        events["items"].as_array()?.iter().find(|e| e["reason"] == "Invalid").cloned()
    });
    assert_eq!(invalid["involvedObject"]["name"], "broken");
    assert!(invalid["message"].as_str().unwrap().contains("policy.daily.time"), "{invalid}");

    // Migrations out: the fired migration is a resource owned by the schedule's.
    let migration = group.eventually(Duration::from_secs(30), "a Migration resource", || {
        let list = get(&kubeconfig, &["migrations", "-n", "apps"])?;
        list["items"].as_array()?.first().cloned()
    });
    assert_eq!(migration["metadata"]["ownerReferences"][0]["kind"], "MigrationSchedule");
    assert_eq!(migration["spec"]["clusterPair"], "remote");
    let name = migration["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("apps-dr-interval-"), "{name}");

    // Status out: the schedule's status and the migration's, as the catalog has them.
    group.eventually(Duration::from_secs(30), "schedule status written back", || {
        let schedule = get(&kubeconfig, &["migrationschedule", "apps-dr", "-n", "apps"])?;
        schedule["status"]["items"]["Interval"]
            .as_array()
            .filter(|items| !items.is_empty())
            .cloned()
    });
    group.eventually(Duration::from_secs(30), "migration status written back", || {
        let migration = get(&kubeconfig, &["migration", &name, "-n", "apps"])?;
        migration["status"]["status"].as_str().map(str::to_owned)
    });

    // Events out: the scheduler's events on the schedule's resource.
    group.eventually(Duration::from_secs(30), "a Fired event", || {
        let events = get(&kubeconfig, &["events", "-n", "apps"])?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "Fired" && e["involvedObject"]["name"] == "apps-dr")
            .cloned()
    });

    // Deleting the schedule's resource deletes the schedule and its migrations, then the resource.
    let (ok, out, err) = kubectl(
        &kubeconfig,
        &["delete", "migrationschedule", "apps-dr", "-n", "apps", "--timeout=60s"],
    );
    assert!(ok, "{out}{err}");
    group.eventually(Duration::from_secs(30), "the schedule gone from the catalog", || {
        let (ok, _, _) = ctl(&["get", "migrationschedule", "apps-dr", "-n", "apps"]);
        (!ok).then_some(())
    });
    let left = get(&kubeconfig, &["migrations", "-n", "apps"]).unwrap();
    assert!(left["items"].as_array().unwrap().is_empty(), "{left}");
    runtime.block_on(sandbox.shutdown());
}
