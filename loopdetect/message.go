// Package loopdetect classifies one mail message as a bounce, a forwarded
// non-delivery report, an auto-reply or ordinary mail, and says why.
//
// It is pure code: no I/O, no clock, no global state. The milter layer and the
// classify command build a [Message] and call [Classify]; the decision core
// counts and acts on the returned [Verdict].
package loopdetect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// DefaultBodyLimit is how much of a body is inspected when nothing else is
// configured. NDRs put their diagnostic and the returned headers near the top;
// 256 KiB holds them and the quoted original of every sample in the corpora.
const DefaultBodyLimit = 256 << 10

// Envelope is what the SMTP transaction says about a message (RFC 5321 3.3).
type Envelope struct {
	// Sender is the MAIL FROM reverse-path without angle brackets. The empty
	// string is the null reverse-path "<>" used by delivery status
	// notifications (RFC 5321 4.5.5, RFC 3464 2).
	Sender string
	// Recipients are the RCPT TO forward-paths without angle brackets.
	Recipients []string
	// AuthUser is the SASL login of the submitting client ({auth_authen}), if any.
	AuthUser string
	// ClientIP is the connecting client's address, if known.
	ClientIP string
	// QueueID is the MTA's queue id ({i}), for logs only.
	QueueID string
}

// Message is one message as loopdetect sees it: the envelope, the header
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
// that broken mail is still classified by text heuristics.
func ReadMessage(r io.Reader, env Envelope, bodyLimit int) (*Message, error) {
	if bodyLimit <= 0 {
		bodyLimit = DefaultBodyLimit
	}
	br := bufio.NewReader(r)
	// A malformed header line ends the header section: the fields parsed
	// before it are kept and the rest is read as body text.
	h, _ := textproto.ReadHeader(br)
	body, truncated, err := readBounded(br, bodyLimit)
	if err != nil {
		return nil, fmt.Errorf("reading message body: %w", err)
	}
	return &Message{Envelope: env, Header: h, Body: body, BodyTruncated: truncated}, nil
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
