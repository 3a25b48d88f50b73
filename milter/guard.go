package milter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// MaxFrame is the largest milter packet a guarded connection lets through.
// MTAs send body chunks of at most 64 KiB (1 MiB when negotiated) and one
// header per packet; 16 MiB leaves room for raised header limits while a
// hostile peer can no longer make the library allocate 512 MiB at once.
const MaxFrame = 16 << 20

// ErrBadFrame is returned by a guarded connection that saw an invalid
// milter packet length.
var ErrBadFrame = errors.New("milter: invalid packet length")

// guardListener wraps every accepted connection in a framingConn and caps
// the number of connections open at once: when all slots are taken it stops
// accepting until one closes, so the MTA waits (and applies its
// milter_default_action after its connect timeout) instead of the daemon
// running out of memory or file descriptors.
type guardListener struct {
	net.Listener
	log       *slog.Logger
	slots     chan struct{} // nil: no cap
	closed    chan struct{}
	closeOnce sync.Once
}

func newGuardListener(ln net.Listener, log *slog.Logger, slots chan struct{}) *guardListener {
	return &guardListener{Listener: ln, log: log, slots: slots, closed: make(chan struct{})}
}

// Close closes the listener and ends a wait for a free slot.
func (l *guardListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *guardListener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.slots != nil {
			<-l.slots
		}
		return nil, err
	}
	return &framingConn{Conn: c, log: l.log, slots: l.slots}, nil
}

// framingConn validates the milter framing (a 4-byte big-endian length, then
// that many bytes: a command byte and its data) before go-milter reads it.
//
// go-milter v0.10.2 indexes data[0] of every packet, so a zero length
// panics in the session goroutine and takes the whole daemon down; no
// option of the library prevents it. The check has to sit below the
// library, on the byte stream: this wrapper reads each length itself,
// refuses 0 and anything over MaxFrame by failing the read (the library
// then closes that one connection), and hands valid lengths on unchanged.
type framingConn struct {
	net.Conn
	log *slog.Logger

	slots     chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	hdr     [4]byte
	pending []byte // length bytes not yet handed to the reader
	left    uint32 // payload bytes of the current packet not yet read
	err     error
}

// Close closes the connection and frees its slot.
func (c *framingConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.slots != nil {
			<-c.slots
		}
	})
	return err
}

func (c *framingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.left == 0 {
		if _, err := io.ReadFull(c.Conn, c.hdr[:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(c.hdr[:])
		if n == 0 || n > MaxFrame {
			c.err = fmt.Errorf("%w: %d bytes from %s", ErrBadFrame, n, c.Conn.RemoteAddr())
			c.log.Warn("closing milter connection with an invalid packet", "length", n, "peer", c.Conn.RemoteAddr().String())
			return 0, c.err
		}
		c.left = n
		c.pending = c.hdr[:]
		k := copy(p, c.pending)
		c.pending = c.pending[k:]
		return k, nil
	}
	if uint32(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= uint32(n)
	return n, err
}
