//go:build !linux

package milter

import "syscall"

// rawSocket: elsewhere the socket is read and written through net.Conn.
type rawSocket struct{}

func newRawSocket(syscall.Conn, bool) *rawSocket { return nil }

func (*rawSocket) Read([]byte) (int, error)  { panic("milter: no raw socket calls on this platform") }
func (*rawSocket) Write([]byte) (int, error) { panic("milter: no raw socket calls on this platform") }
