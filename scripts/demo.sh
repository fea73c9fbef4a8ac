#!/usr/bin/env bash
# One command for a newcomer on Debian (as root): installs what envc needs,
# builds it, makes a busybox rootfs and runs the bundled example container.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (envc runs privileged containers)" >&2; exit 1; fi
if ! command -v busybox >/dev/null || ! command -v cc >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ ! -e /usr/lib/x86_64-linux-gnu/libseccomp.a ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static gcc libc6-dev libseccomp-dev >/dev/null
fi
cargo build --release --quiet
scripts/make-rootfs.sh examples/rootfs >/dev/null
echo "== envc plan examples/hello.toml (first lines)"
target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/envc plan examples/hello.toml | head -n 12
echo "== envc apply examples/hello.toml"
exec target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/envc apply examples/hello.toml
