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
# 2. The CreateCgroup step and the whole start as envc's report times them (from
#    the start to the host torn down, without the harness's own processes), RUNS
#    starts of each: on the hybrid host CreateCgroup makes seven hierarchies'
#    cgroups (the v1 ones after the clone) and writes the list to the devices
#    controller; on pure cgroup2 it makes one cgroup and builds, loads and attaches
#    the program.
# 3. With strace (if installed), 20 starts of each: the kernel time of the calls
#    that enforce the list: opening devices.deny/devices.allow and the 14 writes,
#    against BPF_PROG_LOAD and BPF_PROG_ATTACH (strace adds to each).
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

# The step and the start, from the reports: median and 90th percentile in µs.
step() { # label, then the command
  local label=$1; shift
  for _ in $(seq "$runs"); do
    "$@" apply --report "$work/r.json" "$work/bench-dev.toml" 2>/dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(s["us"] for s in r["steps"] if s["op"]=="CreateCgroup"), r["milestones"][-1]["us"])' "$work/r.json"
  done | python3 -c '
import sys, statistics as st
rows = [tuple(map(int, l.split())) for l in sys.stdin]
def q(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))]
for i, what in ((0, "CreateCgroup"), (1, "whole start")):
    xs = [r[i] for r in rows]
    print("%-32s %-13s median %6d us, p90 %6d us (%d runs)" % (sys.argv[1], what, st.median(xs), q(xs, 0.9), len(xs)))
' "$label"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   ", r["host"]["cgroup"])' "$work/r.json"
}
step "hybrid: v1 devices controller" "$envc"
step "pure cgroup2: device program" "${pure[@]}" "$envc"

if command -v strace >/dev/null; then
  for i in $(seq 20); do
    strace -f -T -e trace=openat,write -o "$work/v1.$i" "$envc" apply "$work/bench-dev.toml" >/dev/null 2>&1
    strace -f -T -e trace=bpf -o "$work/v2.$i" "${pure[@]}" "$envc" apply "$work/bench-dev.toml" >/dev/null 2>&1
  done
  python3 - "$work" <<'PY'
import glob, re, statistics as st, sys
w = sys.argv[1]
def v1(f):
    total, fd = 0.0, None
    for l in open(f):
        m = re.search(r'openat\(\d+, "[^"]*/devices\.(allow|deny)".* = (\d+) <([\d.]+)>', l)
        if m:
            fd, total = m.group(2), total + float(m.group(3))
            continue
        m = re.search(r'write\((\d+), .*<([\d.]+)>', l)
        if m and m.group(1) == fd:
            total += float(m.group(2))
    return total * 1e6
def bpf(f, cmd):
    return sum(float(m.group(1)) * 1e6 for l in open(f) if cmd in l
               for m in [re.search(r'<([\d.]+)>', l)] if m)
print("kernel time, median of 20 (under strace):")
print("  v1: open devices.deny/allow + 14 writes  %5.0f us" % st.median(v1(f) for f in glob.glob(w + "/v1.*")))
load = [bpf(f, "BPF_PROG_LOAD") for f in glob.glob(w + "/v2.*")]
att = [bpf(f, "BPF_PROG_ATTACH") for f in glob.glob(w + "/v2.*")]
print("  cgroup2: BPF_PROG_LOAD (verifier, JIT)   %5.0f us" % st.median(load))
print("  cgroup2: BPF_PROG_ATTACH                 %5.0f us" % st.median(att))
PY
fi
[ ! -e /sys/fs/cgroup/unified/envc ] && [ ! -e /sys/fs/cgroup/devices/envc ] || { echo "left a cgroup behind" >&2; exit 1; }
rm -rf "$work"
