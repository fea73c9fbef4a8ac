#!/usr/bin/env bash
# Fuzzes envc's inputs with libFuzzer (cargo fuzz): a profile's text (load, validate,
# stack on the built-in base, compile, Plan::check, render diagnostics) and a saved plan
# (Plan::from_json).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 300 seconds, every target
#
# SECONDS is the total, shared between the targets. Seeds come from examples/,
# profiles/, tests/fixtures/ (and their compiled JSON plans); the corpus grows in
# fuzz/corpus/TARGET/. A crash stops the run with exit 1 and leaves the input in
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

# Seeds: every shipped and test profile, and the plans the valid ones compile to.
seed() { # TARGET FILE NAME
  mkdir -p "fuzz/corpus/$1"
  cp -f "$2" "fuzz/corpus/$1/seed-$3"
}
for f in examples/*.toml examples/base/*.toml profiles/*.toml tests/fixtures/*/*.toml \
  tests/fixtures/*/*/*.toml tests/fixtures/fuzz/*; do
  [ -f "$f" ] || continue
  seed profile "$f" "$(echo "$f" | tr / _)"
done
cargo build --quiet --bin envc
for f in examples/*.toml tests/fixtures/valid/*.toml; do
  out="fuzz/corpus/plan_json/seed-$(echo "$f" | tr / _).json"
  mkdir -p fuzz/corpus/plan_json
  target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/debug/envc plan --format json -o "$out" "$f" 2>/dev/null || rm -f "$out"
done
for f in tests/fixtures/fuzz/*.json; do
  [ -f "$f" ] && seed plan_json "$f" "$(basename "$f")"
done

each=$((total / ${#targets[@]}))
[ "$each" -ge 1 ] || each=1
workers=$(nproc 2>/dev/null || echo 1)
export ENVC_FUZZ_TMP="$PWD/fuzz/target/scratch"
trap 'rm -rf "$ENVC_FUZZ_TMP"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "$ENVC_FUZZ_TMP"
  log="fuzz/artifacts/$t.log"
  echo "fuzz.sh: $t for ${each}s, $workers worker(s), log $log"
  # -fork: workers in child processes; a crash, hang (-timeout: 10 s for one input)
  # or memory blow-up (-rss_limit_mb) is saved in fuzz/artifacts/TARGET/ and the run
  # goes on. -max_len: room for every seed and then some.
  (cd fuzz && cargo +nightly fuzz run -O "$t" -- \
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
