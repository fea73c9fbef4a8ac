#!/usr/bin/env bash
# Fuzzes envc's inputs with libFuzzer (cargo fuzz): a profile's text (load, validate,
# stack on the built-in base, compile, Plan::check, render diagnostics) and a saved plan
# (Plan::from_json).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 300 seconds, every target
#
# SECONDS is the total, shared between the targets. The profile seeds are read where
# they are: examples/, profiles/ and tests/fixtures/{valid,invalid,fuzz}/ are passed
# to libFuzzer as extra corpus directories. The plan seeds are the plans the examples
# and valid fixtures compile to, written to fuzz/corpus/plan_json/. What the fuzzer
# finds grows in fuzz/corpus/TARGET/. A crash stops the run with exit 1 and leaves the input in
# fuzz/artifacts/TARGET/: copy it to tests/fixtures/fuzz/ (tests/fuzz_regressions.rs
# replays every file there). Needs a nightly toolchain (rustup) for cargo fuzz's
# sanitizer flags; cargo-fuzz is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(profile plan_json)
case $total in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

if ! rustup run nightly rustc -V >/dev/null 2>&1; then
  echo "fuzz.sh: cargo fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# Seeds. libFuzzer reads every directory after the first as more corpus (recursively)
# and writes what it finds to the first only. examples/ also holds the demo's rootfs,
# so its profiles are copied to a scratch directory instead of read in place.
root=$PWD
seeds="$root/fuzz/target/seeds"
rm -rf "$seeds"
mkdir -p "$seeds" fuzz/corpus/profile fuzz/corpus/plan_json
cp examples/*.toml "$seeds/"
cargo build --quiet --bin envc
for f in examples/*.toml tests/fixtures/valid/*.toml; do
  out="fuzz/corpus/plan_json/seed-$(echo "$f" | tr / _).json"
  target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/debug/envc plan --format json -o "$out" "$f" 2>/dev/null || rm -f "$out"
done

each=$((total / ${#targets[@]}))
[ "$each" -ge 1 ] || each=1
workers=$(nproc 2>/dev/null || echo 1)
export ENVC_FUZZ_TMP="$PWD/fuzz/target/scratch"
trap 'rm -rf "$ENVC_FUZZ_TMP" "$seeds"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "$ENVC_FUZZ_TMP"
  log="fuzz/artifacts/$t.log"
  echo "fuzz.sh: $t for ${each}s, $workers worker(s), log $log"
  case $t in
    profile) extra=("$seeds" "$root/examples/base" "$root/profiles" "$root/tests/fixtures/valid"
      "$root/tests/fixtures/invalid" "$root/tests/fixtures/fuzz") ;;
    plan_json) extra=("$root/tests/fixtures/fuzz") ;;
    *) extra=() ;;
  esac
  # -fork: workers in child processes; a crash, hang (-timeout: 10 s for one input)
  # or memory blow-up (-rss_limit_mb) is saved in fuzz/artifacts/TARGET/ and the run
  # goes on. -max_len: room for every seed and then some.
  (cd fuzz && cargo +nightly fuzz run -O "$t" "$root/fuzz/corpus/$t" "${extra[@]}" -- \
    -max_total_time="$each" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict=profile.dict -fork="$workers" -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -print_final_stats=1 -artifact_prefix="artifacts/$t/") >"$log" 2>&1 ||
    status=1
  grep -E "^#[0-9]+: cov|INFO: fuzzed for|INFO: exiting|crash|timeout|oom|==ERROR" "$log" |
    tail -6 || true
done
found=$(find fuzz/artifacts -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
  -o -name 'slow-unit-*' \) 2>/dev/null | sort)
if [ -n "$found" ]; then
  echo "fuzz.sh: findings (reproduce: cd fuzz && cargo +nightly fuzz run -O TARGET FILE;" >&2
  echo "         keep them in tests/fixtures/fuzz/, profiles as .toml, plans as .json):" >&2
  echo "$found" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: cargo fuzz failed (see the logs above)" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
