package classify

import (
	"strings"
	"testing"
)

func mustRead(t *testing.T, sender, raw string) *Message {
	t.Helper()
	m, err := ReadMessage(strings.NewReader(raw), Envelope{Sender: sender, Recipients: []string{"x@outside.example"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClassifyFirstCut(t *testing.T) {
	tests := []struct {
		name   string
		sender string
		raw    string
		want   Kind
		signal string
	}{
		{"rule forward of exim NDR", "alice@corp.example",
			"Subject: FW: Mail delivery failed: returning message to sender\r\n\r\nbody\r\n", KindForwardedNDR, "subject-forwarded-ndr"},
		{"stacked forwards", "alice@corp.example",
			"Subject: Fwd: FW: failure notice\r\n\r\n", KindForwardedNDR, "subject-forwarded-ndr"},
		{"german outlook", "alice@corp.example",
			"Subject: WG: Undeliverable: Angebot\r\n\r\n", KindForwardedNDR, "subject-forwarded-ndr"},
		{"encoded word", "alice@corp.example",
			"Subject: =?utf-8?q?FW=3A_Undelivered_Mail_Returned_to_Sender?=\r\n\r\n", KindForwardedNDR, "subject-forwarded-ndr"},
		{"person asks about a bounce", "alice@corp.example",
			"Subject: Re: Undelivered Mail Returned to Sender\r\n\r\nwhy did this bounce?\r\n", KindOrdinary, ""},
		{"plain forward", "alice@corp.example",
			"Subject: FW: lunch on friday\r\n\r\n", KindOrdinary, ""},
		{"null sender bounce", "",
			"Subject: Undelivered Mail Returned to Sender\r\n\r\n", KindBounce, "null-sender"},
		{"dsn report", "mailer-daemon@x.example",
			"Subject: Delivery Status Notification (Failure)\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n", KindBounce, "dsn-report"},
		{"auto reply", "bob@corp.example",
			"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\n", KindAutoReply, "auto-submitted"},
		{"ordinary", "bob@corp.example",
			"Subject: hello\r\nAuto-Submitted: no\r\n\r\n", KindOrdinary, ""},
		{"no header at all", "bob@corp.example", "", KindOrdinary, ""},
		{"garbage header", "bob@corp.example", " leading space\r\n\x00\xff:::\r\n", KindOrdinary, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(mustRead(t, tt.sender, tt.raw), Options{})
			if v.Kind != tt.want {
				t.Fatalf("kind = %s, want %s (%s)", v.Kind, tt.want, v.Explain())
			}
			if tt.signal != "" && !v.Has(tt.signal) {
				t.Fatalf("signal %q missing: %s", tt.signal, v.Explain())
			}
		})
	}
}

func TestReadMessageBoundsBody(t *testing.T) {
	raw := "Subject: x\r\n\r\n" + strings.Repeat("a", 1000)
	m, err := ReadMessage(strings.NewReader(raw), Envelope{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Body) != 100 || !m.BodyTruncated {
		t.Fatalf("body len %d truncated %v", len(m.Body), m.BodyTruncated)
	}
}

func TestHopsAndForwardDepthAreLoopSigns(t *testing.T) {
	raw := strings.Repeat("Received: from a by b\r\n", 30) + "Subject: FW: FW: FW: Undeliverable: x\r\n\r\n"
	v := Classify(mustRead(t, "alice@corp.example", raw), Options{})
	if v.Hops != 30 || v.ForwardDepth != 3 || len(v.LoopSigns) != 2 {
		t.Fatalf("hops %d depth %d signs %v", v.Hops, v.ForwardDepth, v.LoopSigns)
	}
}

// TestDecodeHeader: RFC 2047 encoded-words in any charset go-message knows;
// what does not decode is kept.
func TestDecodeHeader(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Undeliverable: x", "Undeliverable: x"},
		{"=?iso-8859-1?q?Unzustellbar=3A_x?=", "Unzustellbar: x"},
		{"=?UTF-8?B?TsOjbyBlbnRyZWd1ZQ==?=", "Não entregue"},
		{"=?koi8-r?b?7sXEz9PUwdfMxc7P?=", "Недоставлено"},
		{"FW: =?utf-8?q?Non_remis?= : y", "FW: Non remis : y"},
		{"=?x-unknown?q?abc?=", "=?x-unknown?q?abc?="},
		{"=?utf-8?q?broken", "=?utf-8?q?broken"},
	}
	for _, tt := range tests {
		if got := DecodeHeader(tt.in); got != tt.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
