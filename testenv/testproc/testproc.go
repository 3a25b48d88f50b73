// Package testproc holds the primitives testenv's harnesses share: a free
// loopback port, a child process whose output is captured, waiting for an
// SMTP greeting or a log line, and the module's root directory.
//
// It imports nothing of this module, so every testenv package (and the
// lbtestenv binary of the container environment) may use it.
package testproc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	return freePort(ctx, host, 0)
}

// FreePortWithPeer is FreePort for a server that binds a second port at a
// fixed offset from its own: a Redis Cluster node listens on port and on
// port+10000 (its bus), and both must be free and below 65536. The
// kernel's ephemeral ports run to 60999, so it picks at random in
// [20000, 65535-offset] and checks both by binding them. Neither port is
// handed out again, by FreePort or FreePortWithPeer.
func FreePortWithPeer(ctx context.Context, host string, offset int) (int, error) {
	if offset < 1 || offset > 65535-20000 {
		return 0, fmt.Errorf("free port: offset %d out of range", offset)
	}
	return freePort(ctx, host, offset)
}

// freePort is FreePort (offset 0: the kernel picks) and FreePortWithPeer.
func freePort(ctx context.Context, host string, offset int) (int, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return 0, fmt.Errorf("free port: %q is not a loopback address", host)
	}
	tries := 100
	if offset > 0 {
		tries = 1000
	}
	for range tries {
		port, err := 0, error(nil)
		if offset == 0 {
			port, err = listenable(ctx, host, 0)
		} else {
			port = 20000 + rand.IntN(65535-offset-20000+1)
			if _, err = listenable(ctx, host, port); err == nil {
				_, err = listenable(ctx, host, port+offset)
			}
			if err != nil {
				continue // taken: try another
			}
		}
		if err != nil {
			return 0, fmt.Errorf("free port on %s: %w", host, err)
		}
		if claim(port, offset) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port on %s: the ports offered were taken or handed out before", host)
}

// listenable binds host:port (0: any port) and closes it again; it returns
// the port bound.
func listenable(ctx context.Context, host string, port int) (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// claim marks port (and port+offset when offset > 0) handed out, unless
// either was handed out before; it reports whether it did.
func claim(port, offset int) bool {
	givenMu.Lock()
	defer givenMu.Unlock()
	if given[port] || offset > 0 && given[port+offset] {
		return false
	}
	given[port] = true
	if offset > 0 {
		given[port+offset] = true
	}
	return true
}

// given holds the ports FreePort and FreePortWithPeer have handed out. It
// is process-wide on purpose: ports are a resource of the whole process.
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
	var greeting string
	err := Poll(ctx, "an SMTP greeting at "+addr, func(ctx context.Context) (err error) {
		greeting, err = Banner(ctx, addr)
		return err
	})
	return greeting, err
}

// WaitForLine waits until the text read returns contains substr n times
// or more (n < 1 counts as 1).
func WaitForLine(ctx context.Context, read func() string, substr string, n int) error {
	n = max(n, 1)
	return Poll(ctx, fmt.Sprintf("%d× %q in the log", n, substr), func(context.Context) error {
		if c := strings.Count(read(), substr); c < n {
			return fmt.Errorf("%d so far", c)
		}
		return nil
	})
}

// Poll calls cond every 20 ms until it returns nil, and returns nil. It
// fails when cond returns an error made by Final (that error), or when ctx
// ends first: then the error names what it waited for and holds cond's
// last error. It is how every harness here waits for an event it cannot be
// told of (a port that answers, a line in a log, a replica in sync).
func Poll(ctx context.Context, what string, cond func(context.Context) error) error {
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		var f final
		if errors.As(err, &f) {
			return f.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// Final makes err an error Poll returns at once instead of trying again:
// the event waited for will not come (the process exited).
func Final(err error) error { return final{err} }

// final is an error of Final.
type final struct{ error }

func (f final) Unwrap() error { return f.error }

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
