package milter

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// rawSockets says that this platform reads and writes the milter socket
// with raw system calls (rawRead, rawWrite).
//
// Why by hand: Go's net package makes every read(2) and write(2) through
// syscall.Syscall, which tells the scheduler it enters a system call. When
// the process was idle (one SMTP session at a time: the daemon waits for
// Postfix between packets), that wakes the runtime's sysmon thread, which
// then polls every 20 µs for a while before it sleeps again. perf of the
// daemon at one session (docs/benchmarks.md) put a quarter of its CPU in
// sysmon's wake-ups: the 0.3 ms per message that a C milter does not pay.
// The socket is non-blocking (Go's netpoller waits for it through
// syscall.RawConn), so a read or a write returns at once and needs none of
// the scheduler's bookkeeping: RawSyscall is the documented call for that.
const rawSockets = true

// rawRead reads from the socket once it is readable (as net.Conn.Read,
// deadlines included) and, with quickAck, sets TCP_QUICKACK after a read
// that got data (see socketReader).
func rawRead(rc syscall.RawConn, p []byte, quickAck bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if e == syscall.EINTR {
				continue
			}
			if e == syscall.EAGAIN {
				return false // wait until readable
			}
			n, errno = int(r), e
			if e != 0 {
				n = 0
			}
			break
		}
		if n > 0 && quickAck {
			one := int32(1)
			_, _, _ = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_QUICKACK,
				uintptr(unsafe.Pointer(&one)), unsafe.Sizeof(one), 0)
		}
		return true
	})
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

// rawWrite writes all of b once the socket is writable (as net.Conn.Write,
// deadlines included).
func rawWrite(rc syscall.RawConn, b []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for written < len(b) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[written])), uintptr(len(b)-written))
			switch e {
			case 0:
				written += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	return written, err
}
