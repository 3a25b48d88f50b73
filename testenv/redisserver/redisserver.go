// Package redisserver runs Debian's redis-server for tests, on a free
// loopback port in a temporary directory, without persistence. Tests call
// Start and skip when the binary is absent (scripts/deps.sh installs it).
package redisserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Bin is the redis-server of Debian's package.
const Bin = "/usr/bin/redis-server"

// Available reports why redis-server cannot run here, or nil.
func Available() error {
	if _, err := os.Stat(Bin); err != nil {
		return fmt.Errorf("%s is not installed (apt-get install redis-server, or scripts/deps.sh): %w", Bin, err)
	}
	return nil
}

// Server is a redis-server started by a test.
type Server struct {
	Addr string // 127.0.0.1:PORT
	proc *testproc.Proc
}

// URL is the server's redis:// URL with database db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// Start runs redis-server in dir on a free loopback port and waits until
// it answers.
func Start(ctx context.Context, dir string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	port, err := testproc.FreePort(ctx, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "redis.log")
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), proc: &testproc.Proc{
		Name: "redis-server", Bin: Bin, LogFile: log,
		Args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--appendonly", "no", "--logfile", log, "--daemonize", "no"},
	}}
	return s, s.Restart(ctx)
}

// MustStart starts a server for the test, skipping the test when
// redis-server is not installed, and stops it at the end of the test.
func MustStart(tb testing.TB) *Server {
	tb.Helper()
	return mustStart(tb, Available(), 30*time.Second, Start, func(s *Server) {
		if tb.Failed() {
			tb.Logf("redis-server log:\n%s", s.Log())
		}
		s.Kill()
	})
}

// mustStart is the MustStart of each deployment: it skips the test when
// notHere says the binaries are missing, runs start in a temporary
// directory within timeout, fails the test on its error and registers stop
// as the test's cleanup.
func mustStart[T any](tb testing.TB, notHere error, timeout time.Duration, start func(context.Context, string) (T, error), stop func(T)) T {
	tb.Helper()
	if notHere != nil {
		tb.Skipf("skipping: needs a real Redis: %v", notHere)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, err := start(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(v) })
	return v
}

// Restart starts the server again after Kill, on the same port, empty.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	return s.proc.WaitReady(ctx, func(context.Context) error { return rawPing(s.Addr) })
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.proc.Kill() }

// Pid is the running server's process id (0 before Start).
func (s *Server) Pid() int { return s.proc.Pid() }

// Log is the server's log so far.
func (s *Server) Log() string { return s.proc.Log() }
