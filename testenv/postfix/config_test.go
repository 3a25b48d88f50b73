package postfix

import (
	"slices"
	"strings"
	"testing"
)

// TestMasterCF: the one master.cf source gives smtpd the listen address
// asked for, every internal service, and the extra lines last.
func TestMasterCF(t *testing.T) {
	got := MasterCF("smtp", "127.0.0.1:2626 inet n - n - - smtpd -o smtpd_milters=")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if !slices.Contains(lines, "smtp inet n - n - - smtpd") {
		t.Errorf("no smtpd on the smtp service:\n%s", got)
	}
	for _, svc := range []string{"pickup", "cleanup", "qmgr", "bounce", "smtp ", "error", "postlog"} {
		if !strings.Contains(got, "\n"+svc) {
			t.Errorf("master.cf lacks %q:\n%s", svc, got)
		}
	}
	if last := lines[len(lines)-1]; last != "127.0.0.1:2626 inet n - n - - smtpd -o smtpd_milters=" {
		t.Errorf("last line %q", last)
	}
}
