package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// dsn is a null-sender delivery status notification (RFC 3464) to rcpt.
func dsn(rcpt string, n int) []byte {
	return testenv.Message([][2]string{
		{"From", "Mail Delivery System <MAILER-DAEMON@outside.example>"},
		{"To", rcpt},
		{"Subject", "Undelivered Mail Returned to Sender"},
		{"Message-ID", "<dsn-" + string(rune('a'+n)) + "@outside.example>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/report; report-type=delivery-status; boundary="b"`},
	}, "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"+
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.outside.example\r\n\r\n"+
		"Final-Recipient: rfc822; invalid@outside.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n")
}

// TestBlockedBounceStormRefusedAtRCPT: once bounces to a recipient are
// blocked, the next null-sender message to that recipient is refused at
// RCPT TO, before its body is sent; other recipients still get bounces.
func TestBlockedBounceStormRefusedAtRCPT(t *testing.T) {
	requirePostfix(t)
	pol := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(pol, []byte(`local_domains = ["corp.example"]
[[rule]]
name = "bounces-to-recipient"
kinds = ["bounce"]
direction = "inbound"
key = "recipient"
limit = 3
window = "10m"
action = "reject"
block_for = "1h"
`), 0o644)
	h := startHub(t, "-policy", pol)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const list = "list@corp.example"
	for i := 0; i < 3; i++ {
		send(t, ctx, h, "", []string{list}, dsn(list, i))
	}
	// The 4th starts the block: refused at end of DATA (its kind is known
	// only from the message).
	err := testenv.SendMail(ctx, h.pf.SMTPAddr(), "", []string{list}, dsn(list, 3))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(err.Error(), "end of DATA") {
		t.Fatalf("4th bounce: %v, want 550 at end of DATA", err)
	}
	// From now on: refused at RCPT TO.
	for i := 4; i < 6; i++ {
		err := testenv.SendMail(ctx, h.pf.SMTPAddr(), "", []string{list}, dsn(list, i))
		if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(err.Error(), "RCPT TO") || !strings.Contains(se.Message, "loopbreaker") {
			t.Fatalf("bounce %d: %v, want 550 at RCPT TO", i+1, err)
		}
	}
	// Bounces to someone else still arrive.
	send(t, ctx, h, "", []string{"carol@corp.example"}, dsn("carol@corp.example", 9))
	h.settle(t, ctx, 0, 4)
	if n := h.mailstore.Count(); n != 4 {
		t.Fatalf("mailstore got %d, want 3 to the list and 1 to carol", n)
	}
	if !strings.Contains(h.daemon.Log(), `msg="refused at RCPT"`) {
		t.Error("daemon did not log the RCPT refusal")
	}
}
