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
#
# deps.sh --bench also installs what only `make bench` needs (see bench
# below): packages too large for every test run, or ones that come with a
# system service.
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
	# testenv/bench's TestFloorNegotiatesLikeLoopbreaker compiles the floor
	# milter (testenv/bench/floor/floor.c) against libmilter with cc.
	[libmilter-dev]=/usr/include/libmilter/mfapi.h
	[gcc]=/usr/bin/gcc
)

# Only for `make bench` (deps.sh --bench): rspamd, the peer the benchmark
# measures beside loopbreaker (about 60 MB with its libraries). Its Debian
# package enables a system service; policy-rc.d below keeps it from starting
# while installing, and the service is disabled afterwards: the benchmark
# runs an rspamd of its own, with its own configuration, on loopback ports.
declare -A bench=(
	[rspamd]=/usr/bin/rspamd
)
if [[ ${1:-} == --bench ]]; then
	for pkg in "${!bench[@]}"; do
		wanted[$pkg]=${bench[$pkg]}
	done
fi

is_installed() {
	local pkg=$1 file=$2
	[[ -e $file ]] || return 1
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

# A system rspamd must not run beside the benchmark's own.
for pkg in "${missing[@]}"; do
	if [[ $pkg == rspamd ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		systemctl disable --now rspamd.service >/dev/null 2>&1 || true
	fi
done
