package replay

import (
	"fmt"
	"net/mail"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// Mailbox says whose mailbox the messages were taken from, which settles
// how the envelope is read from a stored message.
type Mailbox string

const (
	// Inbound: the mailbox of the recipient (an inbox). The recipient is
	// X-Original-To (the RCPT TO the MTA's milter saw, before aliases),
	// else the topmost Delivered-To, else To/Cc; the sender is
	// Return-Path, else the mbox "From " line.
	Inbound Mailbox = "inbound"
	// Outbound: a Sent folder. From: is the sender, To/Cc/Bcc the
	// recipients.
	Outbound Mailbox = "outbound"
)

// ParseMailbox reads the -mailbox flag.
func ParseMailbox(s string) (Mailbox, error) {
	switch m := Mailbox(strings.ToLower(strings.TrimSpace(s))); m {
	case Inbound, Outbound:
		return m, nil
	case "":
		return Inbound, nil
	}
	return "", fmt.Errorf("unknown mailbox %q (want inbound or outbound)", s)
}

// setEnvelope fills msg's envelope from its header as the mailbox says.
// A sender that nothing records is marked unknown for the classifier (which
// then does not take the message for one from the null sender), and the
// From: address stands in for it in counting keys, so that each author
// counts on their own.
func setEnvelope(msg *classify.Message, mb Mailbox, mboxFrom string) {
	h := &msg.Header
	env := classify.Envelope{}
	if mb == Outbound {
		env.Sender = address.Extract(h.Get("From"))
		env.Recipients = addressList(h.Values("To"), h.Values("Cc"), h.Values("Bcc"))
		msg.Envelope = env
		return
	}
	switch {
	case h.Has("Return-Path"):
		env.Sender = address.Path(h.Get("Return-Path"))
	case mboxFrom != "" && mboxSender(mboxFrom) != "-":
		env.Sender = mboxSender(mboxFrom)
	default:
		env.SenderUnknown = true
		env.Sender = address.Extract(h.Get("From"))
	}
	switch {
	case strings.TrimSpace(h.Get("X-Original-To")) != "":
		env.Recipients = addressList(h.Values("X-Original-To")[:1])
	case strings.TrimSpace(h.Get("Delivered-To")) != "":
		env.Recipients = addressList(h.Values("Delivered-To")[:1])
	default:
		env.Recipients = addressList(h.Values("To"), h.Values("Cc"))
	}
	msg.Envelope = env
}

// mboxSender is the envelope sender of an mbox "From " line
// ("alice@example.org Tue Mar  3 10:00:00 2026"): MAILER-DAEMON is the
// null sender; Thunderbird writes "-", which says nothing.
func mboxSender(line string) string {
	s := line
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	s = address.Path(s)
	if strings.EqualFold(s, "MAILER-DAEMON") {
		return ""
	}
	return s
}

// addressList returns the addresses of address-list fields, each once.
func addressList(values ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		a = strings.TrimSpace(a)
		if a == "" || !strings.Contains(a, "@") || seen[strings.ToLower(a)] {
			return
		}
		seen[strings.ToLower(a)] = true
		out = append(out, a)
	}
	for _, vs := range values {
		for _, v := range vs {
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					add(a.Address)
				}
				continue
			}
			for _, part := range strings.Split(v, ",") {
				add(address.Extract(part))
			}
		}
	}
	return out
}
