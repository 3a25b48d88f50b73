package postfix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// testCtx returns a context for one test step, bounded well below go test's
// own timeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(from, to, subject string) []byte {
	return testenv.Message([][2]string{
		{"From", from},
		{"To", to},
		{"Subject", subject},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<%d.%s@client.test>", time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "-"))},
	}, "Hello.\n.leading dot\n")
}

// closedPort returns a loopback port where nothing listens (for now).
func closedPort(t *testing.T) int {
	t.Helper()
	port, err := testproc.FreePort(context.Background(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// assertStopped stops inst and checks that none of its processes is left.
func assertStopped(t *testing.T, inst *Instance) {
	t.Helper()
	if len(instanceProcs(inst.ConfigDir())) < 3 { // master, qmgr, pickup at least
		t.Fatalf("instance processes not found: %v", instanceProcs(inst.ConfigDir()))
	}
	if err := inst.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if left := instanceProcs(inst.ConfigDir()); len(left) > 0 {
		t.Fatalf("processes %v survive Stop", left)
	}
	if err := inst.Stop(); err != nil { // idempotent
		t.Fatalf("second Stop: %v", err)
	}
}

func TestDelivery(t *testing.T) {
	SkipIfUnavailable(t)
	t.Parallel()
	ctx := testCtx(t)

	mailstore := smtpsink.MustStart(t, "mailstore.corp.example")
	outside := smtpsink.MustStart(t, "mx.outside.example")

	inst, err := Start(ctx, Config{
		Dir:        t.TempDir(),
		Name:       "hub",
		MyHostname: "hub.corp.example",
		MyDomain:   "corp.example",
		Transports: map[string]string{"corp.example": "smtp:" + mailstore.Nexthop()},
		RelayHost:  outside.Nexthop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("maillog:\n%s", inst.Log())
		}
		_ = inst.Stop()
	})

	if got, err := inst.Postconf("-h", "myhostname"); err != nil || strings.TrimSpace(got) != "hub.corp.example" {
		t.Fatalf("postconf -h myhostname = %q, %v", got, err)
	}

	sends := []struct{ from, to, subject string }{
		{"alice@corp.example", "bob@outside.example", "outside one"},
		{"alice@corp.example", "carol@corp.example", "inside"},
		{"alice@corp.example", "bob@outside.example", "outside two"},
	}
	for _, s := range sends {
		if err := testenv.SendMail(ctx, inst.SMTPAddr(), s.from, []string{s.to}, msg(s.from, s.to, s.subject)); err != nil {
			t.Fatalf("send %q: %v", s.subject, err)
		}
	}

	if err := outside.WaitCount(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := mailstore.WaitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := inst.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	// The queue is empty, so nothing else can still be on its way.
	check := func(sink *smtpsink.Sink, to string, subjects ...string) {
		t.Helper()
		msgs := sink.Messages()
		var got []string
		for _, m := range msgs {
			if !slices.Equal(m.To, []string{to}) || m.From != "alice@corp.example" {
				t.Errorf("%s: envelope %s -> %v, want alice@corp.example -> [%s]", sink.Name(), m.From, m.To, to)
			}
			if !strings.Contains(string(m.Data), "\r\n.leading dot\r\n") {
				t.Errorf("%s: body not intact:\n%s", sink.Name(), m.Data)
			}
			if !strings.Contains(m.Header.Get("Received"), "hub.corp.example") {
				t.Errorf("%s: no Received header from hub: %q", sink.Name(), m.Header.Get("Received"))
			}
			got = append(got, m.Subject)
		}
		slices.Sort(got)
		slices.Sort(subjects)
		if !slices.Equal(got, subjects) {
			t.Errorf("%s: got subjects %q, want %q", sink.Name(), got, subjects)
		}
	}
	check(outside, "bob@outside.example", "outside one", "outside two")
	check(mailstore, "carol@corp.example", "inside")

	if n, err := inst.QueueCount(); err != nil || n != 0 {
		t.Errorf("QueueCount = %d, %v; want 0", n, err)
	}
	if n, err := inst.HeldCount(); err != nil || n != 0 {
		t.Errorf("HeldCount = %d, %v; want 0", n, err)
	}
	log := inst.Log()
	for _, want := range []string{"postfix-hub/smtpd[", "postfix-hub/smtp[", "status=sent"} {
		if !strings.Contains(log, want) {
			t.Errorf("maillog lacks %q", want)
		}
	}
	assertStopped(t, inst)
}

// TestMilterUnavailable points smtpd_milters at a socket where nothing
// listens: Postfix must apply milter_default_action, which shows that the
// milter settings are live.
func TestMilterUnavailable(t *testing.T) {
	SkipIfUnavailable(t)
	t.Parallel()

	cases := []struct {
		name   string
		action string
		milter func(t *testing.T) string
		code   int // first digit of the expected SMTP reply; 0: accepted
	}{
		{"tempfail-inet", "tempfail", func(t *testing.T) string { return fmt.Sprintf("inet:127.0.0.1:%d", closedPort(t)) }, 4},
		{"tempfail-unix", "tempfail", func(t *testing.T) string { return "unix:" + filepath.Join(t.TempDir(), "nobody.sock") }, 4},
		{"reject", "reject", func(t *testing.T) string { return fmt.Sprintf("inet:127.0.0.1:%d", closedPort(t)) }, 5},
		{"accept", "accept", func(t *testing.T) string { return fmt.Sprintf("inet:127.0.0.1:%d", closedPort(t)) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			outside := smtpsink.MustStart(t, "mx.outside.example")
			inst := MustStart(t, Config{
				Name:       "milter-" + tc.name,
				MyHostname: "hub.corp.example",
				RelayHost:  outside.Nexthop(),
				Milters:    tc.milter(t),
				MainCF:     map[string]string{"milter_default_action": tc.action},
			})

			err := testenv.SendMail(ctx, inst.SMTPAddr(), "alice@corp.example", []string{"bob@outside.example"},
				msg("alice@corp.example", "bob@outside.example", "milter "+tc.name))
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("SendMail: %v", err)
				}
				if err := outside.WaitCount(ctx, 1); err != nil {
					t.Fatal(err)
				}
			} else {
				var se *smtp.SMTPError
				if !errors.As(err, &se) {
					t.Fatalf("SendMail error = %v, want an SMTP %dxx reply", err, tc.code)
				}
				if se.Code/100 != tc.code {
					t.Fatalf("SMTP reply %d %v %q, want %dxx", se.Code, se.EnhancedCode, se.Message, tc.code)
				}
				t.Logf("server said: %d %v %s", se.Code, se.EnhancedCode, se.Message)
			}
			if err := inst.WaitLog(ctx, "milter"); err != nil {
				t.Fatal(err)
			}
			if err := inst.WaitQueueEmpty(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.code != 0 && outside.Count() != 0 {
				t.Fatalf("refused message was delivered: %+v", outside.Messages())
			}
		})
	}
}

// TestHold puts a message on hold through an access table, then releases it.
func TestHold(t *testing.T) {
	SkipIfUnavailable(t)
	t.Parallel()
	ctx := testCtx(t)

	mailstore := smtpsink.MustStart(t, "mailstore.corp.example")
	inst := MustStart(t, Config{
		Name:       "hold",
		MyHostname: "hub.corp.example",
		Transports: map[string]string{"corp.example": "smtp:" + mailstore.Nexthop()},
		MainCF: map[string]string{
			"smtpd_recipient_restrictions": "check_recipient_access inline:{ held@corp.example=HOLD }, permit_mynetworks, reject",
		},
	})

	if err := testenv.SendMail(ctx, inst.SMTPAddr(), "alice@corp.example", []string{"held@corp.example"},
		msg("alice@corp.example", "held@corp.example", "to be held")); err != nil {
		t.Fatal(err)
	}
	if err := inst.WaitLog(ctx, "held@corp.example"); err != nil {
		t.Fatal(err)
	}
	if err := inst.WaitQueueEmpty(ctx); err != nil { // hold is not counted
		t.Fatal(err)
	}
	if n, err := inst.HeldCount(); err != nil || n != 1 {
		t.Fatalf("HeldCount = %d, %v; want 1", n, err)
	}
	if n := mailstore.Count(); n != 0 {
		t.Fatalf("held message delivered (%d messages)", n)
	}
	out, err := inst.Postqueue("-j")
	if err != nil || !strings.Contains(out, `"queue_name": "hold"`) {
		t.Fatalf("postqueue -j = %q, %v", out, err)
	}

	if _, err := inst.Postsuper("-H", "ALL"); err != nil {
		t.Fatal(err)
	}
	if err := mailstore.WaitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := inst.HeldCount(); err != nil || n != 0 {
		t.Fatalf("HeldCount after release = %d, %v; want 0", n, err)
	}
	if got := mailstore.Messages()[0].Subject; got != "to be held" {
		t.Fatalf("subject %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	SkipIfUnavailable(t)
	t.Parallel()
	ctx := testCtx(t)

	if _, err := Start(ctx, Config{}); err == nil {
		t.Error("Start without Dir succeeded")
	}
	if _, err := Start(ctx, Config{Dir: t.TempDir(), SMTPAddr: "0.0.0.0:0"}); err == nil {
		t.Error("Start on a non-loopback address succeeded")
	}

	// A bad main.cf setting is caught by "postfix check" or at start-up,
	// and the error carries the log.
	_, err := Start(ctx, Config{Dir: t.TempDir(), Name: "broken", MainCF: map[string]string{"mail_owner": "root"}})
	if err == nil {
		t.Fatal("Start with mail_owner = root succeeded")
	}
	if !strings.Contains(err.Error(), "mail_owner") {
		t.Errorf("error does not explain the problem: %v", err)
	}

	// The port is taken: an explicit SMTPAddr is not silently replaced.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(ctx, Config{Dir: t.TempDir(), Name: "busy", SMTPAddr: ln.Addr().String()})
	if err == nil || !errors.Is(err, errPortInUse) {
		t.Errorf("Start on a busy port: %v", err)
	}
}

// TestPortRetry makes the first port the harness picks busy: Start must
// notice master's bind failure and try another port.
func TestPortRetry(t *testing.T) {
	SkipIfUnavailable(t)
	ctx := testCtx(t)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPortFunc = func(ctx context.Context, host string) (int, error) {
		calls++
		if calls == 1 {
			return busy, nil
		}
		return testproc.FreePort(ctx, host)
	}
	t.Cleanup(func() { pickPortFunc = testproc.FreePort })

	inst, err := Start(ctx, Config{Dir: t.TempDir(), Name: "retry"})
	if err != nil {
		t.Fatal(err)
	}
	defer assertStopped(t, inst)
	if calls != 2 || inst.SMTPAddr() == ln.Addr().String() {
		t.Fatalf("%d port picks, listening on %s (busy: %d)", calls, inst.SMTPAddr(), busy)
	}
	if _, err := testproc.Banner(ctx, inst.SMTPAddr()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inst.Log(), "Address already in use") {
		t.Error("first attempt did not hit the busy port")
	}
}

// TestNoRelayHost checks that without RelayHost mail to an unknown
// destination is refused with a temporary error, without any DNS lookup.
func TestNoRelayHost(t *testing.T) {
	SkipIfUnavailable(t)
	t.Parallel()
	ctx := testCtx(t)

	inst := MustStart(t, Config{Name: "norelay"})
	err := testenv.SendMail(ctx, inst.SMTPAddr(), "alice@example.test", []string{"bob@nowhere.example"},
		msg("alice@example.test", "bob@nowhere.example", "nowhere"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 450 || !strings.Contains(se.Message, "no RelayHost") {
		t.Fatalf("SendMail = %v, want 450 ... no RelayHost", err)
	}
	if n, err := inst.QueueCount(); err != nil || n != 0 {
		t.Fatalf("QueueCount = %d, %v; want 0", n, err)
	}
}
