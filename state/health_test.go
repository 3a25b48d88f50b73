package state

import (
	"bytes"
	"errors"
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
