package classify

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkClassify measures the classifier on representative messages. The
// messages are read once; only Classify is timed, as in the milter, which
// builds the Message from the MTA's callbacks.
func BenchmarkClassify(b *testing.B) {
	big := "From: Alice <alice@corp.example>\r\nTo: bob@example.org\r\nSubject: minutes\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.Repeat("The meeting agreed on the plan; Bob will send the figures on Friday.\r\n", 3000)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"ordinary", readTestdata(b, "ordinary.eml")},
		{"ordinary-list", readTestdata(b, "list.eml")},
		{"ordinary-200KiB", []byte(big)},
		{"ndr-postfix", readTestdata(b, "postfix-ndr.eml")},
		{"ndr-exchange", readTestdata(b, "exchange-ndr.eml")},
		{"forwarded-ndr-inline", readTestdata(b, "fwd-outlook-de.eml")},
		{"forwarded-ndr-attached", readTestdata(b, "fwd-attachment.eml")},
		{"auto-reply", readTestdata(b, "autoreply-outlook.eml")},
	}
	for _, c := range cases {
		m, err := ReadStoredMessage(bytes.NewReader(c.raw), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.raw)))
			for b.Loop() {
				Classify(m, Options{})
			}
		})
	}
}
