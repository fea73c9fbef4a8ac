#!/usr/bin/env bash
# The start cost of the device allow-list, the two ways envc enforces it, side by
# side in one run (as root, on a hybrid host such as the development machines):
#
#   sudo scripts/bench-devices.sh [RUNS]
#
# 1. hyperfine, interleaved rounds: `envc apply` of a privileged busybox profile
#    (init /bin/true) on the host's hybrid layout (v1 devices controller), the same
#    on the pure cgroup2 layout of tests/common/cgroup2.rs (a cgroup2 device
#    program), and that layout's own cost (the private mount namespace running
#    /bin/true), to subtract.
# 2. The CreateCgroup step as envc's report times it, RUNS starts of each: on the
#    hybrid host it makes seven hierarchies' cgroups (the v1 ones after the clone)
#    and writes the list to the devices controller; on pure cgroup2 it makes one
#    cgroup and builds, loads and attaches the program.
# ENVC=/path/to/envc picks the binary (default: the release build). Everything it
# makes is in target/bench-devices/ and removed by the runs themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root: sudo $0" >&2; exit 1; fi
runs=${1:-200}
envc=${ENVC:-$PWD/target/x86_64-unknown-linux-gnu/release/envc}
work=$PWD/target/bench-devices
command -v hyperfine >/dev/null || { echo "hyperfine not found (apt-get install hyperfine)" >&2; exit 1; }
grep -q ' - cgroup2 ' /proc/self/mountinfo || { echo "no cgroup2 hierarchy on this host" >&2; exit 1; }
[ -d /sys/fs/cgroup/devices ] || echo "note: no v1 devices controller here: both rows are cgroup2" >&2

rm -rf "$work" && mkdir -p "$work"
scripts/make-rootfs.sh "$work/rootfs" >/dev/null
cat > "$work/bench-dev.toml" <<EOF
name = "bench-dev"
rootfs = "rootfs"
[config]
"security.privileged" = true
[init]
command = ["/bin/true"]
EOF
export ENVC_RUN_DIR=$work/run ENVC_LOG_DIR=$work/log
pure=(unshare --mount --propagation private sh -c \
  'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"' sh)

echo "== $("$envc" --version), kernel $(uname -r)"
hyperfine -N --warmup 10 --runs "$runs" \
  -n "hybrid: v1 devices controller" "$envc apply $work/bench-dev.toml" \
  -n "pure cgroup2: device program" "${pure[*]@Q} $envc apply $work/bench-dev.toml" \
  -n "pure cgroup2 layout alone (/bin/true)" "${pure[*]@Q} /bin/true" 2>&1 |
  grep -v '^ *$'

# The step itself, from the reports: median and 90th percentile in µs.
step() { # label, then the command
  local label=$1; shift
  for _ in $(seq "$runs"); do
    "$@" apply --report "$work/r.json" "$work/bench-dev.toml" 2>/dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(s["us"] for s in r["steps"] if s["op"]=="CreateCgroup"))' "$work/r.json"
  done | sort -n | awk -v l="$label" '{a[NR]=$1} END {printf "%-34s CreateCgroup median %5d us, p90 %5d us (%d runs)\n", l, a[int(NR/2)+1], a[int(NR*0.9)], NR}'
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   ", r["host"]["cgroup"])' "$work/r.json"
}
step "hybrid: v1 devices controller" "$envc"
step "pure cgroup2: device program" "${pure[@]}" "$envc"
[ ! -e /sys/fs/cgroup/unified/envc ] && [ ! -e /sys/fs/cgroup/devices/envc ] || { echo "left a cgroup behind" >&2; exit 1; }
rm -rf "$work"
