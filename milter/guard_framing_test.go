package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns a guarded server side and the raw client side of a
// loopback TCP connection.
func tcpPair(t *testing.T) (*framingConn, net.Conn) {
	t.Helper()
	return guardedPair(t, "tcp", "127.0.0.1:0")
}

// guardedPair listens on network and address, connects, and returns the
// accepted side wrapped as the server wraps it, and the client side.
func guardedPair(t *testing.T, network, address string) (*framingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fc := newFramingConn(server, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	t.Cleanup(func() { fc.Close(); client.Close() })
	return fc, client
}

func packet(cmd byte, data string) []byte {
	p := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(p, cmd), data...)
}

// readPacket reads one packet the way go-milter's wire.ReadPacket does:
// the length, then the rest.
func readPacket(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, binary.BigEndian.Uint32(l[:]))
	if _, err := io.ReadFull(r, data); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestFramingConnWritesEachReplyWhole writes replies as go-milter does (the
// 5-byte header, then the payload) and checks that the peer gets them
// byte for byte, including replies without payload, which must not wait.
func TestFramingConnWritesEachReplyWhole(t *testing.T) {
	fc, client := tcpPair(t)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, pk := range [][]byte{packet('c', ""), packet('h', "X-Loopbreaker\x00storm"), packet('a', ""), packet('b', "xyzzy")} {
		if _, err := fc.Write(pk[:5]); err != nil {
			t.Fatal(err)
		}
		if len(pk) > 5 {
			if n, err := fc.Write(pk[5:]); err != nil || n != len(pk)-5 {
				t.Fatalf("payload write: %d %v", n, err)
			}
		}
		if got := readPacket(t, client); !bytes.Equal(got, pk[4:]) {
			t.Fatalf("got %q, want %q", got, pk[4:])
		}
	}
	// A write that is not one packet passes through as it is.
	if _, err := fc.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Write([]byte{0, 2, 'x', 'y', 0, 0}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, []byte{0, 0, 0, 2, 'x', 'y'}) {
		t.Fatalf("pass-through: %q %v", got, err)
	}
}

// TestFramingConnReadsBatchedAndSplitPackets sends packets several to a
// write and one byte per write; each comes out whole.
func TestFramingConnReadsBatchedAndSplitPackets(t *testing.T) {
	fc, client := tcpPair(t)
	fc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var batch []byte
	want := [][]byte{packet('L', "Subject\x00hi"), packet('D', "Li\x00ABC"), packet('B', string(bytes.Repeat([]byte("x"), 40000)))}
	for _, pk := range want {
		batch = append(batch, pk...)
	}
	go func() {
		client.Write(batch)
		for _, b := range packet('E', "") {
			client.Write([]byte{b})
			time.Sleep(time.Millisecond)
		}
	}()
	for _, pk := range append(want, packet('E', "")) {
		if got := readPacket(t, fc); !bytes.Equal(got, pk[4:]) {
			t.Fatalf("got %d bytes %.20q, want %.20q", len(got), got, pk[4:])
		}
	}
}

// TestFramingConnReadDeadline: the deadline go-milter sets before a packet
// still ends a read that waits for the socket.
func TestFramingConnReadDeadline(t *testing.T) {
	fc, _ := tcpPair(t)
	fc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := fc.Read(make([]byte, 4))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read without data: %v, want a timeout", err)
	}
}
