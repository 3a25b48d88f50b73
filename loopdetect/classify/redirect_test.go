package classify

import (
	"bytes"
	"strings"
	"testing"
)

// redirectCase builds the Postfix report of testdata/postfix-ndr.eml as a
// redirect passes it on: the same message with the given fields put on top,
// sent with the given envelope.
func redirectMsg(t *testing.T, sender string, rcpts []string, extra string) *Message {
	t.Helper()
	raw := readTestdata(t, "postfix-ndr.eml")
	// Drop the MDA's Return-Path: the envelope is given.
	raw = bytes.Replace(raw, []byte("Return-Path: <>\n"), nil, 1)
	raw = append([]byte(extra), raw...)
	m, err := ReadMessage(bytes.NewReader(raw), Envelope{Sender: sender, Recipients: rcpts}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRedirectedBounce(t *testing.T) {
	local := []string{"example.org", ".corp.example"}
	out := []string{"alice@elsewhere.example"}
	in := []string{"alice@example.org"}
	tests := []struct {
		name   string
		sender string
		rcpts  []string
		extra  string
		opts   Options
		want   Kind
		signal string
	}{
		{"inbound bounce to a local user", "", in, "", Options{LocalDomains: local}, KindBounce, ""},
		{"inbound bounce, no site knowledge", "", in, "", Options{}, KindBounce, ""},
		{"own bounce going out", "", out, "", Options{LocalDomains: local}, KindBounce, SignalOutbound},
		{"SRS0", "SRS0=abcd=T4=example.org=alice@fwd.example", out, "", Options{}, KindForwardedNDR, SignalSRSSender},
		{"SRS1", "SRS1=x=fwd.example==abcd=T4=example.org=alice@fwd2.example", out, "", Options{}, KindForwardedNDR, SignalSRSSender},
		{"BATV", "prvs=1234abcdef=alice@example.org", out, "", Options{}, KindForwardedNDR, SignalBATVSender},
		{"Exchange Online SRS", "bounces+SRS=44ldt=IX=example.org=alice@fabrikam.example", out, "", Options{}, KindForwardedNDR, SignalSRSSender},
		{"Gmail forward", "alice+caf_=bob=elsewhere.example@gmail.com", out, "", Options{}, KindForwardedNDR, SignalForwarderSender},
		{"local sender", "alice@example.org", out, "", Options{LocalDomains: local}, KindForwardedNDR, SignalLocalSender},
		{"local sender, subdomain", "alice@x.corp.example", out, "", Options{LocalDomains: local}, KindForwardedNDR, SignalLocalSender},
		{"outside sender, no marks", "alice@remote.example", in, "", Options{LocalDomains: local}, KindBounce, ""},
		{"list owner sender stays bounce", "list-bounces@example.org", out, "", Options{LocalDomains: local}, KindBounce, ""},
		{"daemon sender stays bounce", "MAILER-DAEMON@example.org", out, "", Options{LocalDomains: local}, KindBounce, ""},
		{"Thunderbird redirect", "alice@remote.example", out,
			"Resent-From: Alice <alice@remote.example>\nResent-To: bob@elsewhere.example\nResent-Date: Thu, 9 May 2024 09:00:00 +0200\n", Options{}, KindForwardedNDR, SignalRedirected},
		{"Gmail headers", "alice@remote.example", out, "X-Forwarded-To: bob@elsewhere.example\nX-Forwarded-For: alice@remote.example bob@elsewhere.example\n", Options{}, KindForwardedNDR, SignalForwardingHeader},
		{"procmail: sender was recipient", "alice@remote.example", out, "Delivered-To: alice@remote.example\n", Options{}, KindForwardedNDR, SignalSenderWasRecipient},
		{"sieve redirect null sender out", "", out, "X-Sieve-Redirected-From: alice@example.org\nDelivered-To: alice@example.org\n", Options{LocalDomains: local}, KindForwardedNDR, SignalForwardingHeader},
		{".forward null sender out", "", out, "Delivered-To: alice@example.org\n", Options{LocalDomains: local}, KindForwardedNDR, SignalForwardingHeader},
		{"null sender redirect, direction unknown", "", out, "Resent-From: alice@example.org\n", Options{}, KindBounce, ""},
		{"null sender with Delivered-To, inbound", "", in, "Delivered-To: alice@example.org\n", Options{LocalDomains: local}, KindBounce, ""},
		{"Exchange rule null sender out", "", out, "X-MS-Exchange-Inbox-Rules-Loop: alice@example.org\n", Options{LocalDomains: local}, KindForwardedNDR, SignalInboxRule},
		{"list resend stays bounce", "owner-x@lists.example", out, "Resent-From: x@lists.example\nResent-Sender: owner-x@lists.example\n", Options{}, KindBounce, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(redirectMsg(t, tt.sender, tt.rcpts, tt.extra), tt.opts)
			if v.Kind != tt.want {
				t.Fatalf("kind = %s, want %s (%s)", v.Kind, tt.want, v.Explain())
			}
			if tt.signal != "" && !v.Has(tt.signal) {
				t.Fatalf("signal %q missing: %s", tt.signal, v.Explain())
			}
			if v.Kind == KindForwardedNDR && v.ForwardedBy == "" {
				t.Errorf("ForwardedBy empty: %s", v.Explain())
			}
			if tt.name == "SRS0" && v.ForwardedBy != "alice@example.org" {
				t.Errorf("ForwardedBy = %q, want alice@example.org", v.ForwardedBy)
			}
			if v.DSNAction != DSNFailed || v.OriginalRecipient == "" {
				t.Errorf("facts lost: action %q recipient %q", v.DSNAction, v.OriginalRecipient)
			}
		})
	}
}

// TestRedirectStored: redirects read from stored files, where the envelope
// is the top Return-Path and nothing says which domains are local.
func TestRedirectStored(t *testing.T) {
	base := string(readTestdata(t, "postfix-ndr.eml"))
	for _, c := range []struct {
		name, top string
		want      Kind
		signal    string
	}{
		{"delivered twice: earlier Return-Path <>", "Return-Path: <alice@remote.example>\nReceived: by mx2.remote.example\n", KindForwardedNDR, SignalEarlierNullSender},
		{"redirect on behalf: Sender", "Return-Path: <alice@remote.example>\nSender: Alice <alice@remote.example>\n", KindForwardedNDR, SignalRedirected},
		{"list sender stays bounce", "Return-Path: <list-bounces@lists.example>\nSender: list-bounces@lists.example\n", KindBounce, ""},
		{"plain stored bounce", "", KindBounce, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := c.top + base
			if c.top != "" && c.name != "delivered twice: earlier Return-Path <>" {
				raw = c.top + strings.Replace(base, "Return-Path: <>\n", "", 1)
			}
			m, err := ReadStoredMessage(strings.NewReader(raw), 0)
			if err != nil {
				t.Fatal(err)
			}
			v := Classify(m, Options{})
			if v.Kind != c.want || c.signal != "" && !v.Has(c.signal) {
				t.Fatalf("got %s, want %s with %q", v.Explain(), c.want, c.signal)
			}
		})
	}
}

// TestRedirectOrdinary: ordinary mail passed on the same ways stays
// ordinary, report-like words or not.
func TestRedirectOrdinary(t *testing.T) {
	for _, c := range []struct{ name, sender, raw string }{
		{"warehouse via SRS", "SRS0=abcd=T4=example.org=alice@fwd.example",
			"From: Bob <bob@shop.example>\nSubject: Undeliverable items in the warehouse\n\nWe have three pallets that cannot be shipped.\n"},
		{"postmaster notice via BATV", "prvs=1234abcdef=postmaster-team@example.org",
			"From: Postmaster <postmaster@example.org>\nSubject: New webmail\n\nThe new webmail is online.\n"},
		{"resent newsletter", "alice@example.org",
			"Resent-From: alice@example.org\nFrom: News <news@shop.example>\nSubject: Offers\n\nOur offers.\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := ReadMessage(strings.NewReader(c.raw), Envelope{Sender: c.sender, Recipients: []string{"x@elsewhere.example"}}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if v := Classify(m, Options{LocalDomains: []string{"example.org"}}); v.Kind != KindOrdinary {
				t.Fatalf("got %s", v.Explain())
			}
		})
	}
}
