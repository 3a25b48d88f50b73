#!/usr/bin/env bash
# base.sh - build the base image for testenv/docker without any image
# registry: debootstrap a minimal Debian bookworm, download (not install)
# the packages the images need into its apt cache, and docker import it.
#
#   bash testenv/docker/base.sh [IMAGE]     default IMAGE: loopbreaker-base:bookworm
#
# The Dockerfile installs from that cache (apt-get install --no-download),
# so building the images needs no network either; with the default base
# (debian:bookworm-slim) it downloads them instead. Needs root and
# debootstrap (scripts/deps.sh installs it). Does nothing when the image
# exists, unless LB_REBUILD_BASE=1. Set LB_DEBIAN_MIRROR to use another
# mirror.
set -euo pipefail

image=${1:-loopbreaker-base:bookworm}
mirror=${LB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

if [[ ${LB_REBUILD_BASE:-0} != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
	exit 0
fi
if ((EUID != 0)); then
	echo "base.sh: debootstrap needs root" >&2
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	echo "base.sh: debootstrap is not installed (apt-get install debootstrap, or scripts/deps.sh)" >&2
	exit 1
fi

root=$(mktemp -d /var/tmp/loopbreaker-base.XXXXXX)
chmod 0755 "$root" # the image's /: mktemp made it 0700
cleanup() {
	# debootstrap may leave /proc or /sys mounted after a failure.
	for m in proc sys dev/pts; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
	done
	rm -rf --one-file-system "$root"
}
trap cleanup EXIT

echo "base.sh: debootstrap --variant=minbase $suite from $mirror" >&2
debootstrap --variant=minbase --include=netbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -20 "$root.log" >&2
	rm -f "$root.log"
	exit 1
}
rm -f "$root.log"

# Download what the images install, into the image's own apt cache.
# postfix and sendmail conflict: resolve them one at a time.
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -qq
for pkgs in "postfix" "sendmail-bin sendmail-cf m4" "redis-server"; do
	# shellcheck disable=SC2086
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends $pkgs >/dev/null
done
rm -f "$root/etc/resolv.conf"
rm -rf "$root"/var/log/* "$root"/tmp/*

echo "base.sh: importing $image" >&2
tar -C "$root" --numeric-owner -c . | docker import -c 'CMD ["/bin/bash"]' -m "debootstrap --variant=minbase $suite (loopbreaker testenv)" - "$image" >/dev/null
echo "base.sh: $image ready" >&2
