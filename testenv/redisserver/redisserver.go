// Package redisserver runs Debian's redis-server for tests, on a free
// loopback port in a temporary directory, without persistence. Tests call
// Start and skip when the binary is absent (scripts/deps.sh installs it).
package redisserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// URL is the server's redis:// URL with database db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// Start runs redis-server in dir on a free loopback port and waits until
// it answers.
func Start(ctx context.Context, dir string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, port: port, log: filepath.Join(dir, "redis.log")}
	return s, s.Restart(ctx)
}

// MustStart starts a server for the test, skipping the test when
// redis-server is not installed, and stops it at the end of the test.
func MustStart(tb testing.TB) *Server {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("skipping: needs a real Redis: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redis-server log:\n%s", s.Log())
		}
		s.Kill()
	})
	return s
}

// Restart starts the server again after Kill, on the same port, empty.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		select {
		case <-s.done:
		default:
			return fmt.Errorf("redis-server on %s is still running", s.Addr)
		}
	}
	cmd := exec.Command(Bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "no", "--logfile", s.log, "--daemonize", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	for {
		if err := ping(s.Addr); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start:\n%s", s.logText())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not answer on %s: %w\n%s", s.Addr, ctx.Err(), s.logText())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Pid is the running server's process id (0 before Start).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log is the server's log so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logText()
}

func (s *Server) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// ping sends PING in RESP and waits for +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis-server answered %q", line)
	}
	return nil
}
