//! `avocetctl` as a user runs it: the real binary, real files, exit codes and output streams.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

mod t01_validate;
mod t02_preview_oracle;
mod t03_snapshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns the repository's root folder.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the built `avocetctl` with `args` and returns what it printed and its exit code.
pub(crate) fn avocetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("avocetctl runs")
}

/// Returns stdout and stderr as text.
pub(crate) fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8"),
        String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8"),
    )
}
