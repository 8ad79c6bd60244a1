//! Fails when `deploy/base/crds/` no longer matches the CRDs generated from the types.
//!
//! Regenerate with `AVOCET_BLESS=1 cargo test -p avocet-types --test crds`.

use std::path::PathBuf;

use avocet_types::{Kind, crd};

#[test]
fn committed_crds_are_fresh() {
    // The package folder at run time (cargo and nextest set it): a test binary reused from a
    // checkout elsewhere (a shared target directory) would carry that checkout's path.
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = package.join("../deploy/base/crds");
    let bless = std::env::var_os("AVOCET_BLESS").is_some();
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let path = dir.join(crd::file_name(kind));
        let expected = crd::to_yaml(kind);
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, expected).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    let known: Vec<String> = Kind::ALL.iter().map(|kind| crd::file_name(*kind)).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            known.contains(&name),
            "deploy/base/crds/{name} is not generated from a Stork kind; remove it"
        );
    }
    assert!(
        stale.is_empty(),
        "stale CRDs (regenerate with AVOCET_BLESS=1 cargo test -p avocet-types --test crds): {stale:?}"
    );
}
