#!/usr/bin/env bash
# The test command (README, CI): every layer, root tests included. Run as
# root; installs what the tests need if it is missing. Root tests fail
# instead of skipping (ENVC_REQUIRE_ROOT=1).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v busybox >/dev/null || need+=(busybox-static)
command -v cc >/dev/null || need+=(gcc)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v lxcfs >/dev/null || need+=(lxcfs)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v lxd >/dev/null || need+=(lxd)
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export ENVC_REQUIRE_ROOT=1
# --no-fail-fast: one run reports every failing binary, not just the first.
exec cargo test --locked --no-fail-fast "$@"
