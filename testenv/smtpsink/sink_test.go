package smtpsink_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

func TestSink(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	s := smtpsink.MustStart(t, "outside.example", smtpsink.RejectRecipients(func(addr string) bool {
		return strings.HasPrefix(addr, "nobody@")
	}))
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.Port() == 0 {
		t.Fatalf("Addr %q Port %d", s.Addr(), s.Port())
	}

	// WaitCount blocks until the message arrives.
	waited := make(chan error, 1)
	go func() { waited <- s.WaitCount(ctx, 1) }()

	body := testenv.Message([][2]string{{"From", "a@x.example"}, {"Subject", "hi there"}}, "line\n.dot\n")
	if err := testenv.SendMail(ctx, s.Addr(), "a@x.example", []string{"b@outside.example", "c@outside.example"}, body); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@x.example" || !slices.Equal(m.To, []string{"b@outside.example", "c@outside.example"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	if m.Subject != "hi there" || string(m.Data) != string(body) {
		t.Errorf("subject %q data %q", m.Subject, m.Data)
	}

	// The null sender.
	if err := testenv.SendMail(ctx, s.Addr(), "", []string{"b@outside.example"}, body); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages()[1]; m.From != "" {
		t.Errorf("null sender recorded as %q", m.From)
	}

	// A rejected recipient gives a 550 the client can inspect.
	err := testenv.SendMail(ctx, s.Addr(), "a@x.example", []string{"nobody@outside.example"}, body)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("error %v, want 550 5.1.1", err)
	}
	s.SetRejectRecipients(nil)
	if err := testenv.SendMail(ctx, s.Addr(), "a@x.example", []string{"nobody@outside.example"}, body); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3", s.Count())
	}

	// WaitCount respects ctx.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := s.WaitCount(short, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitCount = %v", err)
	}

	s.Reset()
	if s.Count() != 0 {
		t.Fatal("Reset kept messages")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitCount(ctx, 1); err == nil {
		t.Fatal("WaitCount on a closed sink succeeded")
	}
	if err := testenv.SendMail(ctx, s.Addr(), "a@x.example", []string{"b@outside.example"}, body); err == nil {
		t.Fatal("closed sink accepted mail")
	}
}

// TestDiscard: a discarding sink hands each message to OnMessage and keeps
// none.
func TestDiscard(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seen := make(chan smtpsink.Message, 1)
	s := smtpsink.MustStart(t, "sink.test", smtpsink.Discard(), smtpsink.OnMessage(func(m smtpsink.Message) { seen <- m }))
	body := testenv.Message([][2]string{{"From", "a@x.example"}, {"X-Soak-Seq", "7"}}, "hi\n")
	if err := testenv.SendMail(ctx, s.Addr(), "a@x.example", []string{"b@outside.example"}, body); err != nil {
		t.Fatal(err)
	}
	if m := <-seen; m.Header.Get("X-Soak-Seq") != "7" || !slices.Equal(m.To, []string{"b@outside.example"}) {
		t.Errorf("OnMessage got %+v", m)
	}
	if n := s.Count(); n != 0 {
		t.Errorf("a discarding sink kept %d messages", n)
	}
}
