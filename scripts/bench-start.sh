#!/usr/bin/env bash
# Start-latency benchmark, one command (Debian, as root):
#
#   sudo scripts/bench-start.sh [--rounds N] [--reps N] [--only envc crun ...]
#
# Installs what is missing (crun, runc, bubblewrap, hyperfine, busybox-static,
# gcc, python3: Debian packages), builds envc in release, a busybox rootfs and
# the launcher benches/start/spawn.c, then runs benches/start/bench.py: one
# listing run per runtime (checks each really made its namespaces, /dev, mounts
# and cgroups), then envc, crun, runc, bwrap and unshare timed INTERLEAVED in
# one run (single starts, 50 sequential, 20 concurrent), envc plan of 1,000,
# 10,000 and 100,000 devices (the time per device must stay flat), a table,
# and a check that the host was left clean. ENVC_BEFORE=/path/to/another/envc
# times a second build side by side with this one (before/after a change).
# Extra arguments go to bench.py (--help lists them). Everything it makes is in
# target/bench-start/ (BENCH_WORK overrides); ENVC=/path/to/envc skips the build.
# See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ "$(id -u)" != 0 ]; then echo "run as root: sudo $0" >&2; exit 1; fi

need=()
command -v crun >/dev/null || need+=(crun)
command -v runc >/dev/null || need+=(runc)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v busybox >/dev/null || need+=(busybox-static)
command -v cc >/dev/null || need+=(gcc libc6-dev)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
command -v python3 >/dev/null || need+=(python3)
command -v unshare >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=${BENCH_WORK:-$repo/target/bench-start}
mkdir -p "$work/crun-state"

if [ -n "${ENVC:-}" ]; then
  envc=$ENVC
else
  cargo=$(command -v cargo || true)
  # under sudo, PATH may lack the invoking user's ~/.cargo/bin
  if [ -z "$cargo" ] && [ -n "${SUDO_USER:-}" ]; then
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    [ -x "$home/.cargo/bin/cargo" ] && cargo=$home/.cargo/bin/cargo
  fi
  if [ -z "$cargo" ]; then echo "cargo not found (install Rust, or set ENVC=/path/to/envc)" >&2; exit 1; fi
  echo "== cargo build --release"
  "$cargo" build --release --quiet
  envc=$repo/target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/envc
  # Whether the start path's code is laid out together in this build (a
  # stale list costs speed and RSS, not correctness): says so, goes on.
  map=$(ls -t "$repo"/target/"${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}"/release/build/envc-*/out/envc.map 2>/dev/null | head -n1)
  if [ -n "$map" ]; then
    echo "== code layout: $(python3 scripts/hot-functions.py --check link/start-path.order --map "$map" 2>&1 | tr '\n' ' ')"
  fi
fi

echo "== busybox rootfs, launcher"
scripts/make-rootfs.sh "$work/rootfs" >/dev/null
cc -O2 -Wall -static -o "$work/spawn" benches/start/spawn.c 2>/dev/null ||
  cc -O2 -Wall -o "$work/spawn" benches/start/spawn.c

echo "== versions: $("$envc" --version) | $(crun --root "$work/crun-state" --version | head -n1) | $(runc --version | head -n1)" \
  "| $(bwrap --version) | $(unshare --version) | $(hyperfine --version)"

exec python3 benches/start/bench.py --work "$work" --envc "$envc" --spawn "$work/spawn" \
  --crun "$(command -v crun)" --runc "$(command -v runc)" --bwrap "$(command -v bwrap)" \
  --unshare "$(command -v unshare)" --hyperfine "$(command -v hyperfine)" \
  ${ENVC_BEFORE:+--envc-before "$ENVC_BEFORE"} "$@"
