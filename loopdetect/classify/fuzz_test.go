package classify

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// seedFiles adds the hand-written samples in testdata as fuzz seeds.
func seedFiles(f *testing.F, add func(raw []byte)) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// checkVerdict holds the invariants every verdict keeps, whatever the input.
func checkVerdict(t *testing.T, v Verdict) {
	t.Helper()
	if !slices.Contains(Kinds, v.Kind) {
		t.Fatalf("kind %q is not a kind", v.Kind)
	}
	switch v.DSNAction {
	case "", DSNFailed, DSNDelayed, DSNDelivered:
	default:
		t.Fatalf("dsn action %q", v.DSNAction)
	}
	if v.DSNAction != "" && v.Kind != KindBounce && v.Kind != KindForwardedNDR {
		t.Fatalf("dsn action %q on a %s", v.DSNAction, v.Kind)
	}
	if v.Kind == KindBounce && v.DSNAction == "" {
		t.Fatalf("bounce without a dsn action")
	}
	if v.Hops < 0 || v.ForwardDepth < 0 {
		t.Fatalf("negative counts %d %d", v.Hops, v.ForwardDepth)
	}
	for _, s := range append(append([]Signal(nil), v.Signals...), v.LoopSigns...) {
		if s.Name == "" || s.Where == "" {
			t.Fatalf("signal without name or place: %+v", s)
		}
		if len(s.Value) > maxSignalValue+len("…") {
			t.Fatalf("signal value not shortened: %d bytes", len(s.Value))
		}
	}
	if v.Kind == KindOrdinary && (v.OriginalMessageID != "" || v.OriginalRecipient != "") {
		t.Fatalf("facts on ordinary mail: %q %q", v.OriginalMessageID, v.OriginalRecipient)
	}
	_ = v.Explain()
}

// FuzzClassify feeds arbitrary bytes through ReadMessage and Classify. It
// must never panic, and the verdict must keep its invariants and be the same
// on a second run (no hidden state).
func FuzzClassify(f *testing.F) {
	seedFiles(f, func(raw []byte) {
		f.Add(raw, "")
		f.Add(raw, "alice@corp.example")
	})
	f.Fuzz(func(t *testing.T, raw []byte, sender string) {
		m, err := ReadMessage(bytes.NewReader(raw), Envelope{Sender: sender, Recipients: []string{"bob@example.org"}}, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		v := Classify(m, Options{})
		checkVerdict(t, v)
		if w := Classify(m, Options{}); w.Kind != v.Kind || w.Explain() != v.Explain() {
			t.Fatalf("not deterministic: %s / %s", v.Explain(), w.Explain())
		}
		sm, err := ReadStoredMessage(bytes.NewReader(raw), 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, Classify(sm, Options{MaxDepth: 3, BodyLimit: 4096}))
	})
}

// FuzzMIMEWalk drives the MIME walk directly: a Content-Type, a transfer
// encoding and a body, all arbitrary, at the top of a message and inside an
// attached one.
func FuzzMIMEWalk(f *testing.F) {
	f.Add("multipart/report; report-type=delivery-status; boundary=b", "",
		[]byte("--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--b--\r\n"))
	f.Add("multipart/mixed; boundary=\"x y\"", "7bit",
		[]byte("--x y\r\nContent-Type: message/rfc822\r\n\r\nSubject: a\r\nContent-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\nContent-Type: text/html\r\n\r\n<p>x&amp;y</p>\r\n--z--\r\n--x y--\r\n"))
	f.Add("text/plain; charset=iso-2022-jp", "quoted-printable", []byte("=1B$B%a=1B(B\r\n"))
	f.Add("text/html", "base64", []byte("PGI+eDwvYj4=\r\n"))
	f.Add("multipart/digest; boundary=d", "", []byte("--d\r\n\r\nSubject: inner\r\n\r\nbody\r\n--d--"))
	f.Add("text/rfc822-headers", "", []byte("Subject: Undeliverable: x\r\nMessage-ID: <a@b>\r\n"))
	seedFiles(f, func(raw []byte) {
		m, err := ReadMessage(bytes.NewReader(raw), Envelope{}, 0)
		if err == nil {
			f.Add(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
		}
	})
	f.Fuzz(func(t *testing.T, ct, cte string, body []byte) {
		for _, embedded := range []bool{false, true} {
			w := walker{budget: 96 << 10, maxDepth: DefaultMaxDepth}
			fs := fields{{key: "Content-Type", value: ct}, {key: "Content-Transfer-Encoding", value: cte}}
			a := newAnalysis(fs, sender{}, 0)
			if embedded {
				w.embedded(a, partHeader{ct: mediaType{typ: "message/rfc822"}, cte: cte},
					bytes.NewReader(append([]byte("Content-Type: "+ct+"\r\n\r\n"), body...)), 0, []int{1}, false)
			} else {
				w.body(a, body, nil, 0)
			}
			if w.budget < 0 || w.parts > maxParts {
				t.Fatalf("bounds broken: budget %d parts %d", w.budget, w.parts)
			}
			a.conclude()
			checkVerdict(t, a.verdict())
			for _, r := range a.text.regions {
				if r.score < 0 || r.messageID != "" && !utf8.ValidString(r.messageID) && len(r.messageID) > 1000 {
					t.Fatalf("region state broken: %+v", r)
				}
			}
		}
	})
}

// FuzzParseSubject checks the subject parser on arbitrary text.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"FW: RE: Undeliverable: x", "[tag] Automatic reply: y", "Fwd[2]: failure notice",
		"Undeliverable: FW: Undeliverable: z", "***SPAM*** Returned mail", "AUTO: a is out of the office", "İLT: x", "轉寄：無法傳遞：x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		info := parseSubject(s)
		if info.forwards < 0 || info.depth < info.forwards || info.ndrs < 0 {
			t.Fatalf("counts broken: %+v", info)
		}
		if info.ndrPhrase == "" && info.ndrs != 0 {
			t.Fatalf("ndrs without a phrase: %+v", info)
		}
	})
}
