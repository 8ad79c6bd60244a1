//! The storkctl-like verbs against one `avocet serve` node: create, get, cancel and delete a
//! one-off migration; a policy in use cannot be deleted; errors name the object.

use std::time::Duration;

use crate::group::Group;

#[test]
fn one_off_migrations_and_deletes_behave_like_storkctl() {
    let group = Group::start(1);
    let node = group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| group.ctl(node, args);

    let (ok, out, err) =
        ctl(&["create", "migration", "once", "-n", "apps", "-c", "remote", "--namespaces", "apps"]);
    assert!(ok && out.trim() == "Migration once created successfully", "{out}{err}");
    let (ok, _, err) =
        ctl(&["create", "migration", "once", "-n", "apps", "-c", "remote", "--namespaces", "apps"]);
    assert!(!ok && err.contains("Migration once already exists in namespace apps"), "{err}");

    let (ok, out, _) = ctl(&["get", "migration", "once", "-n", "apps", "-o", "json"]);
    assert!(ok);
    let migration: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        migration["spec"]["startApplications"], true,
        "storkctl's default for create migration"
    );
    assert_eq!(migration["status"]["status"], "Pending");

    let (ok, out, err) = ctl(&["cancel", "migration", "once", "-n", "apps"]);
    assert!(ok && out.trim() == "Migration once cancelled", "{out}{err}");
    let (ok, out, _) = ctl(&["get", "migrations", "-n", "apps"]);
    assert!(
        ok && out.lines().nth(1).is_some_and(|row| row.contains("Final") && row.contains("Failed")),
        "{out}"
    );
    let (ok, _, err) = ctl(&["cancel", "migration", "once", "-n", "apps"]);
    assert!(!ok && err.contains("Migration apps/once already ended (Failed)"), "{err}");

    let (ok, out, _) = ctl(&["delete", "migration", "once", "-n", "apps"]);
    assert!(ok && out.trim() == "Migration once deleted successfully", "{out}");
    let (ok, _, err) = ctl(&["get", "migration", "once", "-n", "apps"]);
    assert!(!ok && err.contains("Migration apps/once not found"), "{err}");
    let (ok, out, _) = ctl(&["get", "migration", "-n", "apps"]);
    assert!(ok && out.trim() == "No resources found.", "{out}");

    // A policy a schedule uses cannot be deleted; the schedule first.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(
        &file,
        "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: nightly}\npolicy: {daily: {time: 10:14PM}}\n---\napiVersion: stork.libopenstorage.org/v1alpha1\nkind: MigrationSchedule\nmetadata: {name: app, namespace: apps}\nspec: {schedulePolicyName: nightly, template: {spec: {clusterPair: remote, namespaces: [apps]}}}\n",
    )
    .unwrap();
    let (ok, out, err) = ctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = ctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(ok && out.lines().all(|line| line.ends_with(" unchanged")), "{out}");
    let (ok, _, err) = ctl(&["delete", "schedulepolicy", "nightly"]);
    assert!(
        !ok && err.contains("SchedulePolicy nightly is used by MigrationSchedule apps/app"),
        "{err}"
    );
    let (ok, out, _) = ctl(&["delete", "migrationschedule", "app", "-n", "apps"]);
    assert!(ok && out.contains("MigrationSchedule app deleted successfully"), "{out}");
    let (ok, out, _) = ctl(&["delete", "sp", "nightly"]);
    assert!(ok && out.contains("SchedulePolicy nightly deleted successfully"), "{out}");

    // An invalid file stores nothing and names every bad field.
    std::fs::write(
        &file,
        "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: good}\npolicy: {daily: {time: 10:14PM}}\n---\napiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: bad}\npolicy: {daily: {time: 25:61PM}}\n",
    )
    .unwrap();
    let (ok, _, err) = ctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(
        !ok && err.contains("policy.daily.time: \"25:61PM\" is not a time like 10:14PM"),
        "{err}"
    );
    let (ok, out, _) = ctl(&["get", "schedulepolicy"]);
    assert!(ok && out.trim() == "No resources found.", "nothing half-written: {out}");
}
