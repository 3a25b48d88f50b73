#!/usr/bin/env bash
# image-context.sh DIR BINARY - the build context of the daemon's image
# (Dockerfile, beside this script) in DIR: the Dockerfile, BINARY (a static
# loopbreaker, CGO_ENABLED=0) as loopbreaker, passwd and group with the
# loopbreaker user, and the empty state/ directory that becomes
# /var/lib/loopbreaker owned by that user. Then: docker build DIR.
# make image and testenv/docker (run.sh up, the container test) use it.
set -euo pipefail

if (($# != 2)); then
	sed -n '2,7p' "$0" >&2
	exit 2
fi
dir=$1 bin=$2
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$dir"
install -m 0644 "$here/Dockerfile" "$dir/Dockerfile"
install -m 0755 "$bin" "$dir/loopbreaker"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
	'loopbreaker:x:65532:65532:loopbreaker milter:/var/lib/loopbreaker:/sbin/nologin' >"$dir/passwd"
printf '%s\n' 'root:x:0:' 'loopbreaker:x:65532:' >"$dir/group"
chmod 0644 "$dir/passwd" "$dir/group"
rm -rf "$dir/state"
install -d -m 0750 "$dir/state"
