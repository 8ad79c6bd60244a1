//! The deploy manifests, validated offline: the base and every overlay under `deploy/overlays`
//! render with `kubectl kustomize`, and every object they render validates, strictly (unknown
//! fields refused), against the Kubernetes 1.31 OpenAPI schemas bundled in the pinned
//! `kubernetes-validate` (scripts/test.sh installs both). A manifest broken on purpose must
//! fail the same check, so the check is known to bite.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.31.0";

fn deploy() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.join("../deploy").canonicalize().expect("deploy/ exists")
}

fn render(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl is on the PATH (scripts/test.sh installs it)");
    assert!(out.status.success(), "{}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Runs the validator on `yaml`; returns (passed, what it printed).
fn validate(yaml: &str, scratch: &Path, name: &str) -> (bool, String) {
    let file = scratch.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("scratch file");
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet", "-k", KUBERNETES])
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/test.sh installs it and kubernetes-validate)");
    let printed =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && !printed.contains("ERROR"), printed)
}

#[test]
fn the_base_and_every_overlay_render_and_validate() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut dirs = vec![deploy().join("base")];
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(deploy().join("overlays"))
        .expect("deploy/overlays")
        .map(|entry| entry.expect("entry").path())
        .collect();
    overlays.sort();
    assert!(overlays.len() >= 5, "{overlays:?}");
    dirs.extend(overlays);
    for dir in dirs {
        let yaml = render(&dir);
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let (passed, printed) = validate(&yaml, scratch.path(), &name);
        assert!(passed, "{}:\n{printed}", dir.display());
        for kind in [
            "StatefulSet",
            "Service",
            "PodDisruptionBudget",
            "ClusterRole",
            "CustomResourceDefinition",
        ] {
            assert!(yaml.contains(&format!("kind: {kind}\n")), "{}: no {kind}", dir.display());
        }
    }
}

#[test]
fn a_manifest_broken_on_purpose_fails_validation() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let yaml = render(&deploy().join("base"));
    let broken = yaml.replace("maxUnavailable: 1", "maxUnavailabel: 1");
    assert_ne!(broken, yaml);
    let (passed, printed) = validate(&broken, scratch.path(), "broken");
    assert!(!passed && printed.contains("maxUnavailabel"), "{printed}");
}

#[test]
fn the_image_and_the_statefulset_agree() {
    let dockerfile =
        std::fs::read_to_string(deploy().join("Dockerfile")).expect("deploy/Dockerfile");
    let statefulset = std::fs::read_to_string(deploy().join("base/avocet/statefulset.yaml"))
        .expect("the StatefulSet");
    // The user the image runs as is the one the pod's securityContext asks for.
    assert!(dockerfile.contains("USER 10001:10001"), "{dockerfile}");
    assert!(statefulset.contains("runAsUser: 10001") && statefulset.contains("fsGroup: 10001"));
    // The entrypoint is the binary the container's args are for, and the ports match.
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/avocet\"]"));
    assert!(statefulset.contains("- serve\n"));
    for port in ["9001", "9002", "9010"] {
        assert!(
            dockerfile.contains(port) && statefulset.contains(&format!("containerPort: {port}")),
            "{port}"
        );
    }
    // The build makes both binaries from the workspace's lock file.
    assert!(
        dockerfile
            .contains("cargo build --locked --release -p avocet-cli --bin avocet --bin avocetctl")
    );
}
