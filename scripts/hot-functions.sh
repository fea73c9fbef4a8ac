#!/bin/bash
# Makes link/start-path.order anew: the functions a container start runs,
# first run first, which build.rs has the linker lay out together. Run it
# after a change of rustc, of dependencies or of the release profile (they
# change the hashes in the names; `scripts/bench-start.sh` says when the list
# is stale), or when the start path changed much.
#
#   sudo scripts/hot-functions.sh
#
# Builds the release binary, runs a start of the benchmark's profile and a
# few other commands under scripts/hot-functions.py, writes the list and
# builds again with it. Needs root (a real container start) and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
triple=${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}
work=$(mktemp -d /tmp/envc-hot.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
envc=$repo/target/$triple/release/envc
map=$(ls -t "$repo"/target/"$triple"/release/build/envc-*/out/envc.map | head -n1)
scripts/make-rootfs.sh "$work/rootfs" >/dev/null
printf 'name = "envc-hot"\nrootfs = "rootfs"\n\n[init]\ncommand = ["/bin/true"]\n' >"$work/hot.toml"
cd "$work"
ENVC_LOG_DIR=$work/log ENVC_RUN_DIR=$work/run python3 "$repo/scripts/hot-functions.py" --map "$map" "$envc" \
  -- apply hot.toml \
  -- apply --timings --report "$work/report.json" hot.toml \
  -- plan hot.toml -- plan --format json hot.toml -- check hot.toml \
  -- list -- gc >"$work/order"
cd "$repo"
mv "$work/order" link/start-path.order
cargo build --release --quiet
map=$(ls -t "$repo"/target/"$triple"/release/build/envc-*/out/envc.map | head -n1)
python3 scripts/hot-functions.py --check link/start-path.order --map "$map"
