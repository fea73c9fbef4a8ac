#!/usr/bin/env bash
# `envc exec` latency, one command (Debian, as root):
#
#   sudo scripts/bench-exec.sh [--runs N]
#
# Installs what is missing (runc, hyperfine, busybox-static), builds envc in
# release (ENVC=/path/to/envc skips the build), makes a busybox rootfs, starts
# one container of it under envc unprivileged, one under envc privileged and
# one under runc, then times, side by side in one hyperfine run, `/bin/true`
# run inside each by: `envc exec` (both modes), `nsenter -a -t PID1` (the
# floor: namespaces only, no cgroup, no capabilities, no environment) and
# `runc exec`. Everything it starts is stopped at the end, whatever happens.
# Everything it makes is in target/bench-exec/ (BENCH_WORK overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ "$(id -u)" != 0 ]; then echo "run as root: sudo $0" >&2; exit 1; fi
runs=500
[ "${1:-}" = --runs ] && runs=$2

need=()
command -v runc >/dev/null || need+=(runc)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=${BENCH_WORK:-$repo/target/bench-exec}
mkdir -p "$work"
if [ -n "${ENVC:-}" ]; then
  envc=$ENVC
else
  cargo build --release --quiet
  envc=$repo/target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/envc
fi
scripts/make-rootfs.sh "$work/rootfs" >/dev/null
export ENVC_RUN_DIR=$work/run ENVC_LOG_DIR=$work/log

cleanup() {
  "$envc" stop --force bench-exec-u >/dev/null 2>&1 || true
  "$envc" stop --force bench-exec-p >/dev/null 2>&1 || true
  runc --root "$work/runc-state" delete -f bench-exec-runc >/dev/null 2>&1 || true
}
trap cleanup EXIT

for mode in u p; do
  privileged=false; [ $mode = p ] && privileged=true
  cat > "$work/bench-exec-$mode.toml" <<TOML
name = "bench-exec-$mode"
rootfs = "rootfs"
[config]
"security.privileged" = $privileged
[init]
command = ["/bin/sh", "-c", "trap 'exit 0' TERM PWR; while :; do sleep 1; done"]
TOML
  "$envc" apply -d "$work/bench-exec-$mode.toml" >/dev/null
done
pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$ENVC_RUN_DIR/bench-exec-u/info.json")

bundle=$work/runc-bundle
rm -rf "$bundle" && mkdir -p "$bundle"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "$work/rootfs" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": root, "readonly": False}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", "while :; do sleep 1; done"]
json.dump(c, open(p, "w"), indent=2)
PY
runc --root "$work/runc-state" run -d --bundle "$bundle" bench-exec-runc >/dev/null 2>&1 </dev/null

echo "== $("$envc" --version) | $(runc --version | head -n1) | $(nsenter --version) | $(hyperfine --version)"
hyperfine -N --warmup 50 --runs "$runs" --export-markdown "$work/results.md" \
  -n "envc exec (unprivileged)" "$envc exec bench-exec-u -- /bin/true" \
  -n "envc exec (privileged)" "$envc exec bench-exec-p -- /bin/true" \
  -n "nsenter -a" "nsenter -a -t $pid /bin/true" \
  -n "runc exec" "runc --root $work/runc-state exec bench-exec-runc /bin/true"
echo "== table: $work/results.md"
