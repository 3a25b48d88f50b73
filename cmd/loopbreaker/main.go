// Command loopbreaker is a milter that stops mail loops and NDR storms:
// forwarding-rule storms, distribution-list NDR loops and auto-responder
// ping-pong, inline, before they bury a mailbox.
//
//	loopbreaker serve [flags]
//	loopbreaker status | blocks | events | explain KEY | release [KEY] [flags]
//	loopbreaker reload | check-policy FILE | default-policy | classify FILE|DIR... | version
//
// "loopbreaker help" lists the commands, "loopbreaker COMMAND -h" describes
// one; cli.go holds the commands, from which the help and the man pages
// (loopbreaker man 8, loopbreaker man 5) are written.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
