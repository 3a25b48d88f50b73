// Package postfix runs private instances of the system's real Postfix
// (Debian package, 3.4 or later) for end-to-end tests.
//
// Each Instance has its own configuration, queue and data directories, its
// own maillog file (written by postlogd, so no syslog daemon is needed), and
// one smtpd listening on a loopback port. Nothing is delivered locally: mail
// leaves through transport_maps or relayhost to "[127.0.0.1]:PORT"
// destinations, typically smtpsink servers, and no DNS is used.
//
// Running Postfix needs root (the master daemon drops to the postfix user the
// package created). Tests should call SkipIfUnavailable first; install the
// package with scripts/deps.sh.
//
// Things worth knowing about private Postfix instances:
//
//   - The postfix user must be able to reach the data directory (master
//     opens its lock file there after dropping privileges), so the instance
//     cannot live below a 0700 directory such as t.TempDir()'s parent; see
//     Config.Dir.
//   - Unless it is PID 1, "postfix start-fg" runs "master -s" as a child of
//     postfix-script, which waits for it; master still makes itself a
//     session leader, so a ^C to the test does not reach it (a watchdog
//     process does the cleanup then). The harness finds an instance's
//     processes by their MAIL_CONFIG environment variable.
//   - Postfix commands print errors on standard error only if it is a
//     terminal, and a fatal error in main.cf happens before maillog_file is
//     known; the harness gives them a pseudo-terminal to capture those.
//   - Postfix waits for a table file modified within the last second to
//     "settle", so the harness backdates the files it writes.
//   - "postfix start-fg" refuses to run if the system's /etc/postfix/main.cf
//     sets multi_instance_directories.
package postfix

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"testing"
)

// Paths of the Postfix commands the harness runs.
const (
	// PostfixCmd is the postfix(1) control program.
	PostfixCmd = "/usr/sbin/postfix"
	// PostconfCmd is postconf(1).
	PostconfCmd = "/usr/sbin/postconf"
	// PostqueueCmd is postqueue(1).
	PostqueueCmd = "/usr/sbin/postqueue"
	// PostsuperCmd is postsuper(1).
	PostsuperCmd = "/usr/sbin/postsuper"
)

// KeepEnv names an environment variable: when it is set to 1, Stop keeps an
// instance's files (normally removed when the harness had to create them
// outside Config.Dir) so that they can be inspected after the test.
const KeepEnv = "LB_POSTFIX_KEEP"

// Available reports why private Postfix instances cannot run here, or nil
// if they can: Postfix must be installed, with its postfix user and postdrop
// group, and the process must run as root.
func Available() error {
	for _, p := range []string{PostfixCmd, PostconfCmd, PostqueueCmd, PostsuperCmd} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("postfix is not installed (%w); run scripts/deps.sh", err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("running Postfix needs root")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return fmt.Errorf("no postfix user: %w", err)
	}
	if _, err := user.LookupGroup("postdrop"); err != nil {
		return fmt.Errorf("no postdrop group: %w", err)
	}
	return nil
}

// SkipIfUnavailable skips the test, with the reason, when Available reports
// a problem.
func SkipIfUnavailable(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("skipping Postfix test: %v", err)
	}
}
