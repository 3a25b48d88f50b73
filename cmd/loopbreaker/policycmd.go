package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

var defaultPolicyCommand = &command{
	name:    "default-policy",
	summary: "print the built-in policy, with its comments",
	doc:     "The output is a policy file: loopbreaker default-policy > /etc/loopbreaker/policy.toml starts one to edit (make install does that when there is none). loopbreaker.toml(5) describes its settings.",
	setup: noFlags(func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		_, err := fmt.Fprint(stdout, policy.DefaultText())
		return err
	}),
}

var checkPolicyCommand = &command{
	name: "check-policy", args: "FILE", minArgs: 1, maxArgs: 1,
	summary: "check a policy file; errors as file:line:col: message",
	doc:     "Every error is printed on standard error as FILE:LINE:COL: message, and the exit status is 1. Warnings (a setting that is probably not meant) go to standard output and do not fail the check; a rule that would reject or tempfail outbound reports of local senders (a loop driven by a local mailbox rule runs on, one round per refusal) is warned about on standard error as FILE:LINE:COL: warning: message, and does not fail the check either.",
	setup: noFlags(func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		p, err := policy.Load(args[0])
		if err != nil {
			var es policy.Errors
			if errors.As(err, &es) {
				for _, e := range es {
					fmt.Fprintln(stderr, e)
				}
			} else {
				fmt.Fprintln(stderr, err)
			}
			return exitStatus(1)
		}
		// A rule that refuses what local mailboxes send out: at its place,
		// as FILE:LINE:COL: warning: ..., on standard error.
		for _, c := range p.Cautions {
			fmt.Fprintf(stderr, "%s:%d:%d: warning: %s\n", c.File, c.Line, c.Col, c.Msg)
		}
		for _, n := range p.OtherNotes() {
			fmt.Fprintf(stdout, "%s: warning: %s\n", args[0], n)
		}
		fmt.Fprintf(stdout, "%s: ok, %d rules\n", args[0], len(p.Rules))
		return nil
	}),
}
