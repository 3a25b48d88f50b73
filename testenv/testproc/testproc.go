// Package testproc holds the primitives testenv's harnesses share: a free
// loopback port, a child process whose output is captured, waiting for an
// SMTP greeting or a log line, and the module's root directory.
//
// It imports nothing of this module, so every testenv package (and the
// lbtestenv binary of the container environment) may use it.
package testproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// pollInterval is how often the Wait functions look again.
const pollInterval = 20 * time.Millisecond

// FreePort asks the kernel for a free TCP port on host, which must be a
// loopback address ("" is 127.0.0.1). The port is free when FreePort
// returns; a caller that binds it later may lose it to another process.
// FreePort never hands out the same port twice in a process: a test that
// asks for two ports (the milter's and the metrics') before its daemon
// binds either would otherwise, now and then, get one port twice.
func FreePort(ctx context.Context, host string) (int, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return 0, fmt.Errorf("free port: %q is not a loopback address", host)
	}
	var lc net.ListenConfig
	for range 100 {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("free port on %s: %w", host, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		givenMu.Lock()
		seen := given[port]
		given[port] = true
		givenMu.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port on %s: the kernel offers only ports handed out before", host)
}

// given holds the ports FreePort has handed out.
var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

// Network is "unix" for an absolute path (a unix socket), else "tcp".
func Network(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "unix"
	}
	return "tcp"
}

// Accepts reports whether addr (host:port, or the path of a unix socket)
// accepts a connection.
func Accepts(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, Network(addr), addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Banner connects to the SMTP server at addr, reads its greeting, says
// QUIT and returns the greeting line. Any reply code will do (the caller
// checks it): smtpd greets with 554 or 421 when its milter is unavailable
// and milter_default_action is reject or tempfail. The probe gives up
// after 5 seconds.
func Banner(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return "", err
	}
	// One byte at a time: nothing after the greeting's line is read.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 1000 && (len(line) == 0 || line[len(line)-1] != '\n') {
		if _, err := conn.Read(b); err != nil {
			return "", fmt.Errorf("read greeting: %w", err)
		}
		line = append(line, b[0])
	}
	greeting := strings.TrimRight(string(line), "\r\n")
	if len(greeting) < 4 || greeting[0] < '2' || greeting[0] > '5' || (greeting[3] != ' ' && greeting[3] != '-') {
		return "", fmt.Errorf("greeting %q", greeting)
	}
	_, err = conn.Write([]byte("QUIT\r\n"))
	return greeting, err
}

// WaitForBanner probes addr with Banner until it greets, and returns the
// greeting; when ctx ends first, the error holds the last probe's.
func WaitForBanner(ctx context.Context, addr string) (string, error) {
	for {
		greeting, err := Banner(ctx, addr)
		if err == nil {
			return greeting, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no SMTP greeting at %s (last error: %v): %w", addr, err, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// WaitForLine waits until the text read returns contains substr n times
// or more (n < 1 counts as 1).
func WaitForLine(ctx context.Context, read func() string, substr string, n int) error {
	n = max(n, 1)
	for {
		if strings.Count(read(), substr) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("log lacks %d× %q: %w", n, substr, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// ModuleRoot finds the directory of this module's go.mod from the working
// directory (a test's is its package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Corpora finds the shared mail corpora the classifier and replay tests
// read: the folder $LOOPBREAKER_CORPORA names, else ../shared/corpora beside
// the module root. A folder counts when it holds MANIFEST.tsv. The error says
// where it looked, for the skip message of a test that needs them.
func Corpora() (string, error) {
	if d := os.Getenv("LOOPBREAKER_CORPORA"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "MANIFEST.tsv")); err != nil {
			return "", fmt.Errorf("LOOPBREAKER_CORPORA=%s has no MANIFEST.tsv: %w", d, err)
		}
		return d, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("corpora not found: %w", err)
	}
	d := filepath.Join(filepath.Dir(root), "shared", "corpora")
	if _, err := os.Stat(filepath.Join(d, "MANIFEST.tsv")); err != nil {
		return "", fmt.Errorf("corpora not found at %s (set LOOPBREAKER_CORPORA): %w", d, err)
	}
	return d, nil
}
