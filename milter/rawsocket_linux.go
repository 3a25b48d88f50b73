package milter

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// rawSocket reads and writes a milter connection's socket with raw system
// calls.
//
// Why by hand: Go's net package makes every read(2) and write(2) through
// syscall.Syscall, which tells the scheduler it enters a system call. When
// the process was idle (one SMTP session at a time: the daemon waits for
// Postfix between packets), that wakes the runtime's sysmon thread, which
// then polls every 20 µs for a while before it sleeps again. perf of the
// daemon at one session (docs/benchmarks.md) put a quarter of its CPU in
// sysmon's wake-ups: the 0.3 ms per message that a C milter does not pay.
// The socket is non-blocking (Go's netpoller waits for it through
// syscall.RawConn, deadlines included), so a read or a write returns at
// once and needs none of the scheduler's bookkeeping: RawSyscall is the
// documented call for that.
//
// The callbacks RawConn calls are bound once per connection and keep their
// state in the struct, so a read or a write allocates nothing. Reads and
// writes have state of their own: one read and one write may run at once
// (framingConn serializes each side).
type rawSocket struct {
	rc       syscall.RawConn
	quickAck bool // set TCP_QUICKACK after a read that got data (see socketReader)

	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// newRawSocket returns the raw calls for c's socket, or nil where c has
// none (a net.Conn that is not a socket).
func newRawSocket(c syscall.Conn, quickAck bool) *rawSocket {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	s := &rawSocket{rc: rc, quickAck: quickAck}
	s.readFn, s.writeFn = s.readOnce, s.writeAll
	return s
}

// Read reads into p once the socket is readable, as net.Conn.Read does
// (the error unwrapped: framingConn.opError wraps it).
func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerrno = p, 0, 0
	err := s.rc.Read(s.readFn)
	n, errno := s.rn, s.rerrno
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is RawConn.Read's callback: false asks to wait until readable.
func (s *rawSocket) readOnce(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.rn = int(r)
		default:
			s.rerrno = e
		}
		break
	}
	if s.rn > 0 && s.quickAck {
		one := int32(1)
		_, _, _ = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_QUICKACK,
			uintptr(unsafe.Pointer(&one)), unsafe.Sizeof(one), 0)
	}
	return true
}

// Write writes all of b once the socket is writable, as net.Conn.Write
// does (the error unwrapped).
func (s *rawSocket) Write(b []byte) (int, error) {
	s.wbuf, s.wn, s.werrno = b, 0, 0
	err := s.rc.Write(s.writeFn)
	n, errno := s.wn, s.werrno
	s.wbuf = nil
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	return n, err
}

// writeAll is RawConn.Write's callback: false asks to wait until writable.
func (s *rawSocket) writeAll(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.wbuf[s.wn])), uintptr(len(s.wbuf)-s.wn))
		switch e {
		case 0:
			s.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werrno = e
			return true
		}
	}
	return true
}
