#!/bin/sh
# postfix-entrypoint.sh ROLE HOSTNAME - configure and run Postfix in the
# foreground, logging to stdout.
#   hub       a corp.example hub with loopbreaker as milter
#             (LB_BOUNCE_MILTER=1: the hub's own bounces too)
#   outside   outside.example, which refuses users it does not have
set -eu
role=${1:-hub}
host=${2:-$(hostname)}
milter=${LB_MILTER:-inet:loopbreaker:7357}
conf=/etc/postfix

common() {
	cat <<EOC
compatibility_level = 3.6
myhostname = $host
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = all
inet_protocols = ipv4
biff = no
maillog_file = /dev/stdout
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtputf8_enable = no
smtpd_banner = \$myhostname ESMTP
transport_maps = texthash:$conf/transport
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
delay_warning_time = 0h
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
EOC
}

case $role in
hub)
	{
		common
		cat <<EOC
mydomain = corp.example
mynetworks_style = subnet
relay_domains = corp.example
smtpd_milters = $milter
milter_protocol = 6
milter_default_action = ${LB_MILTER_DEFAULT_ACTION:-tempfail}
EOC
		if [ "${LB_BOUNCE_MILTER:-0}" = 1 ]; then
			echo "non_smtpd_milters = $milter"
			echo "internal_mail_filter_classes = bounce"
		fi
	} >$conf/main.cf
	cat >$conf/transport <<EOC
corp.example smtp:[mailstore]:25
outside.example smtp:[outside]:25
EOC
	;;
outside)
	{
		common
		cat <<EOC
mydomain = outside.example
mynetworks_style = host
relay_domains = outside.example
relay_recipient_maps = texthash:$conf/outside-users
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
smtp_fallback_relay = [hub2]:25
EOC
	} >$conf/main.cf
	cat >$conf/transport <<EOC
outside.example smtp:[mailstore]:2525
corp.example smtp:[hub1]:25
.corp.example smtp:[hub1]:25
EOC
	: >$conf/outside-users
	for u in ${LB_OUTSIDE_USERS:-carol friend helpdesk}; do
		echo "$u@outside.example OK" >>$conf/outside-users
	done
	;;
*)
	echo "postfix-entrypoint.sh: unknown role $role (hub, outside)" >&2
	exit 2
	;;
esac

# master.cf has one source, testenv/postfix's MasterCF, which the
# harness's instances use too.
lbtestenv master-cf -smtp smtp >$conf/master.cf
# Backdated, so that Postfix does not wait for the tables to settle.
touch -d '1 minute ago' $conf/*
postfix check
exec postfix start-fg
