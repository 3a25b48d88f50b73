package classify

import (
	"bytes"
	"os"
	"path/filepath"
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

// BenchmarkCorpus classifies every message of the shared corpora (see
// corpusDir; skipped without them) and reports messages per second on one
// goroutine. The files are read and parsed once; only Classify is timed.
func BenchmarkCorpus(b *testing.B) {
	dir := corpusDir(b)
	rows := readManifest(b, dir)
	msgs := make([]*Message, 0, len(rows))
	for _, row := range rows {
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(row.path)))
		if err != nil {
			continue
		}
		m, err := ReadStoredMessage(bytes.NewReader(raw), 0)
		if err != nil {
			continue
		}
		msgs = append(msgs, m)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, m := range msgs {
			Classify(m, Options{})
		}
		n += len(msgs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
