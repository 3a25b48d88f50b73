package classify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// Envelope is what the SMTP transaction says about a message (RFC 5321 3.3).
type Envelope struct {
	// Sender is the MAIL FROM reverse-path without angle brackets. The empty
	// string is the null reverse-path "<>" used by delivery status
	// notifications (RFC 5321 4.5.5, RFC 3464 2).
	Sender string
	// SenderUnknown says the reverse-path is not known (a stored message
	// without Return-Path or mbox "From " line); Sender is then ignored and
	// the message is not taken to have the null sender.
	SenderUnknown bool
	// Recipients are the RCPT TO forward-paths without angle brackets.
	Recipients []string
	// AuthUser is the SASL login of the submitting client ({auth_authen}), if any.
	AuthUser string
	// ClientIP is the connecting client's address, if known.
	ClientIP string
	// QueueID is the MTA's queue id ({i}), for logs only.
	QueueID string
}

// Message is one message as the classifier sees it: the envelope, the header
// section and a bounded first part of the body.
type Message struct {
	Envelope Envelope
	Header   textproto.Header
	// Body holds at most the inspection limit's bytes of the body, in the
	// transfer form it had on the wire (CRLF or LF line ends).
	Body []byte
	// BodyTruncated says that the body went on past Body.
	BodyTruncated bool
}

// ReadMessage reads a message in Internet Message Format (RFC 5322) from r,
// keeping at most bodyLimit bytes of its body (DefaultBodyLimit when
// bodyLimit <= 0). A header section that does not parse is not an error: the
// fields read before the damage are kept and the rest is treated as body, so
// that broken mail is still classified by text heuristics. An mbox "From "
// line before the header is skipped, and a message with bare CR line ends
// (old Macintosh files) gets LF line ends.
func ReadMessage(r io.Reader, env Envelope, bodyLimit int) (*Message, error) {
	m, _, err := readMessage(r, env, bodyLimit)
	return m, err
}

// ReadStoredMessage reads a message stored in a file (an .eml, a maildir
// file or a single mbox entry) for classification outside the MTA. The
// envelope sender, which no file stores, is taken from the Return-Path field
// an MDA added (RFC 5321 4.4), else from the mbox "From " line (where
// MAILER-DAEMON stands for the null sender), else marked unknown.
func ReadStoredMessage(r io.Reader, bodyLimit int) (*Message, error) {
	m, mboxFrom, err := readMessage(r, Envelope{}, bodyLimit)
	if err != nil {
		return nil, err
	}
	if rp := senderFromReturnPath(fromTextproto(&m.Header)); rp.known {
		m.Envelope.Sender = rp.addr
		return m, nil
	}
	if mboxFrom != "" {
		s := mboxFrom
		if i := strings.IndexAny(s, " \t"); i >= 0 {
			s = s[:i]
		}
		s = address.Path(s)
		if strings.EqualFold(s, "MAILER-DAEMON") {
			s = ""
		}
		m.Envelope.Sender = s
		return m, nil
	}
	m.Envelope.SenderUnknown = true
	return m, nil
}

func readMessage(r io.Reader, env Envelope, bodyLimit int) (*Message, string, error) {
	if bodyLimit <= 0 {
		bodyLimit = DefaultBodyLimit
	}
	br := bufio.NewReader(r)
	fs, mboxFrom, rest, err := readHeaderLenient(br)
	if err != nil {
		return nil, "", fmt.Errorf("reading message header: %w", err)
	}
	var h textproto.Header
	for i := len(fs) - 1; i >= 0; i-- {
		// go-message keeps the top field last; adding bottom-up keeps Get
		// returning the topmost field, as for a header it read itself.
		h.Add(fs[i].key, fs[i].value)
	}
	var body []byte
	truncated := false
	if len(rest) >= bodyLimit {
		body, truncated = rest[:bodyLimit], true
		_, _ = io.Copy(io.Discard, br)
	} else {
		b, t, err := readBounded(br, bodyLimit-len(rest))
		if err != nil {
			return nil, "", fmt.Errorf("reading message body: %w", err)
		}
		body, truncated = append(rest, b...), t
	}
	if bareCR(body) {
		body = bytes.ReplaceAll(body, []byte("\r"), []byte("\n"))
	}
	return &Message{Envelope: env, Header: h, Body: body, BodyTruncated: truncated}, mboxFrom, nil
}

// bareCR reports a text whose lines end in CR alone.
func bareCR(b []byte) bool {
	i := bytes.IndexByte(b, '\r')
	return i >= 0 && bytes.IndexByte(b, '\n') < 0
}

func readBounded(r io.Reader, limit int) ([]byte, bool, error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, int64(limit)+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	if n > int64(limit) {
		b := buf.Bytes()[:limit]
		// Drain the rest so a caller reading from a pipe is not left blocked.
		_, _ = io.Copy(io.Discard, r)
		return b, true, nil
	}
	return buf.Bytes(), false, nil
}
