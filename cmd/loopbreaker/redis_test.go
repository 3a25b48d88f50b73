package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/state/redisstore"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestOpenStateRedis: -redis picks the shared backend (the policy's redis
// otherwise); an unreachable Redis starts the daemon degraded, never stops
// it; a bad URL or fail mode is refused at start.
func TestOpenStateRedis(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A port nobody listens on.
	port, err := testproc.FreePort(context.Background(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	down := fmt.Sprintf("redis://127.0.0.1:%d/0", port)

	p := policy.Default()
	st, err := openState(filepath.Join(t.TempDir(), "s.db"), &serveFlags{}, p, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*state.Store); !ok {
		t.Errorf("without -redis: %T, want *state.Store", st)
	}
	st.Close()

	p.Redis, p.RedisFailMode = down, "pass"
	st, err = openState(filepath.Join(t.TempDir(), "s.db"), &serveFlags{}, p, log)
	if err != nil {
		t.Fatal(err)
	}
	sh, ok := st.(*redisstore.Shared)
	if !ok {
		t.Fatalf("with the policy's redis: %T", st)
	}
	if b := sh.BackendStatus(); b.Name != "redis" || !b.Degraded || b.FailMode != "pass" || b.Address != down {
		t.Errorf("status with Redis down: %+v", b)
	}
	st.Close()

	for _, f := range []serveFlags{{redis: "http://x"}, {redis: down, redisFailMode: "closed"}} {
		if st, err := openState(filepath.Join(t.TempDir(), "s.db"), &f, policy.Default(), log); err == nil {
			st.Close()
			t.Errorf("%+v accepted", f)
		} else if !strings.Contains(err.Error(), "Redis") {
			t.Errorf("%+v: %v", f, err)
		}
	}
}
