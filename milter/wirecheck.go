package milter

import "bytes"

// maxStringPacket bounds the CONNECT, MAIL and RCPT packets the guard
// checks before go-milter sees them (they must fit its read buffer).
// Postfix and Sendmail send SMTP command lines of at most 2 KiB or so.
const maxStringPacket = readBuffer

// stringPacketProblem says why go-milter v0.10.2 would panic on a packet,
// or "" when it will not. Its session code slices past the end of a
// CONNECT ('C'), MAIL ('M') or RCPT ('R') packet whose first string lacks
// its NUL terminator (and of a CONNECT with nothing after the host name),
// in the session goroutine, where no recover can catch it: one such packet
// would take the whole daemon down. pkt is the packet without its length:
// the command byte, then the data.
func stringPacketProblem(pkt []byte) string {
	if len(pkt) < 2 {
		return "" // go-milter checks for empty data itself
	}
	data := pkt[1:]
	switch pkt[0] {
	case 'M', 'R':
		if bytes.IndexByte(data, 0) < 0 {
			return "address without NUL terminator"
		}
	case 'C':
		i := bytes.IndexByte(data, 0)
		if i < 0 || i+1 >= len(data) {
			return "connect packet without host name terminator or protocol family"
		}
	}
	return ""
}

// needsStringCheck reports whether a packet with this command byte is
// checked by stringPacketProblem.
func needsStringCheck(cmd byte) bool { return cmd == 'C' || cmd == 'M' || cmd == 'R' }

// checkStringPacket peeks at the next packet's payload of n bytes (after its
// length) and returns a problem that go-milter would panic on, or "".
func (c *framingConn) checkStringPacket(n uint32) (string, error) {
	cmd, err := c.br.Peek(1)
	if err != nil {
		return "", err
	}
	if !needsStringCheck(cmd[0]) {
		return "", nil
	}
	if n > maxStringPacket {
		return "oversized connect, mail or rcpt packet", nil
	}
	pkt, err := c.br.Peek(int(n))
	if err != nil {
		return "", err
	}
	return stringPacketProblem(pkt), nil
}
