package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// TestRenderHeader: the fields in their usual order, the subject RFC 2047
// encoded when it is not ASCII, the auto-generated markers.
func TestRenderHeader(t *testing.T) {
	p := policy.Default()
	p.AdminAddress = "postmaster@corp.example"
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	got := string(render(mail{subject: "[loopbreaker] blocked jörg@x.example (rule r)", body: "one\ntwo\n"}, p, "mx.corp.example", now))
	want := "From: \"loopbreaker\" <MAILER-DAEMON@mx.corp.example>\r\n" +
		"To: <postmaster@corp.example>\r\n" +
		"Subject: =?utf-8?q?[loopbreaker]_blocked_j=C3=B6rg@x.example_(rule_r)?=\r\n" +
		"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n" +
		"Message-Id: <loopbreaker.1795435200000000000@mx.corp.example>\r\n" +
		"Auto-Submitted: auto-generated\r\n" +
		"X-Auto-Response-Suppress: All\r\n" +
		"Precedence: bulk\r\n" +
		"Mime-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\none\r\ntwo\r\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	p.AdminFrom = "loopbreaker@corp.example"
	if got := string(render(mail{subject: "s"}, p, "h", now)); !strings.HasPrefix(got, "From: \"loopbreaker\" <loopbreaker@corp.example>\r\n") {
		t.Errorf("with admin_from:\n%s", got)
	}
}
