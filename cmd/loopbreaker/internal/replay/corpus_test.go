package replay

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// corporaDir finds the shared mail corpora: $LOOPBREAKER_CORPORA, else
// ../shared/corpora beside the module root, else /work/shared/corpora.
func corporaDir(t *testing.T) string {
	t.Helper()
	var tried []string
	try := func(d string) bool {
		tried = append(tried, d)
		fi, err := os.Stat(filepath.Join(d, "ham"))
		return err == nil && fi.IsDir()
	}
	if d := os.Getenv("LOOPBREAKER_CORPORA"); d != "" {
		if try(d) {
			return d
		}
		t.Skipf("LOOPBREAKER_CORPORA=%s has no ham/ folder", d)
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if d := filepath.Join(filepath.Dir(dir), "shared", "corpora"); try(d) {
					return d
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if d := "/work/shared/corpora"; try(d) {
		return d
	}
	t.Skipf("no mail corpora (looked in %v; set LOOPBREAKER_CORPORA)", tried)
	return ""
}

// TestReplayCorpora replays every file of the corpora's ham/ and spam/
// folders (read as trees of message files, each at its own date) with the
// built-in policy as an inbox, and finds no ordinary message touched: about
// 8,000 files, some seconds. As a Sent folder (From: the sender) it replays
// a sample, every fourth file, to stay quick.
func TestReplayCorpora(t *testing.T) {
	dir := corporaDir(t)
	if testing.Short() {
		t.Skip("replaying the corpora takes seconds; not with -short")
	}
	check := func(t *testing.T, rep *Report) {
		t.Logf("%d messages (%d bad, %d undated), kinds %v, %.0f msgs/s", rep.Messages, len(rep.Bad), rep.Undated, rep.Kinds, rep.PerSecond)
		for _, tc := range rep.OrdinaryTouched {
			t.Errorf("ordinary message touched: %s %q: %s by %s (key %s): %s", tc.Message.Location, tc.Message.Subject, tc.Action, tc.Rule, tc.Key, tc.Evidence)
		}
		for _, rr := range rep.Rules {
			for _, b := range rr.Blocks {
				t.Logf("block %s %s from %s: %d messages %v", b.Rule, b.Key, b.Since, b.Messages, b.ByKind)
			}
		}
	}
	ham, spam := filepath.Join(dir, "ham"), filepath.Join(dir, "spam")
	t.Run("inbound", func(t *testing.T) {
		rep := replayOrFail(t, Config{Mailbox: Inbound}, ham, spam)
		if rep.Messages < 1000 {
			t.Errorf("only %d messages replayed", rep.Messages)
		}
		check(t, rep)
	})
	t.Run("outbound-sample", func(t *testing.T) {
		var files []string
		for _, root := range []string{ham, spam} {
			n := 0
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if n++; n%4 == 0 {
						files = append(files, p)
					}
				}
				return nil
			})
		}
		rep := replayOrFail(t, Config{Mailbox: Outbound}, files...)
		if rep.Messages < 250 {
			t.Errorf("only %d messages replayed", rep.Messages)
		}
		check(t, rep)
	})
}
