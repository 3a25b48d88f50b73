package main

import (
	"context"
	"flag"
	"io"
)

var manCommand = &command{
	name: "man", args: "8|5", minArgs: 1, maxArgs: 1, hidden: true,
	summary: "write the man page loopbreaker(8) or loopbreaker.toml(5) in roff",
	setup: func(fs *flag.FlagSet) runFunc {
		return func(_ context.Context, args []string, stdout, _ io.Writer) error {
			switch args[0] {
			case "8":
				return writeMan8(stdout)
			case "5":
				return writeMan5(stdout)
			}
			return usageError("want 8 (the commands) or 5 (the policy file), not " + args[0])
		}
	},
}

func writeMan8(w io.Writer) error { return nil }
func writeMan5(w io.Writer) error { return nil }
