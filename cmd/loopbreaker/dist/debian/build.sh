#!/usr/bin/env bash
# build.sh BINARY VERSION ARCH OUTDIR - build loopbreaker_VERSION_ARCH.deb in
# OUTDIR from a static loopbreaker binary (make deb does this).
#
# The package installs /usr/sbin/loopbreaker; the systemd unit
# (../loopbreaker.service, written for make install's /usr/local/sbin) in
# /lib/systemd/system with ExecStart and Documentation rewritten for /usr;
# /etc/loopbreaker/policy.toml (loopbreaker default-policy) as a conffile;
# the man pages loopbreaker(8) and loopbreaker.toml(5); README.md and
# copyright in /usr/share/doc/loopbreaker. postinst makes the loopbreaker
# system user and /var/lib/loopbreaker. dpkg-deb builds it, owned by root.
set -euo pipefail

if (($# != 4)); then
	sed -n '2,3p' "$0" >&2
	exit 2
fi
bin=$1 version=$2 arch=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
dist=$(dirname "$here")
root=$(cd "$dist/../../.." && pwd)

case $version in
[0-9]*) ;;
*)
	echo "build.sh: version $version: a Debian version starts with a digit" >&2
	exit 1
	;;
esac
command -v dpkg-deb >/dev/null || {
	echo "build.sh: dpkg-deb not found (Debian's dpkg package)" >&2
	exit 1
}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/loopbreaker
umask 022

install -D -m 0755 "$bin" "$pkg/usr/sbin/loopbreaker"

# The unit, pointed at /usr.
install -d -m 0755 "$pkg/lib/systemd/system"
sed -e 's#/usr/local/sbin/loopbreaker#/usr/sbin/loopbreaker#g' \
	-e "s#^Documentation=file:///usr/local/share/doc/loopbreaker/README.md\$#Documentation=man:loopbreaker(8) file:///usr/share/doc/loopbreaker/README.md.gz#" \
	-e 's#`make install` puts it in /etc/systemd/system\.#the Debian package installs it in /lib/systemd/system.#' \
	"$dist/loopbreaker.service" >"$pkg/lib/systemd/system/loopbreaker.service"
chmod 0644 "$pkg/lib/systemd/system/loopbreaker.service"
if ! grep -q '^ExecStart=/usr/sbin/loopbreaker serve ' "$pkg/lib/systemd/system/loopbreaker.service" ||
	grep -q /usr/local "$pkg/lib/systemd/system/loopbreaker.service"; then
	echo "build.sh: the packaged unit still points at /usr/local:" >&2
	grep -n /usr/local "$pkg/lib/systemd/system/loopbreaker.service" >&2
	exit 1
fi

# The policy, a conffile.
install -d -m 0755 "$pkg/etc/loopbreaker"
"$bin" default-policy >"$pkg/etc/loopbreaker/policy.toml"
chmod 0644 "$pkg/etc/loopbreaker/policy.toml"

# Man pages and documentation, compressed as policy asks (gzip -n: no
# timestamp, so the package is reproducible).
install -d -m 0755 "$pkg/usr/share/man/man8" "$pkg/usr/share/man/man5" "$pkg/usr/share/doc/loopbreaker"
"$bin" man 8 | gzip -9n >"$pkg/usr/share/man/man8/loopbreaker.8.gz"
"$bin" man 5 | gzip -9n >"$pkg/usr/share/man/man5/loopbreaker.toml.5.gz"
gzip -9n <"$root/README.md" >"$pkg/usr/share/doc/loopbreaker/README.md.gz"
{
	cat "$here/copyright"
	# The Go modules linked into the static binary, each under its own
	# license (see its source).
	mods=$(go version -m "$bin" 2>/dev/null | awk '$1 == "dep" { print "  " $2 " " $3 }') || true
	if [[ -n $mods ]]; then
		printf '\nFiles: usr/sbin/loopbreaker\nComment: the binary also links these Go modules, each under the license in its source:\n'
		sed 's/^  / /' <<<"$mods"
	fi
} >"$pkg/usr/share/doc/loopbreaker/copyright"
date=$(git -C "$root" log -1 --format=%aD 2>/dev/null || date -R)
printf 'loopbreaker (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
	"$version" "$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo 'a source tree')" \
	"${DEB_MAINTAINER:-loopbreaker maintainers <loopbreaker@localhost>}" "$date" |
	gzip -9n >"$pkg/usr/share/doc/loopbreaker/changelog.gz"
chmod 0644 "$pkg"/usr/share/doc/loopbreaker/* "$pkg"/usr/share/man/man*/*

# Control area.
install -d -m 0755 "$pkg/DEBIAN"
size=$(du -sk --apparent-size "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
	-e "s|@MAINTAINER@|${DEB_MAINTAINER:-loopbreaker maintainers <loopbreaker@localhost>}|" \
	"$here/control.in" >"$pkg/DEBIAN/control"
install -m 0644 "$here/conffiles" "$pkg/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/loopbreaker_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
