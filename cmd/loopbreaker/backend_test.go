package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestBackendReload: a reload with the same redis leaves the backend as it
// is (the same store, nothing moved) but applies a changed fail mode; a
// URL that does not parse is refused with the reason and the backend stays;
// with -redis, the policy's redis is ignored and the log says why.
func TestBackendReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server")
	}
	rs := redisserver.MustStart(t)
	var logs testproc.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := policy.Default()
	p.Redis = rs.URL(0)
	b, err := openBackend(filepath.Join(t.TempDir(), "s.db"), &serveFlags{name: "mta1"}, p, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.name != "mta1" {
		t.Errorf("name %q", b.name)
	}
	was := b.Current()
	ctx := context.Background()

	same := policy.Default()
	same.Redis, same.RedisFailMode = rs.URL(0), "pass"
	if err := b.reload(ctx, same); err != nil {
		t.Fatal(err)
	}
	if b.Current() != was || strings.Contains(logs.String(), "state moved") {
		t.Fatalf("a reload with the same redis moved the state:\n%s", logs.String())
	}
	if st := b.BackendStatus(); st.FailMode != "pass" {
		t.Fatalf("fail mode after the reload: %+v, want pass", st)
	}

	bad := policy.Default()
	bad.Redis = "http://10.0.0.5:6379"
	err = b.reload(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "the state stays in Redis "+rs.URL(0)) || !strings.Contains(err.Error(), "Redis URL") {
		t.Fatalf("a bad URL: %v", err)
	}
	if b.Current() != was {
		t.Fatal("a refused reload changed the backend")
	}

	// -redis wins over the policy.
	fb, err := openBackend(filepath.Join(t.TempDir(), "s.db"), &serveFlags{redis: rs.URL(1)}, policy.Default(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	other := policy.Default()
	other.Redis = rs.URL(2)
	if err := fb.reload(ctx, other); err != nil {
		t.Fatal(err)
	}
	if st := fb.BackendStatus(); st.Address != rs.URL(1) {
		t.Fatalf("with -redis, the policy's redis moved the state: %+v", st)
	}
	if !strings.Contains(logs.String(), "-redis on the command line wins") {
		t.Fatalf("the ignored redis is not logged:\n%s", logs.String())
	}
}
