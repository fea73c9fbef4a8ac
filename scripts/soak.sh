#!/usr/bin/env bash
# Soak test, as root: starts and stops N containers one after another, then N more
# with PARALLEL (default 8) running at a time, on a busybox rootfs, and proves by
# counting before and after that nothing leaked:
#   mounts      lines of /proc/self/mountinfo (and any mount naming the work directory)
#   cgroups     envc cgroup directories of the soak's containers (hz-soak-*)
#   links       network interfaces (/sys/class/net)
#   processes   the soak's envc processes and processes running from its rootfs
#   state       entries under the run directory (ENVC_RUN_DIR)
#   fds, RSS    of a long-lived detached container's supervisor, which echoes to its
#               console all along and gets `envc console` attached/detached and
#               `envc list` asked while the others come and go
#   max RSS     of every foreground `envc apply` (/usr/bin/time %M): the last runs may
#               not need more memory than the first
#
#   scripts/soak.sh N [PARALLEL]
#
# Half of the containers run in the foreground (init says hello and exits), half
# detached (`apply -d`, then `envc stop`). ENVC=path picks the envc binary (default:
# cargo build --release); SOAK_DIR=dir a work directory (default: a fresh one under
# /tmp, removed at the end). Exit 0 when nothing leaked, 1 otherwise. Run it while no
# other container tests run (mount and link counts are host-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: soak.sh N [PARALLEL]}
par=${2:-8}
case "$n$par" in *[!0-9]*) echo "usage: soak.sh N [PARALLEL]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root" >&2; exit 2; }
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
command -v busybox >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null

if [ -z "${ENVC:-}" ]; then
  cargo build --quiet --release --bin envc
  ENVC=$PWD/target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/envc
fi
ENVC=$(realpath "$ENVC")
if [ -n "${SOAK_DIR:-}" ]; then
  work=$SOAK_DIR
  mkdir -p "$work"
  own_work=0
else
  work=$(mktemp -d /tmp/envc-soak.XXXXXX)
  own_work=1
fi
work=$(realpath "$work")
export ENVC_RUN_DIR=$work/run ENVC_LOG_DIR=$work/log
rootfs=$work/rootfs
long=hz-soak-long
sup=
failed=0
fail() {
  echo "soak.sh: FAIL: $*" >&2
  failed=1
}

# Processes of the soak (envc with our run directory in its environment, or anything
# running from our rootfs), optionally leaving out those in PID namespace $1.
our_procs() {
  local skip_ns=${1:-} p exe ns
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    if [[ $exe == "$rootfs"/* ]] ||
      { [ "$exe" = "$ENVC" ] && tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "ENVC_RUN_DIR=$ENVC_RUN_DIR"; }; then
      ns=$(readlink "$p/ns/pid" 2>/dev/null) || continue
      [ -n "$skip_ns" ] && [ "$ns" = "$skip_ns" ] && continue
      echo "${p#/proc/} $(cat "$p/comm" 2>/dev/null) $exe"
    fi
  done
}

cleanup() {
  set +e
  if [ -d "$ENVC_RUN_DIR" ]; then
    for d in "$ENVC_RUN_DIR"/*/; do
      [ -d "$d" ] && timeout 20 "$ENVC" stop --force "$(basename "$d")" >/dev/null 2>&1
    done
    timeout 20 "$ENVC" gc >/dev/null 2>&1
  fi
  if [ "$own_work" = 1 ]; then
    if grep -qF " $work" /proc/self/mountinfo; then
      echo "soak.sh: something is mounted under $work: not removing it" >&2
    else
      rm -rf "$work"
    fi
  fi
}
trap cleanup EXIT

scripts/make-rootfs.sh "$rootfs" >/dev/null
profile() { # NAME INIT-SCRIPT
  cat >"$work/$1.toml" <<EOF
name = "$1"
rootfs = "rootfs"
[init]
command = ["/bin/sh", "-c", "$2"]
stop-timeout = 5
EOF
}
profile hz-soak-fg 'echo hello from $$'
profile hz-soak-d "trap 'exit 0' PWR TERM; echo up; sleep 1000 & wait"
for w in $(seq 1 "$par"); do
  profile "hz-soak-p$w" "trap 'exit 0' PWR TERM; echo up; sleep 1000 & wait"
  profile "hz-soak-fg$w" 'echo hello from $$'
done
profile "$long" "trap 'exit 0' PWR TERM; i=0; while :; do echo line \$i; i=\$((i+1)); usleep 5000; done"

# A foreground run (max RSS to $work/rss.$2), or a detached one and its stop.
one() { # K WORKER
  local k=$1 w=$2 name
  if [ $((k % 2)) = 0 ]; then
    if [ "$w" = seq ]; then name=hz-soak-fg; else name=hz-soak-fg$w; fi
    /usr/bin/time -f %M -a -o "$work/rss.$w" \
      "$ENVC" apply "$work/$name.toml" >/dev/null 2>>"$work/err.$w" ||
      { echo "run $k: envc apply failed" >>"$work/fail.$w"; return; }
  else
    if [ "$w" = seq ]; then name=hz-soak-d; else name=hz-soak-p$w; fi
    "$ENVC" apply -d "$work/$name.toml" >/dev/null 2>>"$work/err.$w" ||
      { echo "run $k: envc apply -d $name failed" >>"$work/fail.$w"; return; }
    timeout 30 "$ENVC" stop "$name" >/dev/null 2>>"$work/err.$w" ||
      { echo "run $k: envc stop $name failed" >>"$work/fail.$w"; return; }
  fi
}

supervisor_fds() { ls "/proc/$sup/fd" 2>/dev/null | wc -l; }
supervisor_rss() { awk '/^VmRSS/ {print $2}' "/proc/$sup/status" 2>/dev/null || echo 0; }
# Attach to and detach from the long-lived console, ask for the list.
poke() {
  timeout -k 1 0.3 "$ENVC" console "$long" </dev/null >/dev/null 2>&1 || true
  "$ENVC" list >/dev/null
  supervisor_fds >>"$work/fds"
}

"$ENVC" apply -d "$work/$long.toml" >/dev/null 2>"$work/long.err" ||
  { cat "$work/long.err" >&2; exit 1; }
sup=$(sed -n 's/.*"supervisor": *\([0-9]*\).*/\1/p' "$ENVC_RUN_DIR/$long/info.json")
pid1=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$ENVC_RUN_DIR/$long/info.json")
long_ns=$(readlink "/proc/$pid1/ns/pid")
sleep 0.5
poke # the first attach allocates what every later one reuses

snapshot() { # FILE-PREFIX
  sed 's/^[0-9]* [0-9]* [0-9:]* //' /proc/self/mountinfo | sort >"$1.mounts"
  ls /sys/class/net | sort >"$1.links"
  find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -path '*/envc/hz-soak*' \
    ! -path "*/envc/$long*" 2>/dev/null | sort >"$1.cgroups" || true
  # envc processes outside the long-lived container: only its supervisor may run.
  our_procs "$long_ns" | awk -v s="$sup" '$1 != s' | sort >"$1.procs"
  find "$ENVC_RUN_DIR" -mindepth 1 ! -path "$ENVC_RUN_DIR/$long" \
    ! -path "$ENVC_RUN_DIR/$long/*" 2>/dev/null | sort >"$1.state" || true
}
snapshot "$work/before"
fd0=$(supervisor_fds)
rss0=$(supervisor_rss)
t0=$(date +%s)

echo "soak.sh: $n containers one after another"
for k in $(seq 1 "$n"); do
  one "$k" seq
  [ $((k % 10)) = 0 ] && poke
done
t1=$(date +%s)
echo "soak.sh: $n containers, $par at a time"
for w in $(seq 1 "$par"); do
  (
    k=$w
    while [ "$k" -le "$n" ]; do
      one "$k" "$w"
      k=$((k + par))
    done
  ) &
done
for k in $(seq 1 $((n / 10))); do poke; done
wait
t2=$(date +%s)
poke

# Teardown is synchronous, but the kernel frees namespaces lazily: settle (bounded).
for _ in $(seq 1 50); do
  snapshot "$work/after"
  same=1
  for x in mounts links cgroups procs state; do
    cmp -s "$work/before.$x" "$work/after.$x" || same=0
  done
  [ "$same" = 1 ] && break
  sleep 0.2
done
fd1=$(supervisor_fds)
rss1=$(supervisor_rss)

if compgen -G "$work/fail.*" >/dev/null; then
  head -20 "$work"/fail.* >&2
  echo "errors:" >&2
  grep -h -E '^envc:|×|FAILED' "$work"/err.* | sort | uniq -c | sort -rn | head -10 >&2
  fail "$(cat "$work"/fail.* | wc -l) runs failed"
fi
cat "$work"/rss.* 2>/dev/null | grep -E '^[0-9]+$' >"$work/rss.all" || true
runs=$(wc -l <"$work/rss.all")
[ "$runs" -ge "$n" ] || fail "only $runs foreground runs measured (expected $n)"

printf '%-10s %8s %8s\n' what before after
for x in mounts links cgroups procs state; do
  b=$(wc -l <"$work/before.$x")
  a=$(wc -l <"$work/after.$x")
  printf '%-10s %8s %8s\n' "$x" "$b" "$a"
  if ! cmp -s "$work/before.$x" "$work/after.$x"; then
    fail "$x changed:"
    diff "$work/before.$x" "$work/after.$x" | head -20 >&2 || true
  fi
done
grep -F "$work" "$work/after.mounts" >&2 && fail "mounts under the work directory"
fdmin=$(sort -n "$work/fds" | head -1)
fdmax=$(sort -n "$work/fds" | tail -1)
printf '%-10s %8s %8s  (range %s..%s over %s samples)\n' "sup fds" "$fd0" "$fd1" \
  "$fdmin" "$fdmax" "$(wc -l <"$work/fds")"
[ "$fd1" -le "$fd0" ] || fail "the supervisor has $fd1 fds, $fd0 before"
[ $((fdmax - fd0)) -le 2 ] || fail "the supervisor's fds grew to $fdmax (from $fd0)"
printf '%-10s %8s %8s  KiB\n' "sup RSS" "$rss0" "$rss1"
[ "$rss1" -le $((rss0 + 1024)) ] || fail "the supervisor's RSS grew from ${rss0} to ${rss1} KiB"
# Max RSS of the foreground runs: median of the first tenth vs the last tenth.
tenth=$(((runs + 9) / 10))
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
first=$(head -n "$tenth" "$work/rss.all" | median)
last=$(tail -n "$tenth" "$work/rss.all" | median)
maxrss=$(sort -n "$work/rss.all" | tail -1)
printf '%-10s %8s %8s  KiB (median of the first and last %s runs; max %s)\n' \
  "apply RSS" "$first" "$last" "$tenth" "$maxrss"
[ "$last" -le $((first + first / 10 + 256)) ] ||
  fail "envc apply's max RSS grew from $first to $last KiB"
echo "soak.sh: $((2 * n)) containers in $((t2 - t0)) s ($((t1 - t0)) s one by one, $((t2 - t1)) s $par at a time)"

# The long-lived container stops cleanly, and then nothing of the soak is left.
timeout 30 "$ENVC" stop "$long" >/dev/null 2>&1 || fail "envc stop $long failed"
for _ in $(seq 1 50); do
  [ -z "$(our_procs)" ] && break
  sleep 0.1
done
[ -z "$(our_procs)" ] || fail "processes left: $(our_procs | tr '\n' ';')"
left=$(find "$ENVC_RUN_DIR" -mindepth 1 2>/dev/null | head -5 || true)
[ -z "$left" ] || fail "state left: $left"
cg=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -path '*/envc/hz-soak*' 2>/dev/null |
  head -5 || true)
[ -z "$cg" ] || fail "cgroups left: $cg"

if [ "$failed" = 0 ]; then
  echo "soak.sh: nothing leaked"
else
  echo "soak.sh: LEAKS or failures (see above); work directory $work" >&2
  own_work=0 # keep it for inspection
  exit 1
fi
