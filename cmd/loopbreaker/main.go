// Command loopbreaker is a milter that stops mail loops and NDR storms:
// forwarding-rule storms, distribution-list NDR loops and auto-responder
// ping-pong, inline, before they bury a mailbox.
//
//	loopbreaker serve [-listen SPEC] [-state FILE] [-policy FILE] [-local-domains D,D] [-quarantine-mailbox ADDR]
//	loopbreaker reload [-pidfile FILE | -state FILE]
//	loopbreaker status | blocks | release KEY [-rule NAME] | events [-n N] | explain KEY  [-admin SOCKET] [-json]
//	loopbreaker check-policy FILE
//	loopbreaker default-policy
//	loopbreaker classify [-json] [-from SENDER] FILE|DIR...
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: loopbreaker COMMAND [flags]

commands:
  serve           run the milter daemon
  status          the running daemon's state
  blocks          blocks in force
  release KEY     lift the blocks on KEY (-rule NAME narrows it; -rule alone lifts a rule's blocks)
  events          recent acted-on decisions (the audit trail)
  explain KEY     every rule's count and block for KEY
  reload          make the running daemon reload its policy file (SIGHUP)
  check-policy    check a policy file; errors as file:line:col
  default-policy  print the built-in policy, with its comments
  classify        classify message files and print the evidence

"loopbreaker COMMAND -h" shows a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "check-policy":
		return runCheckPolicy(rest, stdout, stderr)
	case "reload":
		return runReload(rest, stdout, stderr)
	case "status", "blocks", "release", "events", "explain":
		return runAdmin(ctx, cmd, rest, stdout, stderr)
	case "default-policy":
		return runDefaultPolicy(stdout)
	case "classify":
		return runClassify(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "loopbreaker: unknown command %q\n%s", cmd, usage)
	return 2
}
