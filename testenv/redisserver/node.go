package redisserver

// node.go: one redis-server process of a Sentinel or cluster deployment
// (sentinel.go, cluster.go), configured by a file it may rewrite, and the
// server flavours they run (Redis, Valkey).

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
	"github.com/redis/go-redis/v9"
)

// Flavor is a server implementation: its server and CLI binaries.
type Flavor struct {
	Name   string
	Server string // runs Sentinels too, with --sentinel
	CLI    string // for --cluster create
}

// Flavours the tests run.
var (
	Redis  = Flavor{Name: "redis", Server: Bin, CLI: "/usr/bin/redis-cli"}
	Valkey = Flavor{Name: "valkey", Server: "/usr/bin/valkey-server", CLI: "/usr/bin/valkey-cli"}
)

// Available reports why the flavour cannot run here, or nil.
func (f Flavor) Available() error {
	for _, b := range []string{f.Server, f.CLI} {
		if _, err := os.Stat(b); err != nil {
			pkg := f.Name + "-server"
			if f.Name == "valkey" {
				return fmt.Errorf("%s is not installed (Debian ships valkey-server from trixie on; bookworm has none): %w", b, err)
			}
			return fmt.Errorf("%s is not installed (apt-get install %s, or scripts/deps.sh): %w", b, pkg, err)
		}
	}
	return nil
}

// Node is one server process of a deployment.
type Node struct {
	Addr string // 127.0.0.1:PORT
	Port int
	proc *testproc.Proc
}

// startNode writes conf (plus the common settings) into dir and runs the
// flavour's server on it, with --sentinel when sentinel; it waits until the
// node answers PING.
func startNode(ctx context.Context, f Flavor, dir string, port int, conf string, sentinel bool) (*Node, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &Node{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port}
	common := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\ndaemonize no\nprotected-mode no\n",
		port, dir, filepath.Join(dir, "log"))
	if !sentinel {
		common += "save \"\"\nappendonly no\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n"
	}
	path := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(path, []byte(common+conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{path}
	if sentinel {
		args = append(args, "--sentinel")
	}
	// The server writes its log into the file itself; the process's own
	// output (a failed start before the log is open) is appended there too.
	n.proc = &testproc.Proc{Name: f.Server + " on " + n.Addr, Bin: f.Server, Args: args, LogFile: filepath.Join(dir, "log")}
	if err := n.proc.Start(); err != nil {
		return nil, err
	}
	// A raw PING: go-redis would log every refused dial.
	if err := n.proc.WaitReady(ctx, func(context.Context) error { return rawPing(n.Addr) }); err != nil {
		return nil, err
	}
	return n, nil
}

// client is a plain client of the node (no retries: a dead node says so).
func (n *Node) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: time.Second, DialerRetries: 1, PoolSize: 2})
}

// Do sends one command to the node and returns its answer.
func (n *Node) Do(ctx context.Context, args ...any) (any, error) {
	c := n.client()
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// info is one field of INFO (section "" for all).
func (n *Node) info(ctx context.Context, section, field string) (string, error) {
	c := n.client()
	defer c.Close()
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no %s in INFO %s", n.Addr, field, section)
}

// Kill stops the node at once (SIGKILL), as a crash would.
func (n *Node) Kill() { n.proc.Kill() }

// Alive reports whether the node's process runs.
func (n *Node) Alive() bool { return n.proc.Running() }

// Log is the node's log so far.
func (n *Node) Log() string { return n.proc.Log() }

// Pid is the node's process id.
func (n *Node) Pid() int { return n.proc.Pid() }

// killAll stops nodes; logs them first when the test failed.
func killAll(tb testing.TB, what string, nodes []*Node) {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		n.Kill()
		if tb != nil && tb.Failed() {
			tb.Logf("%s %s log:\n%s", what, n.Addr, tail(n.Log(), 40))
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rawPing sends PING in RESP and waits for +PONG, within a second.
func rawPing(addr string) error {
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
		return fmt.Errorf("%s answered %q", addr, line)
	}
	return nil
}
