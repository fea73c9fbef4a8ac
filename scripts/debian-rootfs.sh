#!/usr/bin/env bash
# Builds (or reuses) a Debian 12 (bookworm) rootfs that boots systemd under envc:
#   debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm DIR MIRROR
# Usage: scripts/debian-rootfs.sh [DIR]   (default /var/cache/envc-test/bookworm-systemd)
#
# - DIR is reused when it exists and has /lib/systemd/systemd (a finished build).
# - A build goes to DIR.tmp and is renamed to DIR only when debootstrap succeeded, so
#   an interrupted build never looks finished. A stale DIR.tmp is removed first.
# - The mirror is the one apt uses (/etc/apt/sources.list.d/debian.sources, else
#   /etc/apt/sources.list), else http://deb.debian.org/debian; ENVC_DEBIAN_MIRROR
#   overrides it.
# - Prints the time taken; the last line of stdout is "rootfs DIR (built in Ns)" or
#   "rootfs DIR (reused)". Needs root and debootstrap (apt-get install debootstrap).
set -euo pipefail

dir=${1:-/var/cache/envc-test/bookworm-systemd}
dir=${dir%/}
suite=bookworm

if [ -x "$dir/lib/systemd/systemd" ] || [ -x "$dir/usr/lib/systemd/systemd" ]; then
  echo "rootfs $dir (reused)"
  exit 0
fi
if [ -e "$dir" ]; then
  echo "debian-rootfs.sh: $dir exists but has no /lib/systemd/systemd; remove it first" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "debian-rootfs.sh: debootstrap needs root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "debian-rootfs.sh: debootstrap not found: apt-get install debootstrap" >&2
  exit 1
fi

mirror=${ENVC_DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
  # deb822: the URIs of the first stanza that lists the bookworm suite (not -security).
  mirror=$(awk '
    done { next }
    /^[[:space:]]*$/ { if (uris != "" && suite_ok) { print uris; done = 1 } uris = ""; suite_ok = 0; next }
    /^URIs:/ { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite_ok = 1 }
    END { if (!done && uris != "" && suite_ok) print uris }
  ' /etc/apt/sources.list.d/debian.sources | head -n1)
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

tmp="$dir.tmp"
mkdir -p "$(dirname "$dir")"
if [ -e "$tmp" ]; then
  # Never delete through a mount left by an interrupted run.
  if grep -qF " $tmp" /proc/self/mountinfo; then
    echo "debian-rootfs.sh: something is mounted below $tmp; unmount it first" >&2
    exit 1
  fi
  rm -rf "$tmp"
fi

echo "debootstrap $suite from $mirror into $tmp (about 2 minutes)..."
start=$(date +%s)
log="$(dirname "$dir")/debootstrap.log"
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
  echo "debian-rootfs.sh: debootstrap failed; the last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
if [ ! -x "$tmp/lib/systemd/systemd" ]; then
  echo "debian-rootfs.sh: debootstrap finished but $tmp/lib/systemd/systemd is missing" >&2
  exit 1
fi
mv -T "$tmp" "$dir"
secs=$(($(date +%s) - start))
echo "rootfs $dir (built in ${secs}s)"
