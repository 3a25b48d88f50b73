#!/usr/bin/env bash
# deps.sh - install the Debian packages the loopbreaker tests need.
#
# Idempotent and quiet: when everything is present it prints nothing and
# exits 0. It runs "apt-get update" only when a package is missing. As root it
# installs the missing packages non-interactively; otherwise it prints what to
# install and exits 1.
#
# Postfix is preseeded with "No configuration": the package installs its
# binaries and the postfix/postdrop system accounts but writes no
# /etc/postfix/main.cf and starts no system mail service. The end-to-end tests
# run private Postfix instances of their own (see testenv/postfix).
set -euo pipefail

# Debian package name -> a file it provides that the tests use.
# debootstrap builds the base image of the container test (testenv/docker)
# where no image registry is reachable; that test skips without Docker.
# redis-server: the tests of the shared (Redis) state backend start their own.
# prometheus: for its promtool, which checks and unit-tests the alerting rules
# (cmd/loopbreaker/dist/monitoring); its service is not started here (see
# policy-rc.d below) and the tests start no Prometheus server.
# groff-base: the man page test renders loopbreaker(8) and loopbreaker.toml(5).
declare -A wanted=(
	[postfix]=/usr/sbin/postfix
	[swaks]=/usr/bin/swaks
	[chromium]=/usr/bin/chromium
	[debootstrap]=/usr/sbin/debootstrap
	[redis-server]=/usr/bin/redis-server
	[prometheus]=/usr/bin/promtool
	[redis-tools]=/usr/bin/redis-cli
	[groff-base]=/usr/bin/groff
)

is_installed() {
	local pkg=$1 file=$2
	[[ -x $file ]] || return 1
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for pkg in "${!wanted[@]}"; do
	is_installed "$pkg" "${wanted[$pkg]}" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
	echo "deps.sh: install them as root, for example:" >&2
	echo "  echo 'postfix postfix/main_mailer_type select No configuration' | sudo debconf-set-selections" >&2
	echo "  sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: installing ${missing[*]}" >&2

# Never configure or start a system-wide Postfix.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Belt and braces: forbid maintainer scripts from starting any service while
# we install, unless the host already has its own policy-rc.d.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for pkg in "${missing[@]}"; do
	if ! is_installed "$pkg" "${wanted[$pkg]}"; then
		echo "deps.sh: $pkg is still missing after apt-get install" >&2
		exit 1
	fi
done
