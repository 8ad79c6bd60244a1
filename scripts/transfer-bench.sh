#!/usr/bin/env bash
# Runs the volume-transfer bench: Avocet's push against restic and rsync on the same data
# (benches/src/bin/transfer_bench.rs says what is measured). Installs the tools from Debian.
# Usage: scripts/transfer-bench.sh [--files N]   (N 4 MiB files; default 256 = 1 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
RESTIC_DEB_VERSION=0.14.0-1+b5
RSYNC_DEB_VERSION=3.5.0+ds1-0+deb12u1
need=()
command -v restic >/dev/null 2>&1 || need+=("restic=${RESTIC_DEB_VERSION}")
command -v rsync >/dev/null 2>&1 || need+=("rsync=${RSYNC_DEB_VERSION}")
[ -x /usr/bin/time ] || need+=("time")
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  if ! apt-get install -y -qq "${need[@]}"; then
    echo "==> the pinned versions are gone from the mirror; installing the current ones" >&2
    apt-get install -y -qq restic rsync time
  fi
fi
cargo build --release --locked -q -p avocet-cli --bin avocetctl -p avocet-benches --bin transfer_bench
target="${CARGO_TARGET_DIR:-target}"
"${target}/release/transfer_bench" "$@"
