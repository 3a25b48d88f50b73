package state

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFileStaysBoundedUnderKeyChurn feeds distinct keys at a steady rate
// (1000 a second of fake time, a 1-minute window, so about 60k are live at
// once), sweeping and flushing as the daemon does. The file must stop
// growing once the live set is steady: its size after the last key is at
// most a little above its size halfway (the live set is steady from about
// 120k keys on). LOOPBREAKER_CHURN sets the number of keys (default 400k;
// the figure in the notes is for 1M).
func TestFileStaysBoundedUnderKeyChurn(t *testing.T) {
	total := envKeys(t, "LOOPBREAKER_CHURN", 400_000)
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	defer s.Close()
	ctx := context.Background()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	var half int64
	for i := 0; i < total; i++ {
		if _, err := s.Hit(ctx, Request{Rule: "bounces-to-recipient", Key: "user" + strconv.Itoa(i) + "@corp.example", Window: time.Minute, Limit: 50, BlockFor: time.Hour}); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Millisecond)
		if i%1000 == 999 { // one second of fake time: flush, as the daemon does
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if i%60000 == 59999 { // the sweeper
			s.Sweep()
		}
		if i%100000 == 99999 {
			t.Logf("after %d keys: %d KiB, %d live", i+1, size()>>10, s.Stats().Windows)
		}
		if i == total/2 {
			half = size()
		}
	}
	s.Sweep()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	end := size()
	live := s.Stats().Windows
	t.Logf("keys %d, live at end %d, file at half %d KiB, at end %d KiB", total, live, half>>10, end>>10)
	if live > 70_000 {
		t.Errorf("%d windows live, want about 60k", live)
	}
	if float64(end) > 1.25*float64(half) {
		t.Errorf("file grew from %d to %d bytes in the second half: not bounded", half, end)
	}
}
