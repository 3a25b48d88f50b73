package state

import (
	"context"
	"errors"
	"math"
	"runtime/debug"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func TestMemoryLimit(t *testing.T) {
	if got := MemoryLimit(0); got != MinMemoryLimit {
		t.Errorf("MemoryLimit(0) = %d, want %d", got, MinMemoryLimit)
	}
	if got, want := MemoryLimit(400<<20), int64(500<<20+memoryHeadroom); got != want {
		t.Errorf("MemoryLimit(400 MiB) = %d, want %d", got, want)
	}
}

func TestKeepMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { KeepMemoryLimit(stop, time.Millisecond); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	limitSet := func(what string) {
		t.Helper()
		if err := testproc.Poll(ctx, what, func(context.Context) error {
			if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 {
				return errors.New("no limit yet")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	limitSet("the limit set at start")
	// The next ones, every interval: a limit undone is set again.
	debug.SetMemoryLimit(math.MaxInt64)
	limitSet("the limit set again")
	close(stop)
	<-done
	if got := debug.SetMemoryLimit(-1); got < MinMemoryLimit || got == math.MaxInt64 {
		t.Errorf("limit %d after KeepMemoryLimit, want at least %d", got, MinMemoryLimit)
	}

	// GOMEMLIMIT set: left alone.
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	KeepMemoryLimit(make(chan struct{}), time.Millisecond) // returns at once
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d with GOMEMLIMIT set, want it untouched", got)
	}
}
