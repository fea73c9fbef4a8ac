#!/usr/bin/env bash
# Builds (once) a Debian 12 rootfs that boots systemd and runs Debian's cloud-init
# with only its LXD datasource, for tests/cloudinit.rs.
#
# Usage: scripts/cloudinit-rootfs.sh [DIR]
#   DIR defaults to /var/cache/envc-test/bookworm-cloudinit. A DIR finished by this
#   recipe (see $marker, $recipe) is reused as it is; otherwise it is built in DIR.tmp
#   and renamed (replacing an older recipe's DIR), so a half-built tree is never
#   taken for a finished one. Concurrent callers wait on
#   DIR.lock. ENVC_DEBIAN_MIRROR overrides the mirror. Needs root and debootstrap
#   (apt-get install debootstrap). Prints the time taken.
set -euo pipefail
dir=${1:-/var/cache/envc-test/bookworm-cloudinit}
dir=${dir%/}
mirror=${ENVC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
marker=.envc-cloudinit-rootfs
# Bump when the recipe below changes: a cache made by another recipe is rebuilt.
recipe=2
start=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "cloudinit-rootfs.sh: needs root (debootstrap)" >&2
  exit 1
fi
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

if [ -f "$dir/$marker" ] && head -n1 "$dir/$marker" | grep -qx "recipe $recipe"; then
  echo "cloud-init rootfs: reusing $dir ($(($(date +%s) - start))s)"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "cloudinit-rootfs.sh: debootstrap not found: apt-get install debootstrap" >&2
  exit 1
fi
if [ -e "$dir" ] && [ ! -f "$dir/$marker" ]; then
  echo "cloudinit-rootfs.sh: $dir exists but is not a finished rootfs (no $marker); remove it" >&2
  exit 1
fi

tmp=$dir.tmp
if grep -qF " $tmp" /proc/self/mountinfo; then
  echo "cloudinit-rootfs.sh: something is mounted below $tmp; unmount it first" >&2
  exit 1
fi
rm -rf --one-file-system "$tmp"
log=$dir.build.log
: >"$log"
echo "cloud-init rootfs: building $dir (log: $log)"
# The systemd rootfs first; debootstrap cannot resolve cloud-init's dependencies
# itself (virtual packages such as python3-cffi-backend-api-min), so apt installs
# cloud-init after, pulling in what the LXD datasource needs (python3-requests,
# python3-yaml, isc-dhcp-client with iproute2, ...).
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  bookworm "$tmp" "$mirror" >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "cloudinit-rootfs.sh: debootstrap failed (log: $log)" >&2
  exit 1
fi
# apt in the chroot, in a mount namespace of its own (its /proc and /dev go with it,
# even if this script is killed); no service is started (policy-rc.d). Then the
# en_US.UTF-8 locale that cloud-init's locale module sets: update-locale refuses a
# locale that was never generated, and Debian's locale-gen ignores its arguments.
printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
if ! unshare --mount --propagation private sh -euc '
  mount -t proc proc "$1/proc"
  mount --rbind /dev "$1/dev"
  chroot "$1" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$1" apt-get install -y -qq --no-install-recommends cloud-init
  sed -i "s/^# *\(en_US.UTF-8 UTF-8\)/\1/" "$1/etc/locale.gen"
  chroot "$1" locale-gen
' sh "$tmp" >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "cloudinit-rootfs.sh: installing cloud-init failed (log: $log)" >&2
  exit 1
fi
rm -f "$tmp/usr/sbin/policy-rc.d"

# Only the LXD datasource (the socket envc serves), then None: boot never waits
# on network datasources.
mkdir -p "$tmp/etc/cloud/cloud.cfg.d"
cat >"$tmp/etc/cloud/cloud.cfg.d/99-envc.cfg" <<'EOF'
# envc test rootfs: cloud-init reads only /dev/lxd/sock.
datasource_list: [ LXD, None ]
EOF
# A container gets its machine id at boot; no apt caches in the image.
: >"$tmp/etc/machine-id"
rm -f "$tmp/var/lib/dbus/machine-id"
chroot "$tmp" apt-get clean
rm -rf "$tmp/var/lib/apt/lists/"*
cloud_init_version=$(chroot "$tmp" dpkg-query -W -f='${Version}' cloud-init)
printf 'recipe %s\ncloud-init %s, built %s\n' "$recipe" "$cloud_init_version" \
  "$(date -u +%FT%TZ)" >"$tmp/$marker"
if [ -e "$dir" ]; then
  # An older recipe's cache (checked above: it has the marker): replace it.
  if grep -qF " $dir/" /proc/self/mountinfo; then
    echo "cloudinit-rootfs.sh: something is mounted below $dir; unmount it first" >&2
    exit 1
  fi
  rm -rf --one-file-system "$dir"
fi
mv -T "$tmp" "$dir"
echo "cloud-init rootfs: built $dir (cloud-init $cloud_init_version) in $(($(date +%s) - start))s"
