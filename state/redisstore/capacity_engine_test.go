package redisstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// roundTrips counts the calls a go-redis client makes (a pipeline is one).
type roundTrips struct{ calls, cmds atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.calls.Add(1)
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.calls.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func capMsg(sender, rcpt string, hdr [][2]string, body string) *classify.Message {
	var h textproto.Header
	for i := len(hdr) - 1; i >= 0; i-- {
		h.Add(hdr[i][0], hdr[i][1])
	}
	return &classify.Message{Envelope: classify.Envelope{Sender: sender, Recipients: []string{rcpt}}, Header: h, Body: []byte(body)}
}

// The four kinds of mail the default policy tells apart, the i-th of each
// (senders and recipients vary with i: no key reaches its limit).
func capOrdinary(i int) *classify.Message {
	return capMsg(fmt.Sprintf("user%d@corp.example", i), fmt.Sprintf("contact%d@partner.example", i), [][2]string{
		{"From", fmt.Sprintf("user%d@corp.example", i)}, {"To", fmt.Sprintf("contact%d@partner.example", i)},
		{"Subject", fmt.Sprintf("Quarterly figures, draft %d", i)}, {"Message-ID", fmt.Sprintf("<%d@corp.example>", i)},
		{"Date", "Mon, 23 Nov 2026 09:59:58 +0100"}, {"Content-Type", "text/plain"},
	}, "Hello,\r\n\r\nthe figures are attached.\r\n")
}

func capForwardedNDR(i int) *classify.Message {
	sender := fmt.Sprintf("s%d@corp.example", i)
	body := "\r\n\r\n-----Original Message-----\r\nFrom: Mail Delivery System <Mailer-Daemon@outside-typo.example>\r\n" +
		"Sent: Monday, November 23, 2026 10:00 AM\r\nTo: " + sender + "\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n" +
		"This message was created automatically by mail delivery software.\r\n\r\n" +
		"A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n  " +
		"alice@outside-typo.example\r\n    SMTP error from remote mail server after RCPT TO:<alice@outside-typo.example>:\r\n    550 5.1.1 User unknown\r\n"
	return capMsg(sender, "alice@outside-typo.example", [][2]string{
		{"From", sender}, {"To", "alice@outside-typo.example"}, {"Subject", "FW: Mail delivery failed: returning message to sender"},
		{"Message-ID", fmt.Sprintf("<fw-%d@corp.example>", i)}, {"Date", "Mon, 23 Nov 2026 10:00:01 +0100"}, {"Content-Type", "text/plain"},
	}, body)
}

func capBounce(i int) *classify.Message {
	rcpt := fmt.Sprintf("user%d@corp.example", i)
	body := "--B\r\nContent-Type: text/plain\r\n\r\nThe message could not be delivered.\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.partner.example\r\n\r\n" +
		"Final-Recipient: rfc822; gone@partner.example\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: " + rcpt + "\r\nTo: gone@partner.example\r\nSubject: hello\r\n" +
		fmt.Sprintf("Message-ID: <orig-%d@corp.example>\r\n", i) + "--B--\r\n"
	return capMsg("", rcpt, [][2]string{
		{"From", "Mail Delivery System <MAILER-DAEMON@mx.partner.example>"}, {"To", rcpt},
		{"Subject", "Undelivered Mail Returned to Sender"}, {"Message-ID", fmt.Sprintf("<dsn-%d@mx.partner.example>", i)},
		{"Date", "Mon, 23 Nov 2026 10:00:01 +0100"}, {"MIME-Version", "1.0"},
		{"Content-Type", "multipart/report; report-type=delivery-status; boundary=\"B\""},
	}, body)
}

func capAutoReply(i int) *classify.Message {
	return capMsg(fmt.Sprintf("contact%d@partner.example", i), fmt.Sprintf("user%d@corp.example", i), [][2]string{
		{"From", fmt.Sprintf("contact%d@partner.example", i)}, {"To", fmt.Sprintf("user%d@corp.example", i)},
		{"Subject", "Out of office: Quarterly figures"}, {"Auto-Submitted", "auto-replied"},
		{"Message-ID", fmt.Sprintf("<ooo-%d@partner.example>", i)}, {"Date", "Mon, 23 Nov 2026 10:00:01 +0100"}, {"Content-Type", "text/plain"},
	}, "I am out of the office until Monday.\r\n")
}

// TestCapacityPerMessage runs each kind of mail through the engine over
// the shared store (as the daemon with -redis does: the RCPT check of a
// null-sender message, then the end-of-message decision) and counts the
// Redis round trips and the server's CPU per message.
func TestCapacityPerMessage(t *testing.T) {
	r, _ := capacityRedis(t)
	rt := &roundTrips{}
	r.c.(*redis.Client).AddHook(rt)
	local, err := state.Open(t.TempDir()+"/state.db", state.Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	sh := NewShared(r, local, SharedOptions{SweepInterval: -1, Name: "mta1"})
	defer sh.Close()
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}, QuarantineMailbox: "quarantine@corp.example"})
	eng := engine.New(p, sh, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	pid := srv.Pid()
	const n = 2000
	for _, kind := range []struct {
		name string
		msg  func(int) *classify.Message
	}{{"ordinary", capOrdinary}, {"forwarded NDR", capForwardedNDR}, {"bounce", capBounce}, {"auto-reply", capAutoReply}} {
		// The events of the kind before are in Redis: sent by this call
		// or by the sender it waits for (flushEvents sends one at a time).
		if err := sh.flushEvents(ctx); err != nil {
			t.Fatal(err)
		}
		c0, m0, cpu0 := rt.calls.Load(), rt.cmds.Load(), testproc.CPUTime(pid)
		start := time.Now()
		verdicts := map[string]int{}
		for i := 0; i < n; i++ {
			msg := kind.msg(i)
			if msg.Envelope.Sender == "" {
				eng.CheckRecipient(ctx, engine.FromSMTPClient, msg.Envelope, msg.Envelope.Recipients[0])
			}
			d := eng.Decide(ctx, msg)
			verdicts[string(d.Verdict.Kind)+"/"+strings.Join(hitRules(d), "+")]++
		}
		took := time.Since(start)
		if err := sh.flushEvents(ctx); err != nil { // this kind's events count with it
			t.Fatal(err)
		}
		c1, m1, cpu1 := rt.calls.Load(), rt.cmds.Load(), testproc.CPUTime(pid)
		t.Logf("%-14s %5.2f round trips, %5.2f commands per message, redis CPU %5.1f µs per message, %4.0f µs per message one at a time; verdict/rules %v",
			kind.name, float64(c1-c0)/n, float64(m1-m0)/n, float64((cpu1-cpu0).Microseconds())/n, float64(took.Microseconds())/n, verdicts)
	}
}

func hitRules(d engine.Decision) []string {
	var out []string
	for _, h := range d.Hits {
		out = append(out, h.Rule)
	}
	return out
}
