#!/bin/sh
# sendmail-entrypoint.sh - build sendmail.cf from sendmail.mc (m4) and run
# the Sendmail daemon in the foreground.
set -eu
cd /etc/mail
m4 /etc/mail/lb/sendmail.mc >/etc/mail/sendmail.cf
printf 'corp.example\tesmtp:[mailstore]\n.corp.example\tesmtp:[mailstore]\noutside.example\tesmtp:[outside]\n' >/etc/mail/mailertable
makemap hash /etc/mail/mailertable </etc/mail/mailertable
mkdir -p /run/sendmail/mta /var/spool/mqueue /var/lib/sendmail/host_status
chmod 0700 /var/spool/mqueue
# No syslog daemon in a container: lbtestenv prints what Sendmail (and its
# milter code) logs to /dev/log on standard output.
/usr/local/bin/lbtestenv syslog -socket /dev/log &
sleep 0.2
echo "sendmail: starting with loopbreaker as INPUT_MAIL_FILTER (S=inet:7357@loopbreaker)"
exec /usr/sbin/sendmail -bD -q15s -O LogLevel=9
