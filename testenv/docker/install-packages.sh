#!/bin/sh
# install-packages.sh PACKAGE... - install Debian packages in an image:
# from the apt cache of a base built by base.sh (no network), else from the
# mirror. Starts no service; leaves no cache behind.
set -eu
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
if ! apt-get install -y -q --no-install-recommends --no-download "$@" >/tmp/apt.log 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "$@" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
fi
rm -f /usr/sbin/policy-rc.d /tmp/apt.log
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
