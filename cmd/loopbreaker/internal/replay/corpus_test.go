package replay

import (
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// corporaDir is the shared corpora's folder, or skips the test saying why.
func corporaDir(t *testing.T) string {
	t.Helper()
	d, err := testproc.Corpora()
	if err != nil {
		t.Skip(err)
	}
	return d
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
