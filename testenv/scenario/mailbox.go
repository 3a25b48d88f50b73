package scenario

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// MailboxHost is the name the mailstore's local delivery writes into the
// headers it adds.
const MailboxHost = "mailstore." + HubDomain

// Mailbox is a user's mail as a run left it, written out as a mail server
// and a mail client would keep it: Inbox is what was delivered to the user
// (with Return-Path, Delivered-To, X-Original-To and the mailstore's
// Received field, as local delivery writes them), Sent what the user (or
// the user's mailbox rule) submitted, as the client keeps its copy. Each is
// an mbox file, a Maildir and a folder of .eml files, in time order.
type Mailbox struct {
	User string
	Dir  string
	// InboxMessages and SentMessages are how many messages each holds.
	InboxMessages, SentMessages int
}

// Paths of the written folders.
func (m Mailbox) InboxMbox() string    { return filepath.Join(m.Dir, "Inbox.mbox") }
func (m Mailbox) InboxMaildir() string { return filepath.Join(m.Dir, "Maildir") }
func (m Mailbox) InboxEML() string     { return filepath.Join(m.Dir, "Inbox.eml") }
func (m Mailbox) SentMbox() string     { return filepath.Join(m.Dir, "Sent.mbox") }
func (m Mailbox) SentMaildir() string  { return filepath.Join(m.Dir, "Sent.maildir") }
func (m Mailbox) SentEML() string      { return filepath.Join(m.Dir, "Sent.eml") }

// ReplayCommands are the `loopbreaker replay` command lines that run the
// mailbox through the daemon's engine: the Sent folder (what the rule sent,
// where an outbound loop shows: replay starts the block where the daemon
// did) and the Inbox. prog is how to run loopbreaker ("" for
// "loopbreaker"; "go run ./cmd/loopbreaker" in a checkout).
func (m Mailbox) ReplayCommands(prog string) []string {
	if prog == "" {
		prog = "loopbreaker"
	}
	return []string{
		fmt.Sprintf("%s replay -local-domains %s -mailbox outbound -html %s %s", prog, HubDomain, shq(filepath.Join(m.Dir, "sent-report.html")), shq(m.SentMbox())),
		fmt.Sprintf("%s replay -local-domains %s -html %s %s", prog, HubDomain, shq(filepath.Join(m.Dir, "inbox-report.html")), shq(m.InboxMaildir())),
	}
}

func shq(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\"$\\`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Keep copies the mailbox to dir (replacing what is there), where it
// outlives the run's directory, and prints where it is and the replay
// commands for it; prog is as for ReplayCommands.
func (m Mailbox) Keep(w io.Writer, dir, prog string) (Mailbox, error) {
	kept := m
	kept.Dir = dir
	if err := os.RemoveAll(dir); err != nil {
		return m, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return m, err
	}
	if err := os.CopyFS(dir, os.DirFS(m.Dir)); err != nil {
		return m, err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		kept.Dir = abs
	}
	fmt.Fprintf(w, "\n%s's mailbox as this run left it: %s\n  Inbox (%d messages, as delivered): Inbox.mbox, Maildir/, Inbox.eml/\n  Sent (%d messages, the rule's forwards among them): Sent.mbox, Sent.maildir/, Sent.eml/\nreplay it through loopbreaker's engine:\n  %s\n",
		m.User, kept.Dir, m.InboxMessages, m.SentMessages, strings.Join(kept.ReplayCommands(prog), "\n  "))
	return kept, nil
}

// stored is one message of a folder.
type stored struct {
	from string // envelope sender, "" for <>
	at   time.Time
	data []byte // LF line endings
}

// WriteMailbox writes user's Inbox (from the mailstore's messages) and Sent
// folder (from the submissions the world took from user, the refused ones
// left out) under dir/<user>.
func WriteMailbox(dir, user string, delivered []smtpsink.Message, subs []Submission) (Mailbox, error) {
	mb := Mailbox{User: user, Dir: filepath.Join(dir, user)}
	var inbox, sent []stored
	for i, m := range delivered {
		for _, rcpt := range m.To {
			if !strings.EqualFold(rcpt, user) {
				continue
			}
			inbox = append(inbox, stored{from: m.From, at: m.Received, data: delivery(m, user, i)})
		}
	}
	for _, s := range subs {
		if s.Err != nil || !strings.EqualFold(s.From, user) || s.Data == nil {
			continue
		}
		sent = append(sent, stored{from: s.From, at: s.Time, data: lf(s.Data)})
	}
	mb.InboxMessages, mb.SentMessages = len(inbox), len(sent)
	for _, f := range []struct {
		msgs            []stored
		mbox, md, emlDr string
	}{{inbox, mb.InboxMbox(), mb.InboxMaildir(), mb.InboxEML()}, {sent, mb.SentMbox(), mb.SentMaildir(), mb.SentEML()}} {
		if err := writeFolder(f.msgs, f.mbox, f.md, f.emlDr); err != nil {
			return mb, err
		}
	}
	return mb, nil
}

// delivery is m as local delivery on the mailstore writes it into user's
// mailbox: Return-Path (the envelope sender), Delivered-To, X-Original-To
// (the RCPT TO) and the mailstore's Received field above the message.
func delivery(m smtpsink.Message, user string, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\n", m.From)
	fmt.Fprintf(&b, "X-Original-To: %s\n", user)
	fmt.Fprintf(&b, "Delivered-To: %s\n", user)
	fmt.Fprintf(&b, "Received: from hub.%s (hub.%s [127.0.0.1])\n\tby %s (Postfix) with ESMTP id %X\n\tfor <%s>; %s\n",
		HubDomain, HubDomain, MailboxHost, 0x5A000000+n, user, m.Received.UTC().Format(time.RFC1123Z))
	b.Write(lf(m.Data))
	return b.Bytes()
}

func lf(data []byte) []byte { return bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")) }

// writeFolder writes msgs as an mbox (mboxrd quoting), a Maildir (new/, one
// file each, names in delivery order) and a folder of .eml files.
func writeFolder(msgs []stored, mbox, maildir, emlDir string) error {
	for _, d := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(emlDir, 0o755); err != nil {
		return err
	}
	var box bytes.Buffer
	for i, m := range msgs {
		from := m.from
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(&box, "From %s %s\n", from, m.at.UTC().Format("Mon Jan _2 15:04:05 2006"))
		for _, line := range bytes.SplitAfter(m.data, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				box.WriteByte('>')
			}
			box.Write(line)
		}
		if !bytes.HasSuffix(m.data, []byte("\n")) {
			box.WriteByte('\n')
		}
		box.WriteByte('\n')
		name := fmt.Sprintf("%d.M%06dP%d.%s", m.at.Unix(), i, os.Getpid(), MailboxHost)
		if err := os.WriteFile(filepath.Join(maildir, "new", name), m.data, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(emlDir, fmt.Sprintf("%05d.eml", i+1)), m.data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(mbox, box.Bytes(), 0o644)
}
