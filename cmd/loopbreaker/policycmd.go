package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

func runDefaultPolicy(stdout io.Writer) int {
	fmt.Fprint(stdout, policy.DefaultText())
	return 0
}

// runCheckPolicy prints every error as file:line:col: message and exits 1
// when there is one; warnings go to stdout and do not fail the check.
func runCheckPolicy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: loopbreaker check-policy FILE") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	p, err := policy.Load(fs.Arg(0))
	if err != nil {
		var es policy.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	for _, n := range p.Notes() {
		fmt.Fprintf(stdout, "%s: warning: %s\n", fs.Arg(0), n)
	}
	fmt.Fprintf(stdout, "%s: ok, %d rules\n", fs.Arg(0), len(p.Rules))
	return 0
}
