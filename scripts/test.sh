#!/usr/bin/env bash
# Runs Avocet's whole test suite on a fresh machine: installs what the tests need (pinned), then
# runs every test. `.ci/run` calls this same script after its format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."

NEXTEST_VERSION=0.9.143
S3S_FS_VERSION=0.14.1
TZDATA_VERSION=2025.2
# Validates the deploy manifests offline against the Kubernetes OpenAPI schemas it bundles.
KUBERNETES_VALIDATE_VERSION=1.31.0
# Debian bookworm's kubectl, used only where the machine has none (the image ships 1.32).
KUBECTL_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
# Debian bookworm's iproute2, used only where the machine has no `ip`.
IPROUTE2_DEB_VERSION=6.1.0-3

say() { printf '==> %s\n' "$*"; }

# Python 3 runs the zoneinfo oracle that checks `avocetctl schedule preview`.
if ! command -v python3 >/dev/null 2>&1; then
  say "installing python3"
  apt-get update -qq && apt-get install -y -qq python3
fi
if ! python3 -c 'import zoneinfo; zoneinfo.ZoneInfo("Australia/Lord_Howe")' >/dev/null 2>&1; then
  say "installing the tzdata Python package ${TZDATA_VERSION} (no system zoneinfo found)"
  python3 -m pip install --quiet "tzdata==${TZDATA_VERSION}"
fi

if ! python3 -m kubernetes_validate --version 2>/dev/null | grep -qx "${KUBERNETES_VALIDATE_VERSION}"; then
  say "installing the kubernetes-validate Python package ${KUBERNETES_VALIDATE_VERSION}"
  python3 -m pip install --quiet "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi

# The partition tests put each node in a network namespace of its own (ip netns, veth).
if ! command -v ip >/dev/null 2>&1; then
  say "installing iproute2 ${IPROUTE2_DEB_VERSION}"
  apt-get update -qq && apt-get install -y -qq "iproute2=${IPROUTE2_DEB_VERSION}"
fi

# The sandbox API server is proven with a real kubectl (any version from 1.20 on works).
if ! command -v kubectl >/dev/null 2>&1; then
  say "installing kubectl (Debian kubernetes-client ${KUBECTL_DEB_VERSION})"
  apt-get update -qq && apt-get install -y -qq "kubernetes-client=${KUBECTL_DEB_VERSION}"
fi

# The S3 store is tested against a real S3 server: s3s-fs (on disk, checks signatures). 0.14.1 is
# the newest that builds with Rust 1.95; the tests start their own instances on loopback ports.
if ! { command -v s3s-fs >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; }; then
  say "installing s3s-fs ${S3S_FS_VERSION}"
  cargo install --locked "s3s-fs@${S3S_FS_VERSION}" --features binary
fi

# cargo-nextest runs the tests, one process per test, with the timeouts in .config/nextest.toml.
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest ${NEXTEST_VERSION}"
  cargo install --locked "cargo-nextest@${NEXTEST_VERSION}"
fi

say "running the tests"
cargo nextest run --workspace --locked --no-fail-fast
say "running the doc tests"
cargo test --workspace --doc --locked --quiet
