package milter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// unixPair returns a guarded server side and the raw client side of a
// unix socket connection.
func unixPair(t *testing.T) (*framingConn, net.Conn) {
	t.Helper()
	return guardedPair(t, "unix", filepath.Join(t.TempDir(), "m.sock"))
}

// TestFramingConnSocketCalls runs what the milter reads and writes through
// the socket calls of each transport (raw system calls on Linux): packets
// both ways, a write far larger than the socket's buffer (it must wait for
// the peer to read, not fail or cut), and the peer's close seen as io.EOF,
// as net.Conn gives it.
func TestFramingConnSocketCalls(t *testing.T) {
	for name, pair := range map[string]func(*testing.T) (*framingConn, net.Conn){"tcp": tcpPair, "unix": unixPair} {
		t.Run(name, func(t *testing.T) {
			fc, client := pair(t)
			if runtime.GOOS == "linux" && fc.raw == nil {
				t.Fatalf("%s: no raw connection", name)
			}
			fc.SetReadDeadline(time.Now().Add(5 * time.Second))
			client.SetDeadline(time.Now().Add(5 * time.Second))

			if _, err := client.Write(packet('O', "negotiate")); err != nil {
				t.Fatal(err)
			}
			if got := readPacket(t, fc); string(got) != "Onegotiate" {
				t.Errorf("server read %q", got)
			}

			// A reply of 8 MiB: header first, as go-milter writes it.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19)
			reply := packet('h', string(big))
			done := make(chan error, 1)
			go func() {
				if _, err := fc.Write(reply[:5]); err != nil {
					done <- err
					return
				}
				_, err := fc.Write(reply[5:])
				done <- err
			}()
			got, err := io.ReadAll(io.LimitReader(client, int64(len(reply))))
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("writing the big reply: %v", err)
			}
			if !bytes.Equal(got, reply) {
				t.Errorf("client got %d bytes, want the %d of the reply", len(got), len(reply))
			}

			client.Close()
			var buf [16]byte
			if n, err := fc.Read(buf[:]); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the peer closed: %d, %v; want 0, io.EOF", n, err)
			}
		})
	}
}

// TestFramingConnWriteErrorIsAnOpError: a write to a connection the peer
// has reset fails with a *net.OpError, as net.Conn's would.
func TestFramingConnWriteErrorIsAnOpError(t *testing.T) {
	fc, client := tcpPair(t)
	client.(*net.TCPConn).SetLinger(0) // close with RST
	client.Close()
	// The first writes may still be taken before the RST is seen.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	_ = testproc.Poll(ctx, "a write to fail", func(context.Context) error {
		if _, err = fc.Write(packet('c', "")); err != nil {
			return nil
		}
		return errors.New("the write was taken")
	})
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Errorf("write after reset: %v (%T), want a *net.OpError of op write", err, err)
	}
}
