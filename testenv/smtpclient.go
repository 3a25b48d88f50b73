// Package testenv holds helpers shared by loopbreaker's end-to-end tests.
//
// The sub-packages do the heavy lifting: [github.com/loopbreaker/loopbreaker/testenv/postfix]
// runs private Postfix instances and [github.com/loopbreaker/loopbreaker/testenv/smtpsink]
// runs recording SMTP servers. This package adds a small SMTP client.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// ClientHelo is the name SendMail announces in EHLO.
const ClientHelo = "client.test"

// SendMail submits one message over plain SMTP to addr ("host:port"): EHLO,
// MAIL FROM:<from>, one RCPT TO per entry of to, DATA with msg, QUIT.
//
// An empty from sends the null reverse path (MAIL FROM:<>), as a bounce would.
// msg is the raw RFC 5322 message; bare LF line endings are sent as CRLF and
// lines starting with a dot are dot-stuffed.
//
// The first command the server refuses ends the transaction. The returned
// error then wraps the server's reply as a *smtp.SMTPError (from
// github.com/emersion/go-smtp), so tests can check the code:
//
//	var se *smtp.SMTPError
//	if errors.As(err, &se) && se.Code/100 == 4 { ... } // temporary failure
//
// ctx bounds the whole exchange: its deadline applies to the connection and
// cancelling it closes the connection.
func SendMail(ctx context.Context, addr, from string, to []string, msg []byte) (err error) {
	if len(to) == 0 {
		return errors.New("sendmail: no recipients")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("sendmail: dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return fmt.Errorf("sendmail: set deadline: %w", err)
		}
	}
	// Closing the connection unblocks any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c := smtp.NewClient(conn)
	// The client resets the connection deadline after each command; keep the
	// per-command timeouts within ctx's deadline as well.
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		c.CommandTimeout = left
		c.SubmissionTimeout = left
	}
	defer func() {
		if err != nil {
			c.Close()
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", err, ctx.Err())
			}
		}
	}()

	if err := c.Hello(ClientHelo); err != nil {
		return fmt.Errorf("sendmail: EHLO at %s: %w", addr, err)
	}
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("sendmail: MAIL FROM:<%s> at %s: %w", from, addr, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return fmt.Errorf("sendmail: RCPT TO:<%s> at %s: %w", rcpt, addr, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("sendmail: DATA at %s: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("sendmail: write message to %s: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("sendmail: end of DATA at %s: %w", addr, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("sendmail: QUIT at %s: %w", addr, err)
	}
	return nil
}

// Message builds a minimal RFC 5322 message with the given header fields
// (written in order, as "Key: Value") and body. It adds no fields of its own,
// so include From, To, Subject, Date and Message-ID as the test needs.
func Message(headers [][2]string, body string) []byte {
	var b bytes.Buffer
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}
