#!/usr/bin/env bash
# run.sh - the container test environment in three commands.
#
#   testenv/docker/run.sh up                         build binaries and images, start the stack
#   testenv/docker/run.sh storm [hub1|hub2|sendmail] [USER]
#                                                    a forwarding-rule storm through that MTA
#   testenv/docker/run.sh down                       stop and remove the stack
#
# LB_BASE_IMAGE chooses the base image (default debian:bookworm-slim, which
# needs a registry). Without a registry: sudo testenv/docker/base.sh, then
# LB_BASE_IMAGE=loopbreaker-base:bookworm testenv/docker/run.sh up.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose -f "$here/compose.yaml" "$@"
	else
		docker-compose -f "$here/compose.yaml" "$@"
	fi
}

case ${1:-} in
up)
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$here/bin/" ./cmd/loopbreaker ./testenv/docker/lbtestenv)
	# The daemon's image (make image's Dockerfile) builds from ./image.
	bash "$root/cmd/loopbreaker/dist/image-context.sh" "$here/image" "$here/bin/loopbreaker"
	if [[ ${LB_BASE_IMAGE:-} == loopbreaker-base:* ]]; then
		export LB_BUILD_NETWORK=${LB_BUILD_NETWORK:-none} # everything is in the base's apt cache
	fi
	compose up --build -d
	compose ps
	;;
storm)
	via=${2:-hub1}
	user=${3:-alice@corp.example}
	compose exec -T mailstore lbtestenv scenario forward-storm -via "$via" -user "$user"
	;;
down)
	compose down -v --remove-orphans
	;;
*)
	sed -n '2,11p' "$0" >&2
	exit 2
	;;
esac
