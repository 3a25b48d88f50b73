package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
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
	return newFramingConn(c, l.log, l.slots), nil
}

// readBuffer is the framing connection's read buffer: Postfix writes the
// packets that need no reply (macros, header fields, body chunks) back to
// back, and one read(2) takes them all instead of two per packet.
const readBuffer = 16 << 10

// framingConn validates the milter framing (a 4-byte big-endian length, then
// that many bytes: a command byte and its data) before go-milter reads it.
//
// go-milter v0.10.2 indexes data[0] of every packet, so a zero length
// panics in the session goroutine and takes the whole daemon down; no
// option of the library prevents it. The check has to sit below the
// library, on the byte stream: this wrapper reads each length itself,
// refuses 0 and anything over MaxFrame by failing the read (the library
// then closes that one connection), and hands valid lengths on unchanged.
//
// It also saves system calls and round trips, which are most of the
// milter's cost per message:
//   - reads go through a 16 KiB buffer;
//   - on TCP, what the MTA sent is acknowledged at once (TCP_QUICKACK,
//     see socketReader), not after the kernel's delayed ACK. Postfix does
//     not set TCP_NODELAY on its milter sockets, and some of its packets
//     get no reply (the events loopbreaker skips: SMFIP_NODATA and the
//     SMFIP_NR_* steps), so without an ACK Nagle's algorithm holds the
//     MTA's next packet for the 40 ms of a delayed ACK;
//   - go-milter writes a reply as two writes, the 5-byte packet header and
//     then the payload; the header is held until the payload comes and both
//     go out in one write(2), one TCP segment.
type framingConn struct {
	net.Conn
	log *slog.Logger

	slots     chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	br      *bufio.Reader
	hdr     [4]byte
	pending []byte // length bytes not yet handed to the reader
	left    uint32 // payload bytes of the current packet not yet read
	err     error

	dmu            sync.Mutex
	rdl, rdlSocket time.Time  // read deadline: as set, as given to the socket
	wdl, wdlSocket time.Time  // write deadline: as set, as given to the socket
	raw            *rawSocket // TCP and unix sockets on Linux: raw system calls (rawsocket_linux.go)

	wmu   sync.Mutex
	whdr  [5]byte
	held  bool   // whdr waits for its payload
	wleft uint32 // payload bytes of the current outgoing packet not yet written
	wlost bool   // the writes no longer follow the framing: pass them through
	wbuf  []byte // a reply's header and payload, sent in one write
}

func newFramingConn(c net.Conn, log *slog.Logger, slots chan struct{}) *framingConn {
	fc := &framingConn{Conn: c, log: log, slots: slots}
	tc, isTCP := c.(*net.TCPConn)
	if isTCP {
		_ = tc.SetNoDelay(true) // Go's default; our replies never wait
	}
	if sc, ok := c.(syscall.Conn); ok {
		fc.raw = newRawSocket(sc, isTCP)
	}
	fc.br = bufio.NewReaderSize(socketReader{fc}, readBuffer)
	return fc
}

// SetReadDeadline records the deadline for the next read from the socket.
// go-milter sets a deadline before every packet and clears it after; most
// packets come out of the read buffer, so it is applied only when a read
// has to wait for the socket.
func (c *framingConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	c.rdl = t
	c.dmu.Unlock()
	return nil
}

// SetWriteDeadline records the deadline for the next write to the socket
// (one per reply, see Write).
func (c *framingConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.wdl = t
	c.dmu.Unlock()
	return nil
}

// SetDeadline records both deadlines.
func (c *framingConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	c.rdl, c.wdl = t, t
	c.dmu.Unlock()
	return nil
}

// applyDeadline gives the socket the deadline last set, when it changed.
func (c *framingConn) applyDeadline(write bool) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if write {
		if c.wdl.Equal(c.wdlSocket) {
			return nil
		}
		c.wdlSocket = c.wdl
		return c.Conn.SetWriteDeadline(c.wdl)
	}
	if c.rdl.Equal(c.rdlSocket) {
		return nil
	}
	c.rdlSocket = c.rdl
	return c.Conn.SetReadDeadline(c.rdl)
}

// socketReader fills the read buffer from the socket. On TCP it then sets
// TCP_QUICKACK: the kernel acknowledges at once what it read instead of
// holding the ACK back for up to 40 ms, and the MTA's next packet, which
// Nagle's algorithm holds until that ACK when the packet before it got no
// reply, goes out. TCP_QUICKACK is not sticky (Linux goes back to delayed
// ACKs by itself once the milter replies quickly), so it is set after every
// read. Setting it only when go-milter comes back for more without having
// replied saves a few ACK segments but measured no better.
type socketReader struct{ c *framingConn }

func (r socketReader) Read(p []byte) (int, error) {
	c := r.c
	if err := c.applyDeadline(false); err != nil {
		return 0, err
	}
	if c.raw == nil {
		return c.Conn.Read(p)
	}
	n, err := c.raw.Read(p)
	return n, c.opError("read", err)
}

// writeSocket writes b to the socket, through raw system calls where the
// platform has them.
func (c *framingConn) writeSocket(b []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(b)
	}
	n, err := c.raw.Write(b)
	return n, c.opError("write", err)
}

// opError wraps err as net.Conn's Read and Write do (io.EOF stays as it
// is), so that go-milter and the logs see the same errors either way.
func (c *framingConn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &net.OpError{Op: op, Net: c.Conn.LocalAddr().Network(), Source: c.Conn.LocalAddr(), Addr: c.Conn.RemoteAddr(), Err: err}
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
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(c.hdr[:])
		var problem string
		if n == 0 || n > MaxFrame {
			problem = fmt.Sprintf("length %d bytes", n)
		} else if bad, err := c.checkStringPacket(n); err != nil { // packets go-milter would panic on (wirecheck.go)
			return 0, err
		} else {
			problem = bad
		}
		if problem != "" {
			c.err = fmt.Errorf("%w: %s from %s", ErrBadFrame, problem, c.Conn.RemoteAddr())
			c.log.Warn("closing milter connection with an invalid packet", "problem", problem, "peer", c.Conn.RemoteAddr().String())
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
	n, err := c.br.Read(p)
	c.left -= uint32(n)
	return n, err
}

// maxKeptWriteBuffer is the largest reply buffer a connection keeps for
// the next reply; a larger one (a long header added) is let go.
const maxKeptWriteBuffer = 4096

// Write sends what go-milter writes, holding a lone packet header (a 4-byte
// length above 1 and the command byte, as wire.WritePacket writes it) until
// its payload comes, and then sending both with one write(2). Writes that
// do not follow that pattern pass through unchanged from then on.
func (c *framingConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.wlost && !c.held && c.wleft == 0 && len(p) == len(c.whdr) {
		if n := binary.BigEndian.Uint32(p); n > 1 { // a lone header: wait for its payload
			copy(c.whdr[:], p)
			c.held = true
			c.wleft = n - 1
			return len(p), nil
		}
	}
	if err := c.applyDeadline(true); err != nil {
		return 0, err
	}
	switch {
	case c.wlost:
	case c.held:
		c.held = false
		c.wbuf = append(append(c.wbuf[:0], c.whdr[:]...), p...)
		n, err := c.writeSocket(c.wbuf)
		n = max(n-len(c.whdr), 0)
		c.wleft -= uint32(min(uint64(len(p)), uint64(c.wleft)))
		if cap(c.wbuf) > maxKeptWriteBuffer {
			c.wbuf = nil
		}
		return n, err
	case c.wleft > 0: // the rest of a packet's payload
		if uint64(len(p)) > uint64(c.wleft) {
			c.wlost = true
		} else {
			c.wleft -= uint32(len(p))
		}
	case len(p) < 4 || uint64(binary.BigEndian.Uint32(p)) != uint64(len(p)-4):
		// At a packet boundary, and not one whole packet: stop following
		// the framing.
		c.wlost = true
	}
	return c.writeSocket(p)
}
