#!/usr/bin/env bash
# Builds a minimal busybox rootfs at DIR (Debian's busybox-static).
# Usage: scripts/make-rootfs.sh DIR
set -euo pipefail
dir=${1:?usage: make-rootfs.sh DIR}
bb=$(command -v busybox || true)
if [ -z "$bb" ] || ! "$bb" --list >/dev/null 2>&1; then
  echo "busybox not found: apt-get install busybox-static" >&2
  exit 1
fi
mkdir -p "$dir"/{bin,sbin,etc,dev,proc,sys,tmp,root,run,var/log,usr/bin,usr/sbin}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
ln -sf /bin/busybox "$dir/sbin/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$dir/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' > "$dir/etc/group"
echo "rootfs ready at $dir"
