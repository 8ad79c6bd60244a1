//! Tidy checks over the whole workspace, run by plain `cargo test` (rust-analyzer's tidy tests are
//! the model): the architecture's dependency rules, inherited lints, module docs and test habits.
//!
//! The checks are pure functions over data (`cargo metadata` JSON, file texts) so that each one is
//! itself tested with a bad input it must catch; `tests/tidy.rs` feeds them the real workspace.
//! The rules encoded here are the Architecture Invariants of ARCHITECTURE.md: change both together.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Lists, per workspace crate, the Avocet crates it may depend on (normal and build edges).
/// `avocet-benches` may use any crate; it is absent here on purpose.
pub const ALLOWED_INTERNAL_EDGES: &[(&str, &[&str])] = &[
    ("avocet-types", &[]),
    ("avocet-proto", &["avocet-types"]),
    ("avocet-scheduler", &["avocet-types"]),
    ("avocet-consensus", &["avocet-proto"]),
    ("avocet-transfer", &[]),
    ("avocet-workers", &["avocet-transfer", "avocet-types"]),
    (
        "avocet-server",
        &[
            "avocet-consensus",
            "avocet-scheduler",
            "avocet-transfer",
            "avocet-workers",
            "avocet-proto",
            "avocet-types",
        ],
    ),
    ("avocet-sandbox", &["avocet-types"]),
    (
        "avocet-cli",
        &[
            "avocet-server",
            "avocet-sandbox",
            "avocet-proto",
            "avocet-scheduler",
            "avocet-transfer",
            "avocet-types",
            "avocet-workers",
        ],
    ),
    (
        "avocet-chaos-tests",
        &[
            "avocet-scheduler",
            "avocet-sandbox",
            "avocet-proto",
            "avocet-types",
            // The data-plane harness: transfer's test S3 server and data, workers' VolumeSent.
            "avocet-transfer",
            "avocet-workers",
        ],
    ),
    ("avocet-xtask", &[]),
];

/// Lists external crates that exactly one Avocet crate may name directly.
pub const EXCLUSIVE_DEPENDENCIES: &[(&str, &str)] = &[
    ("openraft", "avocet-consensus"),
    ("sled", "avocet-consensus"),
    ("actix", "avocet-workers"),
    ("actix-rt", "avocet-workers"),
    ("aws-sdk-s3", "avocet-transfer"),
    ("aws-config", "avocet-transfer"),
];

/// Lists crates that do no IO and run no async runtime, with what they must never reach,
/// directly or transitively.
pub const PURE_CRATES: &[&str] = &["avocet-types", "avocet-scheduler"];

/// Lists the crates a pure crate must not reach: runtimes, network stacks, storage and RPC.
pub const IMPURE_DEPENDENCIES: &[&str] = &[
    "tokio",
    "async-std",
    "actix",
    "actix-rt",
    "mio",
    "hyper",
    "reqwest",
    "tonic",
    "openraft",
    "sled",
    "kube-client",
    "kube",
    "aws-sdk-s3",
    "aws-config",
];

/// Holds what the checks need from `cargo metadata`: names, and normal/build edges by name.
#[derive(Debug, Default)]
pub struct DependencyGraph {
    members: BTreeSet<String>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl DependencyGraph {
    /// Reads the output of `cargo metadata --format-version 1`.
    pub fn from_metadata(metadata: &Value) -> Result<DependencyGraph, String> {
        let packages = metadata["packages"].as_array().ok_or("metadata has no packages")?;
        let names: BTreeMap<&str, &str> = packages
            .iter()
            .filter_map(|package| Some((package["id"].as_str()?, package["name"].as_str()?)))
            .collect();
        let name_of = |id: &Value| -> Result<String, String> {
            let id = id.as_str().ok_or("a package id is not a string")?;
            names.get(id).map(|name| (*name).to_owned()).ok_or(format!("unknown package {id}"))
        };
        let mut graph = DependencyGraph::default();
        for member in metadata["workspace_members"].as_array().ok_or("no workspace_members")? {
            graph.members.insert(name_of(member)?);
        }
        let nodes =
            metadata["resolve"]["nodes"].as_array().ok_or("metadata has no resolve graph")?;
        for node in nodes {
            let from = name_of(&node["id"])?;
            let targets = graph.edges.entry(from).or_default();
            for dep in node["deps"].as_array().into_iter().flatten() {
                let counts = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"].is_null() || kind["kind"] == "build");
                if counts {
                    targets.insert(name_of(&dep["pkg"])?);
                }
            }
        }
        Ok(graph)
    }

    /// Adds an edge; used by tests to build small graphs.
    pub fn add_edge(&mut self, from: &str, to: &str) {
        self.edges.entry(from.to_owned()).or_default().insert(to.to_owned());
        if from.starts_with("avocet-") {
            self.members.insert(from.to_owned());
        }
    }

    /// Returns every crate `from` reaches through normal and build edges.
    fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(name) = stack.pop() {
            for next in self.edges.get(&name).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    }

    /// Returns one sentence per broken architecture invariant.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED_INTERNAL_EDGES.iter().copied().collect();
        for member in &self.members {
            let direct = self.edges.get(member).cloned().unwrap_or_default();
            if member != "avocet-benches" {
                match allowed.get(member.as_str()) {
                    None => found.push(format!(
                        "{member} is not in ALLOWED_INTERNAL_EDGES: add it there and to ARCHITECTURE.md"
                    )),
                    Some(permitted) => {
                        for dep in direct.iter().filter(|dep| dep.starts_with("avocet-")) {
                            if !permitted.contains(&dep.as_str()) {
                                found.push(format!("{member} depends on {dep}, which the architecture forbids"));
                            }
                        }
                    }
                }
            }
            for (external, owner) in EXCLUSIVE_DEPENDENCIES {
                if direct.contains(*external) && member != owner {
                    found.push(format!("{member} names {external}; only {owner} may"));
                }
            }
        }
        for pure in PURE_CRATES {
            let reached = self.reachable(pure);
            for impure in IMPURE_DEPENDENCIES {
                if reached.contains(*impure) {
                    found.push(format!(
                        "{pure} reaches {impure}; it must do no IO and run no async runtime"
                    ));
                }
            }
        }
        found
    }
}

/// Returns whether a member's manifest inherits the workspace lints (`[lints] workspace = true`).
pub fn inherits_workspace_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

/// Returns whether a Rust file opens with a `//!` line saying what the module is responsible for.
pub fn opens_with_module_doc(source: &str) -> bool {
    source
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with("//!"))
}

/// Returns the test attributes the house style forbids that `source` uses (`ignore`,
/// `should_panic`): tests that never run or pass by panicking hide failures.
pub fn forbidden_test_attributes(source: &str) -> Vec<&'static str> {
    // Built from parts so that this file does not match itself.
    let banned: [(&'static str, String); 2] =
        [("ignore", format!("#[{}", "ignore")), ("should_panic", format!("#[{}", "should_panic"))];
    banned
        .into_iter()
        .filter(|(_, pattern)| source.contains(pattern.as_str()))
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_a_forbidden_internal_edge_and_an_impure_pure_crate() {
        let mut graph = DependencyGraph::default();
        graph.add_edge("avocet-scheduler", "avocet-types");
        graph.add_edge("avocet-types", "serde");
        assert!(graph.violations().is_empty(), "{:?}", graph.violations());
        graph.add_edge("avocet-scheduler", "avocet-consensus");
        graph.add_edge("avocet-consensus", "openraft");
        graph.add_edge("openraft", "tokio");
        assert_eq!(
            graph.violations(),
            [
                "avocet-scheduler depends on avocet-consensus, which the architecture forbids",
                "avocet-scheduler reaches tokio; it must do no IO and run no async runtime",
                "avocet-scheduler reaches openraft; it must do no IO and run no async runtime",
            ]
        );
    }

    #[test]
    fn catches_an_exclusive_dependency_named_elsewhere() {
        let mut graph = DependencyGraph::default();
        graph.add_edge("avocet-server", "sled");
        graph.add_edge("avocet-consensus", "sled");
        assert_eq!(graph.violations(), ["avocet-server names sled; only avocet-consensus may"]);
    }

    #[test]
    fn reads_lints_docs_and_test_attributes() {
        assert!(inherits_workspace_lints("[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"));
        assert!(!inherits_workspace_lints("[package]\nworkspace = true\n[lints.rust]\n"));
        assert!(opens_with_module_doc("\n//! Owns the thing.\nfn f() {}"));
        assert!(!opens_with_module_doc("// not a doc\n//! late"));
        let source = format!("#[test]\n#[{}]\nfn t() {{}}", "ignore");
        assert_eq!(forbidden_test_attributes(&source), ["ignore"]);
    }
}
