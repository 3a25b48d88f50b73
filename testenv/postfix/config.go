package postfix

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config describes a Postfix instance to start.
type Config struct {
	// Dir is a directory owned by the test, typically t.TempDir(). Required.
	// The instance lives in Dir/postfix-NAME. Postfix daemons run as the
	// postfix user and must be able to traverse that path; when they cannot
	// (t.TempDir() has a 0700 parent), the instance lives in a fresh 0755
	// directory under os.TempDir() instead, Dir/postfix-NAME is a symlink to
	// it, and Stop removes it.
	Dir string
	// Name names the instance: syslog_name is "postfix-" + Name, so maillog
	// lines read "postfix-NAME/smtpd[PID]: ...". Default "postfix".
	Name string
	// SMTPAddr is where smtpd listens. It must be an IPv4 loopback address.
	// Empty or port 0 ("127.0.0.1:0") picks a free port on 127.0.0.1.
	SMTPAddr string
	// MyHostname is myhostname. Default Name + "." + MyDomain.
	MyHostname string
	// MyDomain is mydomain. Default: MyHostname without its first label, or
	// "example.test".
	MyDomain string
	// Transports maps a transport_maps key (a domain, ".domain" for its
	// subdomains, or user@domain) to a transport:nexthop value such as
	// "smtp:[127.0.0.1]:2525".
	Transports map[string]string
	// RelayHost is relayhost, e.g. "[127.0.0.1]:2526", for every destination
	// not in Transports. Empty: there is no route to other destinations
	// (default_transport is "retry:"), and rather than look them up in DNS
	// smtpd refuses such recipients with 450 4.1.1 and mail Postfix makes
	// itself for them (a bounce, say) stays deferred.
	RelayHost string
	// Milters is smtpd_milters, e.g. "inet:127.0.0.1:7357" or
	// "unix:/path/to/socket". Empty: none.
	Milters string
	// NonSMTPDMilters is non_smtpd_milters. Empty: none.
	NonSMTPDMilters string
	// MainCF holds extra main.cf settings, applied after everything else so
	// they override the harness defaults (e.g. milter_default_action).
	MainCF map[string]string
	// MasterCF holds extra master.cf lines, appended as they are.
	MasterCF []string
}

// writeConfig writes main.cf, master.cf and the transport table.
func (i *Instance) writeConfig(cfg Config) error {
	domain, hostname := cfg.MyDomain, cfg.MyHostname
	if domain == "" {
		if _, rest, ok := strings.Cut(hostname, "."); ok && rest != "" {
			domain = rest
		} else {
			domain = "example.test"
		}
	}
	if hostname == "" {
		hostname = i.name + "." + domain
	}

	type kv struct{ k, v string }
	params := []kv{
		{"compatibility_level", "3.6"},
		{"queue_directory", i.queueDir},
		{"data_directory", i.dataDir},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"syslog_name", "postfix-" + i.name},
		{"maillog_file", i.logFile},
		{"maillog_file_prefixes", i.root},
		{"import_environment", "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"},
		{"myhostname", hostname},
		{"mydomain", domain},
		{"myorigin", "$myhostname"},
		{"mydestination", ""},
		{"local_recipient_maps", ""},
		{"local_transport", "error:5.1.1 local delivery is disabled"},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"biff", "no"},
		{"inet_interfaces", "127.0.0.1"},
		{"inet_protocols", "ipv4"},
		{"mynetworks", "127.0.0.0/8"},
		{"relayhost", cfg.RelayHost},
		{"transport_maps", ""},
		{"smtp_dns_support_level", "disabled"},
		{"lmtp_dns_support_level", "disabled"},
		{"smtp_host_lookup", "native"},
		{"lmtp_host_lookup", "native"},
		{"smtpd_peername_lookup", "no"},
		{"smtp_tls_security_level", "none"},
		{"smtpd_tls_security_level", "none"},
		{"smtputf8_enable", "no"},
		{"smtpd_milters", cfg.Milters},
		{"non_smtpd_milters", cfg.NonSMTPDMilters},
		{"milter_protocol", "6"},
		{"milter_default_action", "accept"},
		{"queue_run_delay", "1s"},
		{"minimal_backoff_time", "1s"},
		{"maximal_backoff_time", "2s"},
		{"transport_retry_time", "1s"},
		{"delay_warning_time", "0h"},
		{"in_flow_delay", "0"},
	}
	if cfg.RelayHost == "" {
		params = append(params, kv{"default_transport", "retry:no RelayHost in this test instance"})
	}
	if len(cfg.Transports) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(cfg.Transports)) {
			v := cfg.Transports[k]
			if k == "" || strings.ContainsAny(k, " \t\r\n#") || v == "" || strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("postfix %s: bad Transports entry %q = %q", i.name, k, v)
			}
			fmt.Fprintf(&b, "%s %s\n", k, v)
		}
		file := filepath.Join(i.confDir, "transport")
		if err := writeSettled(file, b.String()); err != nil {
			return fmt.Errorf("postfix %s: %w", i.name, err)
		}
		// texthash: needs no postmap; daemons read it when they start.
		params[slices.IndexFunc(params, func(p kv) bool { return p.k == "transport_maps" })].v = "texthash:" + file
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.MainCF)) {
		v := cfg.MainCF[k]
		if k == "" || strings.ContainsAny(k, " \t\r\n=#") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("postfix %s: bad MainCF entry %q = %q", i.name, k, v)
		}
		if j := slices.IndexFunc(params, func(p kv) bool { return p.k == k }); j >= 0 {
			params[j].v = v
		} else {
			params = append(params, kv{k, v})
		}
	}
	var main strings.Builder
	main.WriteString("# Written by loopbreaker testenv/postfix.\n")
	for _, p := range params {
		fmt.Fprintf(&main, "%s = %s\n", p.k, p.v)
	}
	if err := writeSettled(filepath.Join(i.confDir, "main.cf"), main.String()); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}

	if err := writeSettled(filepath.Join(i.confDir, "master.cf"), MasterCF(i.smtpAddr, cfg.MasterCF...)); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}
	return nil
}

// writeSettled writes a configuration file and backdates it. Postfix
// distrusts a table modified within the last second (it may still be being
// written): every program reading it would pause in 300ms steps until the
// file "settles", which made each start about two seconds slower.
func writeSettled(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	past := time.Now().Add(-time.Minute)
	return os.Chtimes(path, past, past)
}

// MasterCF returns the master.cf of a test instance: smtpd listening at
// smtpListen ("127.0.0.1:PORT", or "smtp" for port 25 on every address as
// in the container environment), Postfix's internal services, then the
// extra lines (Config.MasterCF). It is the one source of master.cf: the
// containers' entrypoint gets it from "lbtestenv master-cf".
func MasterCF(smtpListen string, extra ...string) string {
	var b strings.Builder
	b.WriteString("# Written by loopbreaker testenv/postfix. No chroot anywhere.\n")
	b.WriteString("# service type  private unpriv  chroot  wakeup  maxproc command + args\n")
	fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", smtpListen)
	b.WriteString(masterServices)
	for _, l := range extra {
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

// masterServices are the internal services of Debian's master.cf, without
// chroot and without local delivery and pipe transports.
const masterServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// parseSMTPAddr splits Config.SMTPAddr, insisting on IPv4 loopback.
func parseSMTPAddr(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", 0, nil
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: must be an IPv4 loopback address", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: bad port", addr)
	}
	return ip.String(), port, nil
}

// sanitizeName keeps letters, digits, '.', '_' and '-'.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}
