package testproc

import (
	"context"
	"net"
	"testing"
	"time"
)

// Server is what ServeLoopback runs: a milter or SMTP server whose Serve
// returns nil once Shutdown has stopped it.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// ServeLoopback serves srv on a free loopback TCP port until the end of
// the test, and returns its address. At the end it shuts srv down (giving
// sessions in progress 10 s) and fails the test if Serve returned an
// error.
func ServeLoopback(tb testing.TB, srv Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			tb.Errorf("serve on %s: %v", ln.Addr(), err)
		}
	})
	return ln.Addr().String()
}
