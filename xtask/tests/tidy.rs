//! Runs the tidy checks on the real workspace: `cargo metadata`, every manifest, every Rust file,
//! and clippy on a fixture that calls each disallowed method.

use std::path::{Path, PathBuf};
use std::process::Command;

use avocet_xtask::{
    DependencyGraph, forbidden_test_attributes, inherits_workspace_lints, opens_with_module_doc,
};

fn root() -> PathBuf {
    // Cargo and nextest set the variable when they run the test, too: prefer that to the one
    // compiled in, which names the checkout that built the binary (another clone may share
    // the target directory).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.join("..").canonicalize().expect("the workspace root exists")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Returns every `.rs` file of the workspace, skipping build output and fixtures.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("readable entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "fixtures" | ".git") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn dependency_edges_follow_the_architecture() {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let graph = DependencyGraph::from_metadata(&metadata).expect("metadata has a resolve graph");
    let violations = graph.violations();
    assert!(violations.is_empty(), "architecture invariants broken:\n{}", violations.join("\n"));
}

#[test]
fn every_member_inherits_the_workspace_lints() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("root manifest");
    let members: Vec<&str> = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| {
            list.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()).collect()
        })
        .expect("the root manifest lists members");
    assert!(members.len() >= 12, "{members:?}");
    for member in members {
        let text = std::fs::read_to_string(root().join(member).join("Cargo.toml"))
            .expect("member manifest");
        assert!(
            inherits_workspace_lints(&text),
            "{member}/Cargo.toml lacks `[lints] workspace = true`"
        );
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc_and_no_test_is_skipped() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut problems = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("readable source");
        let shown = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        if !opens_with_module_doc(&source) {
            problems.push(format!("{shown}: does not open with a `//!` line saying what it owns"));
        }
        for attribute in forbidden_test_attributes(&source) {
            problems.push(format!("{shown}: uses #[{attribute}]; fix or delete the test instead"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_disallowed_method_in_clippy_toml_really_fires() {
    let config = std::fs::read_to_string(root().join("clippy.toml")).expect("clippy.toml");
    let paths: Vec<&str> = config
        .lines()
        .filter_map(|line| {
            line.split_once("path = \"").and_then(|(_, rest)| rest.split_once('"')).map(|(p, _)| p)
        })
        .collect();
    assert!(paths.len() >= 5, "{paths:?}");
    let fixture = root().join("xtask/fixtures/clock-lint");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let output = cargo()
        .args(["clippy", "--locked", "--quiet", "--message-format", "short", "--target-dir"])
        .arg(target.join("tidy-clock-lint"))
        .current_dir(&fixture)
        .output()
        .expect("cargo clippy runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clippy failed on the fixture:\n{report}");
    for path in paths {
        let message = format!("use of a disallowed method `{path}`");
        assert!(
            report.contains(&message),
            "clippy.toml lists `{path}` but clippy never reports it:\n{report}"
        );
    }
}
