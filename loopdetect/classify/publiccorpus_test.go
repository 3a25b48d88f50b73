package classify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The project's own corpus of real messages from public sources lives in
// testdata/public (README.md there says where each came from, under which
// licence, and how the tune/heldout split is drawn). Unlike the shared
// corpora it is committed with the code, so this test always runs.

const publicCorpusDir = "testdata/public"

type publicRow struct {
	path, class, subclass, split string
}

func readPublicManifest(t testing.TB) []publicRow {
	t.Helper()
	var rows []publicRow
	for _, get := range readTSV(t, filepath.Join(publicCorpusDir, "MANIFEST.tsv"), "path", "class", "subclass", "split") {
		rows = append(rows, publicRow{path: get("path"), class: get("class"), subclass: get("subclass"), split: get("split")})
	}
	return rows
}

// publicExpected maps the public corpus classes to the Kind loopbreaker
// should give. Challenge-response messages ("please confirm you are a human
// before your mail is delivered") are answers a program sends back to a
// message it received, exactly like a vacation notice, and must not be
// answered either: they are scored as auto-replies.
func publicExpected(class string) (Kind, bool) {
	switch class {
	case "bounce":
		return KindBounce, true
	case "fwd-ndr":
		return KindForwardedNDR, true
	case "autoreply", "challenge-response":
		return KindAutoReply, true
	case "ordinary":
		return KindOrdinary, true
	}
	return "", false
}

// TestPublicCorpus classifies every message of testdata/public and reports
// recall per class, separately for the tune and heldout splits, with every
// miss and the verdict's evidence (go test -v).
//
// Floors: no message labelled ordinary (hard negatives included) may be
// taken for anything else, and bounce recall over the whole set must stay at
// or above publicBounceFloor (set a few points under the figure measured when
// the corpus was added); auto-reply (challenge-response included) and
// forwarded-NDR recall over both splits must stay at or above their floors
// (issue 14). Raise these floors as the classifier improves; look at the
// heldout figures only to check, never to tune.
func TestPublicCorpus(t *testing.T) {
	const publicBounceFloor = 0.90
	// Auto-replies (challenge-response included) and forwarded NDRs, over
	// both splits: set under the figures of issue 14 (all right), to
	// catch a regression, not to freeze a number.
	const publicAutoFloor, publicFwdFloor = 0.8, 0.9
	var autoN, autoRight, fwdN, fwdRight int

	rows := readPublicManifest(t)
	if len(rows) == 0 {
		t.Fatal("testdata/public/MANIFEST.tsv lists no messages")
	}
	bySplit := map[string]tallies{} // split -> class -> tally
	var misses, falsePositives []string
	var bounceN, bounceRight int
	for _, row := range rows {
		want, scored := publicExpected(row.class)
		if !scored {
			t.Errorf("%s: unknown class %q", row.path, row.class)
			continue
		}
		if row.split != "tune" && row.split != "heldout" {
			t.Errorf("%s: unknown split %q", row.path, row.split)
		}
		var v Verdict
		got := Kind("error")
		why := ""
		f, err := os.Open(filepath.Join(publicCorpusDir, filepath.FromSlash(row.path)))
		if err == nil {
			// The envelope sender comes from Return-Path (null for
			// "Return-Path: <>"), else from an mbox "From " line.
			var m *Message
			m, err = ReadStoredMessage(f, 0)
			f.Close()
			if err == nil {
				v = Classify(m, Options{})
				got = v.Kind
				why = v.Explain()
			}
		}
		if err != nil {
			why = err.Error()
		}
		if bySplit[row.split] == nil {
			bySplit[row.split] = tallies{}
		}
		bySplit[row.split].add(row.class, got == want)
		if row.class == "bounce" {
			bounceN++
		}
		isAuto := row.class == "autoreply" || row.class == "challenge-response"
		if isAuto {
			autoN++
		}
		if row.class == "fwd-ndr" {
			fwdN++
		}
		if got == want {
			if row.class == "bounce" {
				bounceRight++
			}
			if isAuto {
				autoRight++
			}
			if row.class == "fwd-ndr" {
				fwdRight++
			}
			continue
		}
		line := fmt.Sprintf("[%s] %-10s %s (%s)\n\tgot %s: %s", row.split, row.class, row.path, row.subclass, got, why)
		misses = append(misses, line)
		if row.class == "ordinary" {
			falsePositives = append(falsePositives, line)
		}
	}

	var b strings.Builder
	for _, split := range []string{"tune", "heldout"} {
		fmt.Fprintf(&b, "\n%s split:\n  %-32s %5s %5s %7s\n", split, "class", "n", "right", "recall")
		bySplit[split].write(&b)
	}
	t.Log(b.String())
	logFirst(t, misses, len(misses))

	for _, fp := range falsePositives {
		t.Errorf("ordinary message not classified ordinary: %s", fp)
	}
	if autoN > 0 && float64(autoRight) < publicAutoFloor*float64(autoN) {
		t.Errorf("auto-reply recall %d/%d, want >= %.0f%%", autoRight, autoN, 100*publicAutoFloor)
	}
	if fwdN > 0 && float64(fwdRight) < publicFwdFloor*float64(fwdN) {
		t.Errorf("forwarded-NDR recall %d/%d, want >= %.0f%%", fwdRight, fwdN, 100*publicFwdFloor)
	}
	if bounceN > 0 && float64(bounceRight) < publicBounceFloor*float64(bounceN) {
		t.Errorf("bounce recall %d/%d = %.1f%%, want >= %.0f%%", bounceRight, bounceN,
			100*float64(bounceRight)/float64(bounceN), 100*publicBounceFloor)
	}
}
