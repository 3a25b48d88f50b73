// Command lbtestenv is the Go side of loopbreaker's container test
// environment (testenv/docker/compose.yaml).
//
//	lbtestenv mailstore [flags]            the users' mailboxes and their agents
//	lbtestenv scenario forward-storm [-via hub1|hub2|sendmail] [-user ADDR] [-json]
//	lbtestenv syslog [-socket /dev/log]    print syslog datagrams (Sendmail's log)
//	lbtestenv master-cf [-smtp smtp]       print Postfix's master.cf
//
// mailstore receives the mail of corp.example users (SMTP on :25) and of
// outside.example users (:2525), runs the mailbox agents (alice's
// forwarding rule) and answers a small HTTP API on 127.0.0.1:8025.
// scenario, run in the mailstore container (docker compose exec mailstore
// lbtestenv scenario forward-storm), starts a storm through one MTA,
// watches it and prints a timeline per second, when the block came and
// where every forwarded message ended. It exits 0 when the storm was
// stopped, 3 when it ran until the loop budget stopped it. master-cf prints
// the master.cf that testenv/postfix writes for its instances, for the
// Postfix containers' entrypoint.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "mailstore":
		err = mailstoreCmd(os.Args[2:])
	case "master-cf":
		err = masterCFCmd(os.Args[2:])
	case "syslog":
		err = syslogCmd(os.Args[2:])
	case "scenario":
		var code int
		code, err = scenarioCmd(os.Args[2:])
		if err == nil {
			os.Exit(code)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbtestenv:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lbtestenv mailstore [flags] | lbtestenv scenario forward-storm [-via MTA] [-user ADDR] [-json] | lbtestenv syslog [-socket PATH] | lbtestenv master-cf [-smtp SERVICE]")
	os.Exit(2)
}
