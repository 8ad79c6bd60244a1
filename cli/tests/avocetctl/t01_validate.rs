//! `avocetctl validate`: the seed's YAML passes; each bad field is named with its value.

use std::io::Write;

use crate::{avocetctl, repo_root, texts};

#[test]
fn every_example_of_the_async_dr_guide_passes() {
    let dir = repo_root().join("examples/asynchronous-dr");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 5, "the guide has five YAML examples: {files:?}");
    for file in files {
        let output = avocetctl(&["validate", "-f", file.to_str().unwrap()]);
        let (out, err) = texts(&output);
        assert!(output.status.success(), "{}: {err}", file.display());
        assert!(out.starts_with("ok ") && out.lines().count() == 1, "{}: {out}", file.display());
        assert!(err.is_empty(), "{}: {err}", file.display());
    }
}

#[test]
fn all_documents_of_one_file_are_checked() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for name in ["testpolicy.yaml", "migrationschedule.yaml", "clusterpair-dr.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("examples/asynchronous-dr").join(name))
            .unwrap();
        writeln!(file, "---\n{text}").unwrap();
    }
    let output = avocetctl(&["validate", "-f", file.path().to_str().unwrap()]);
    let (out, _) = texts(&output);
    assert!(output.status.success());
    assert_eq!(
        out,
        "ok SchedulePolicy/testpolicy\nok MigrationSchedule/mysqlmigrationschedule\nok ClusterPair/remotecluster\n"
    );
}

const BAD: &str = r#"
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata:
  name: Bad_Policy
policy:
  interval:
    intervalMinutes: 0
  daily:
    time: "25:61PM"
  weekly:
    day: "Funday"
    time: "10:13 PM"
  monthly:
    date: 32
    time: "8:05PM"
  timezone: Mars/Olympus_Mons
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: MigrationSchedule
metadata:
  name: mysqlmigrationschedule
  namespace: mysql
spec:
  template:
    spec:
      clusterPair: ""
      includeResources: "yes"
      namespaces:
      - MySQL
      selectors:
        app: "has spaces"
  schedulePolicyName: testpolicy
  suspnd: true
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: ClusterPair
metadata:
  name: remotecluster
  namespace: mysql
spec:
  config:
    clusters:
      kubernetes:
        server: 192.168.56.74:6443
    contexts:
      admin:
        cluster: kubernetes
        user: admin
    current-context: other
    users:
      admin:
        token: abc
  options:
    port: "ninety"
    mode: Async
"#;

#[test]
fn each_bad_field_is_named_with_its_value() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(BAD.as_bytes()).unwrap();
    let output = avocetctl(&["validate", "-f", file.path().to_str().unwrap()]);
    let (out, err) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(out.is_empty(), "{out}");
    let expected = [
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.interval.intervalMinutes: 0 is not a number of minutes from 1 to 52704000"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.daily.time: "25:61PM" is not a time like 10:14PM"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.weekly.day: "Funday" is not a day of the week like Thursday or Thu"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.weekly.time: "10:13 PM" is not a time like 10:14PM"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.monthly.date: 32 is not a day of the month (1 to 31)"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): policy.timezone: "Mars/Olympus_Mons" is not an IANA time zone like Europe/Paris or UTC"#,
        r#"error: SchedulePolicy/Bad_Policy (document 1): metadata.name: "Bad_Policy" is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"#,
        r#"error: MigrationSchedule/mysqlmigrationschedule (document 2): spec.template.spec.includeResources: "yes" must be a boolean (true or false), not a string"#,
        r#"error: MigrationSchedule/mysqlmigrationschedule (document 2): spec: unknown field "suspnd" (did you mean "suspend"?)"#,
        r#"error: MigrationSchedule/mysqlmigrationschedule (document 2): spec.template.spec.clusterPair: is required"#,
        r#"error: MigrationSchedule/mysqlmigrationschedule (document 2): spec.template.spec.namespaces[0]: "MySQL" is not a valid namespace name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"#,
        r#"error: MigrationSchedule/mysqlmigrationschedule (document 2): spec.template.spec.selectors.app: "has spaces" is not a valid label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"#,
        r#"error: ClusterPair/remotecluster (document 3): spec.config.clusters.kubernetes.server: "192.168.56.74:6443" is not an API server URL like https://10.0.0.1:6443"#,
        r#"error: ClusterPair/remotecluster (document 3): spec.config.current-context: "other" is not a context of spec.config.contexts"#,
        r#"error: ClusterPair/remotecluster (document 3): spec.options.mode: "Async" is not a mode (Default, DisasterRecovery or OneTimeMigration)"#,
        r#"error: ClusterPair/remotecluster (document 3): spec.options.port: "ninety" is not a port number (1 to 65535)"#,
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{err}");
}

#[test]
fn a_malformed_or_missing_file_is_an_error_never_a_panic() {
    // The guide's first ClusterPair indents `options:` one column deeper than `config:`.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"apiVersion: stork.libopenstorage.org/v1alpha1\nkind: ClusterPair\nspec:\n   config: {}\n    options:\n       mode: DisasterRecovery\n").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let output = avocetctl(&["validate", "-f", &path]);
    let (_, err) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: {path}: not valid YAML or JSON: line 5 column 5")),
        "{err}"
    );
    for garbage in ["\u{0}\u{1}\u{2}", "- [", "{\"a\": ", "kind: [1, {2: 3}]", "---\n---\n42\n"] {
        file.as_file().set_len(0).unwrap();
        std::fs::write(file.path(), garbage).unwrap();
        let output = avocetctl(&["validate", "-f", &path]);
        assert_eq!(output.status.code(), Some(1), "{garbage:?}: {:?}", texts(&output));
    }
    let output = avocetctl(&["validate", "-f", "/nonexistent/policy.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        texts(&output).1,
        "error: cannot read /nonexistent/policy.yaml: No such file or directory (os error 2)\n"
    );
}
