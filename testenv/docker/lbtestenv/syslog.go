package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
)

// syslogCmd receives syslog datagrams on a unix socket (/dev/log) and
// prints them, for daemons such as Sendmail that log only to syslog.
func syslogCmd(args []string) error {
	fs := flag.NewFlagSet("syslog", flag.ExitOnError)
	socket := fs.String("socket", "/dev/log", "the socket to listen on")
	fs.Parse(args)
	_ = os.Remove(*socket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: *socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = os.Chmod(*socket, 0o666)
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		line := string(buf[:n])
		// Drop the "<PRI>" prefix.
		if strings.HasPrefix(line, "<") {
			if i := strings.IndexByte(line, '>'); i > 0 {
				line = line[i+1:]
			}
		}
		fmt.Println(strings.TrimRight(line, "\n\x00"))
	}
}
