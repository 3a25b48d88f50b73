package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptFileIsErrCorrupt: a file that is not a bbolt database, and one
// whose pages are damaged (bbolt panics on those), fail Open with
// ErrCorrupt and the command that moves the file aside.
func TestCorruptFileIsErrCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := openTest(t, good, newClock())
	s.Close()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(b)
	for i := 2 * 4096; i < len(damaged); i++ {
		damaged[i] ^= 0x5a
	}
	for name, data := range map[string][]byte{
		"garbage":   bytes.Repeat([]byte("garbage!"), 4096),
		"truncated": b[:100],
		"damaged":   damaged,
	} {
		path := filepath.Join(dir, name+".db")
		os.WriteFile(path, data, 0o640)
		_, err := Open(path, Options{FlushInterval: -1, SweepInterval: -1})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "mv "+path+" "+path+".corrupt") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestHealthTracksWrites: a failed write makes the store degraded until
// the next successful one.
func TestHealthTracksWrites(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"), newClock())
	defer s.Close()
	if h := s.Health(); h.Degraded || h.WriteErrors != 0 {
		t.Fatalf("fresh store: %+v", h)
	}
	s.noteWrite(errors.New("no space left on device"))
	s.noteWrite(errors.New("no space left on device"))
	h := s.Health()
	if !h.Degraded || h.WriteErrors != 2 || h.Since.IsZero() || !strings.Contains(h.LastError, "no space") {
		t.Fatalf("after failed writes: %+v", h)
	}
	if bs := s.BackendStatus(); !bs.Degraded || bs.Name != "bbolt" || bs.LastError == "" {
		t.Fatalf("backend status: %+v", bs)
	}
	s.noteWrite(nil)
	if h := s.Health(); h.Degraded || h.WriteErrors != 2 {
		t.Fatalf("after a good write: %+v", h)
	}
}

// TestPagesDamagedWhileRunningFailTheWrite: pages damaged under a running
// daemon make bbolt panic on the next write that walks them; the write
// fails with ErrCorrupt, the state is degraded, and the store still counts
// in memory (fail open) instead of taking the daemon down.
func TestPagesDamagedWhileRunningFailTheWrite(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	ctx := context.Background()
	for i := 0; i < 2000; i++ {
		if _, err := s.Hit(ctx, req(fmt.Sprintf("sender%d@corp.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	garbage := bytes.Repeat([]byte{0x5a}, int(st.Size())-4*4096)
	if _, err := f.WriteAt(garbage, 4*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i := 0; i < 2000; i++ {
		if _, err := s.Hit(ctx, req(fmt.Sprintf("sender%d@corp.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flush over damaged pages: %v, want ErrCorrupt", err)
	}
	// The counts kept in memory still decide: the 3rd hit passes, the 4th
	// starts a block (its write fails, the block holds in memory).
	res, err := s.Hit(ctx, req("sender1@corp.example"))
	if err != nil || res.Count != 3 || res.Blocked {
		t.Fatalf("3rd hit: %+v", res)
	}
	res, err = s.Hit(ctx, req("sender1@corp.example"))
	if !res.Blocked || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("4th hit: %+v, %v; want blocked, and ErrCorrupt from committing the block", res, err)
	}
	if h := s.Health(); !h.Degraded {
		t.Fatalf("health %+v, want degraded", h)
	}
	if err := s.Close(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("close: %v, want ErrCorrupt", err)
	}
	// The next start (another process: this one keeps bbolt's file lock)
	// reports the damage with the way out, as TestCorruptFileIsErrCorrupt
	// shows for damaged pages.
}
