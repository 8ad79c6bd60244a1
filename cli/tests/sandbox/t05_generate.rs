//! `avocetctl generate clusterpair` against a running sandbox: the printed pair is valid Stork
//! YAML, and its pruned, inlined kubeconfig reaches the cluster on its own.

use std::process::Command;

use crate::harness::{Sandbox, TOKEN};

#[test]
fn a_generated_pair_reaches_its_destination_and_a_broken_one_says_why() {
    let sandbox = Sandbox::start();
    let out = Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .args([
            "generate",
            "clusterpair",
            "remote",
            "-n",
            "mysql",
            "-s",
            "ip=127.0.0.1,port=9001,token=abc",
        ])
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        yaml.starts_with("apiVersion: stork.libopenstorage.org/v1alpha1\nkind: ClusterPair\n"),
        "{yaml}"
    );
    let pair = avocet_types::parse_documents(&yaml).unwrap().into_iter().next().unwrap().unwrap();
    let avocet_types::StorkObject::ClusterPair(pair) = pair.object else {
        panic!("not a ClusterPair")
    };
    assert_eq!(pair.metadata.namespace.as_deref(), Some("mysql"));
    assert_eq!(pair.spec.options["token"], "abc");
    assert_eq!(pair.spec.config.users["sandbox"].token, TOKEN);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let version = runtime.block_on(avocet_workers::pairing::check_scheduler(&pair)).unwrap();
    assert!(version.contains("avocet-sandbox"), "{version}");

    let mut broken = pair.clone();
    broken.spec.config.users.get_mut("sandbox").unwrap().token = "wrong".to_owned();
    let err = runtime.block_on(avocet_workers::pairing::check_scheduler(&broken)).unwrap_err();
    assert!(err.to_string().contains("does not answer with the pair's credentials"), "{err}");
}
