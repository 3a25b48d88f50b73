package classify

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// The shared corpora live beside the project (../shared/corpora from the
// module root); LOOPBREAKER_CORPORA points elsewhere. Tests that need them
// skip, saying so, when they are absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	d, err := testproc.Corpora()
	if err != nil {
		t.Skip(err)
	}
	return d
}

type manifestRow struct {
	path, class, subclass, group string
}

func readManifest(t testing.TB, dir string) []manifestRow {
	t.Helper()
	var rows []manifestRow
	for _, get := range readTSV(t, filepath.Join(dir, "MANIFEST.tsv"), "path", "class", "subclass", "near_dup_group") {
		rows = append(rows, manifestRow{path: get("path"), class: get("class"), subclass: get("subclass"), group: get("near_dup_group")})
	}
	return rows
}

// readTSV reads a manifest: tab-separated, CSV quoting, a header row that
// must name every column in need. Each row comes back as a lookup by
// column name ("" where a short row lacks the column).
func readTSV(t testing.TB, path string, need ...string) []func(string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.LazyQuotes = true
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range need {
		if _, ok := col[c]; !ok {
			t.Fatalf("%s has no %q column", path, c)
		}
	}
	var rows []func(string) string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		})
	}
	return rows
}

// corpusRelabel lists the shared-corpus messages whose upstream label
// ("bounce": the bounce parsers that supplied them only ask whether a
// report can be parsed) is not what loopbreaker must say. Each is a report
// that a mailbox passed on unchanged to another address (issue 14, part 1),
// which the forward-storm rule must count; the reason is what the message
// shows, checked by hand.
var corpusRelabel = map[string]string{
	"bounces/php-bounce-handler/eml/testfile.eml": "Postfix report redirected by Thunderbird: Resent-From and " +
		"Return-Path thomas.seifert@, Resent-To bouncemail@, Resent-User-Agent Thunderbird 2.0",
	"bounces/ruby-mail/spec/fixtures/emails/multipart_report_emails/report_422.eml": "Sendmail delay report resent " +
		"by a mailbox: Resent-From and Return-Path mail_dump@ns1..., Resent-To mikel@",
}

// expectedKind maps the corpus classes to what loopbreaker should say
// (README.md of the corpus). ok is false for classes that are not scored.
func expectedKind(class string) (Kind, string, bool) {
	switch class {
	case "bounce":
		return KindBounce, DSNFailed, true
	case "dsn-delay":
		return KindBounce, DSNDelayed, true
	case "dsn-success":
		return KindBounce, DSNDelivered, true
	case "fwd-ndr":
		return KindForwardedNDR, "", true
	case "autoreply", "challenge-response":
		return KindAutoReply, "", true
	case "ham", "spam", "not-bounce", "arf-feedback-report", "mdn-read-receipt":
		return KindOrdinary, "", true
	}
	return "", "", false
}

type corpusResult struct {
	row     manifestRow
	verdict Verdict
	err     error
}

func classifyCorpus(t testing.TB, dir string, rows []manifestRow) []corpusResult {
	out := make([]corpusResult, 0, len(rows))
	for _, row := range rows {
		res := corpusResult{row: row}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(row.path)))
		if err != nil {
			res.err = err
			out = append(out, res)
			continue
		}
		m, err := ReadStoredMessage(f, 0)
		f.Close()
		if err != nil {
			res.err = err
		} else {
			res.verdict = Classify(m, Options{})
		}
		out = append(out, res)
	}
	return out
}

// TestCorpusConfusion classifies every file of the shared corpora, prints a
// confusion table per class (go test -v) and holds the classifier to the
// targets of issue 3: bounce recall >= 99.5%, auto-reply recall >= 95%,
// ham and spam taken for anything but ordinary <= 0.05%. Each near-duplicate
// group counts once, and counts as right only when every copy is right.
func TestCorpusConfusion(t *testing.T) {
	dir := corpusDir(t)
	if testing.Short() {
		t.Skip("corpus measurement skipped in -short mode")
	}
	rows := readManifest(t, dir)
	for i := range rows {
		if why, ok := corpusRelabel[rows[i].path]; ok && rows[i].class == "bounce" {
			t.Logf("scored as fwd-ndr, not the upstream label %q: %s: %s", rows[i].class, rows[i].path, why)
			rows[i].class = "fwd-ndr"
		}
	}
	results := classifyCorpus(t, dir, rows)
	if dump := os.Getenv("LOOPBREAKER_CORPUS_DUMP"); dump != "" {
		// For tuning: every verdict, one line per file.
		var b strings.Builder
		for _, r := range results {
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%s\n", r.row.path, r.row.class, r.row.group, r.verdict.Kind, r.verdict.DSNAction, r.verdict.Explain())
		}
		if err := os.WriteFile(dump, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	type unit struct {
		class string
		kinds map[Kind]int
		ok    bool
		paths []string
		why   []string
		// actionMiss lists delay/success notices whose DSN action was not
		// the labelled one.
		actionMiss []string
	}
	units := map[string]*unit{}
	var order []string
	for _, r := range results {
		want, action, scored := expectedKind(r.row.class)
		if !scored {
			continue
		}
		key := r.row.class + "|" + r.row.path
		if r.row.group != "" {
			key = r.row.class + "|" + r.row.group
		}
		u := units[key]
		if u == nil {
			u = &unit{class: r.row.class, kinds: map[Kind]int{}, ok: true}
			units[key] = u
			order = append(order, key)
		}
		got := r.verdict.Kind
		if r.err != nil {
			got = "error"
		}
		u.kinds[got]++
		right := got == want
		if right && want == KindBounce && r.row.class != "bounce" && r.verdict.DSNAction != action {
			// Delay and success notices must be told apart from
			// failures; the "bounce" class holds all three, as upstream
			// labelled them, so its action is not scored.
			u.actionMiss = append(u.actionMiss, fmt.Sprintf("%s: dsn_action=%s, want %s (%s)",
				r.row.path, r.verdict.DSNAction, action, r.verdict.Explain()))
		}
		if !right {
			u.ok = false
			u.paths = append(u.paths, r.row.path)
			why := r.verdict.Explain()
			if r.err != nil {
				why = r.err.Error()
			}
			u.why = append(u.why, why)
		}
	}

	type row struct {
		n, right int
		kinds    map[Kind]int
	}
	table := map[string]*row{}
	var misses, actionMisses []string
	for _, key := range order {
		u := units[key]
		tr := table[u.class]
		if tr == nil {
			tr = &row{kinds: map[Kind]int{}}
			table[u.class] = tr
		}
		tr.n++
		if u.ok {
			tr.right++
		}
		// The unit's prediction: the wrong one if any copy was wrong.
		pred := Kind("")
		for k := range u.kinds {
			if pred == "" || (!u.ok && k != kindFor(u.class)) {
				pred = k
			}
		}
		tr.kinds[pred]++
		for i := range u.paths {
			misses = append(misses, fmt.Sprintf("%-20s %s\n\t%s", u.class, u.paths[i], u.why[i]))
		}
		actionMisses = append(actionMisses, u.actionMiss...)
	}
	classes := make([]string, 0, len(table))
	for c := range table {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-22s %6s %8s %8s %8s %8s %8s %8s\n", "class (unique)", "n", "bounce", "fwd-ndr", "auto", "ordinary", "error", "right%")
	for _, c := range classes {
		tr := table[c]
		fmt.Fprintf(&b, "%-22s %6d %8d %8d %8d %8d %8d %7.2f%%\n", c, tr.n,
			tr.kinds[KindBounce], tr.kinds[KindForwardedNDR], tr.kinds[KindAutoReply], tr.kinds[KindOrdinary],
			tr.kinds["error"], 100*float64(tr.right)/float64(tr.n))
	}
	t.Log(b.String())
	logFirst(t, misses, 200)

	for _, m := range actionMisses {
		t.Logf("DSN action disagrees with the label: %s", m)
	}
	if len(actionMisses) > 1 {
		t.Errorf("%d delay/success notices with the wrong DSN action", len(actionMisses))
	}

	rate := func(classes ...string) (right, n int) {
		for _, c := range classes {
			if tr := table[c]; tr != nil {
				right += tr.right
				n += tr.n
			}
		}
		return
	}
	if r, n := rate("bounce"); n > 0 && float64(r) < 0.995*float64(n) {
		t.Errorf("bounce recall %d/%d = %.2f%%, want >= 99.5%%", r, n, 100*float64(r)/float64(n))
	}
	if r, n := rate("autoreply", "challenge-response"); n > 0 && float64(r) < 0.95*float64(n) {
		t.Errorf("auto-reply recall %d/%d = %.2f%%, want >= 95%%", r, n, 100*float64(r)/float64(n))
	}
	if r, n := rate("ham", "spam"); n > 0 && float64(n-r) > 0.0005*float64(n) {
		t.Errorf("ham+spam not ordinary %d/%d = %.3f%%, want <= 0.05%%", n-r, n, 100*float64(n-r)/float64(n))
	}
	for _, c := range []string{"dsn-delay", "dsn-success", "fwd-ndr"} {
		if r, n := rate(c); r != n {
			t.Errorf("%s: %d/%d right", c, r, n)
		}
	}
}

func kindFor(class string) Kind {
	k, _, _ := expectedKind(class)
	return k
}
