//go:build !linux

package milter

import (
	"errors"
	"syscall"
)

// rawSockets: elsewhere the socket is read and written through net.Conn.
const rawSockets = false

var errNoRawSockets = errors.New("milter: raw socket calls are implemented on Linux only")

func rawRead(syscall.RawConn, []byte, bool) (int, error) { return 0, errNoRawSockets }

func rawWrite(syscall.RawConn, []byte) (int, error) { return 0, errNoRawSockets }
