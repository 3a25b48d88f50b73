package scenario

import (
	"bytes"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

func TestWriteMailbox(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	delivered := []smtpsink.Message{
		{From: "carol@outside.example", To: []string{Alice}, Received: at, Data: []byte("From: carol@outside.example\r\nTo: alice@corp.example\r\nSubject: figures\r\n\r\nFrom the desk of Carol\r\n")},
		{From: "", To: []string{Alice}, Received: at.Add(time.Second), Data: []byte("From: MAILER-DAEMON\r\nSubject: Undelivered Mail\r\n\r\nsorry\r\n")},
		{From: "x@outside.example", To: []string{Bob}, Received: at, Data: []byte("Subject: not alice's\r\n\r\n")},
	}
	subs := []Submission{
		{Time: at.Add(2 * time.Second), From: Alice, To: []string{Nobody}, Data: []byte("From: alice@corp.example\r\nSubject: FW: figures\r\n\r\nfw\r\n")},
		{Time: at.Add(3 * time.Second), From: Alice, To: []string{Nobody}, Err: errors.New("refused"), Data: []byte("Subject: refused\r\n\r\n")},
	}
	mb, err := WriteMailbox(t.TempDir(), Alice, delivered, subs)
	if err != nil {
		t.Fatal(err)
	}
	if mb.InboxMessages != 2 || mb.SentMessages != 1 {
		t.Fatalf("inbox %d, sent %d; want 2, 1", mb.InboxMessages, mb.SentMessages)
	}
	files, _ := filepath.Glob(filepath.Join(mb.InboxMaildir(), "new", "*"))
	emls, _ := filepath.Glob(filepath.Join(mb.InboxEML(), "*.eml"))
	if len(files) != 2 || len(emls) != 2 {
		t.Fatalf("maildir %d files, eml %d; want 2", len(files), len(emls))
	}
	raw, _ := os.ReadFile(emls[1])
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Return-Path") != "<>" || m.Header.Get("X-Original-To") != Alice || m.Header.Get("Delivered-To") != Alice ||
		!strings.Contains(m.Header.Get("Received"), "for <"+Alice+">; Mon, 23 Nov 2026 10:00:01 +0000") || bytes.Contains(raw, []byte("\r\n")) {
		t.Fatalf("delivered message:\n%s", raw)
	}
	box, _ := os.ReadFile(mb.InboxMbox())
	if !bytes.HasPrefix(box, []byte("From carol@outside.example Mon Nov 23 10:00:00 2026\n")) || !bytes.Contains(box, []byte("\n>From the desk")) ||
		!bytes.Contains(box, []byte("\nFrom MAILER-DAEMON Mon Nov 23 10:00:01 2026\n")) {
		t.Fatalf("mbox:\n%s", box)
	}
	var out strings.Builder
	kept, err := mb.Keep(&out, filepath.Join(t.TempDir(), "kept"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept.SentMbox()); err != nil || !strings.Contains(out.String(), "loopbreaker replay -local-domains corp.example -mailbox outbound -html "+filepath.Join(kept.Dir, "sent-report.html")) {
		t.Fatalf("kept: %v\n%s", err, out.String())
	}
}
