package main

import (
	"flag"
	"io"
	"os"

	"github.com/loopbreaker/loopbreaker/testenv/postfix"
)

// masterCFCmd prints the master.cf of testenv/postfix (postfix.MasterCF,
// the one source of it) for the containers' Postfix, whose entrypoint
// writes it to /etc/postfix/master.cf. Arguments after the flags are extra
// master.cf lines.
func masterCFCmd(args []string) error {
	fs := flag.NewFlagSet("master-cf", flag.ExitOnError)
	smtp := fs.String("smtp", "smtp", `where smtpd listens: a service name ("smtp": port 25 of every address) or host:port`)
	_ = fs.Parse(args)
	_, err := io.WriteString(os.Stdout, postfix.MasterCF(*smtp, fs.Args()...))
	return err
}
