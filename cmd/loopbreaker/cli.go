package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
)

// command is one of loopbreaker's commands. Its help (-h), the command
// list (loopbreaker help) and the man page (loopbreaker man 8) are all
// written from it, so they cannot drift apart.
type command struct {
	name string
	// args is the synopsis of the operands, e.g. "KEY" or "FILE|DIR...".
	args             string
	minArgs, maxArgs int // maxArgs < 0: any number
	// summary is one line: what the command does.
	summary string
	// doc is more about it, in paragraphs separated by blank lines.
	doc string
	// hidden commands are left out of the command list and the man page.
	hidden bool
	// setup defines the command's flags on fs and returns what runs the
	// command once they are parsed.
	setup func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its operands. A usageError makes the exit
// status 2, an exitStatus is that status (the command has said why), any
// other error is printed as "loopbreaker COMMAND: error", status 1.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

type usageError string

func (e usageError) Error() string { return string(e) }

type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// commands in the order of the command list.
var commands []*command

func init() {
	commands = []*command{
		serveCommand,
		statusCommand, blocksCommand, releaseCommand, eventsCommand, explainCommand,
		reloadCommand, checkPolicyCommand, defaultPolicyCommand, classifyCommand, replayCommand,
		versionCommand, helpCommand, manCommand,
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeMainUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		writeMainUsage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "loopbreaker: unknown command %q\nRun 'loopbreaker help' for the list of commands.\n", name)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// flagSet is the command's own flag set, defined by its setup.
func (c *command) flagSet() (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs, c.setup(fs)
}

func (c *command) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, fn := c.flagSet()
	operands, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.writeHelp(stdout, fs)
		return 0
	}
	if err == nil {
		switch {
		case len(operands) < c.minArgs:
			missing := strings.Fields(c.args)
			err = usageError("missing " + strings.Join(missing[min(len(operands), len(missing)-1):], " "))
		case c.maxArgs >= 0 && len(operands) > c.maxArgs:
			err = usageError(fmt.Sprintf("unexpected argument %q", operands[c.maxArgs]))
		default:
			err = fn(ctx, operands, stdout, stderr)
		}
	}
	var ue usageError
	var es exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &es):
		return int(es)
	case errors.As(err, &ue) || isFlagError(err):
		fmt.Fprintf(stderr, "loopbreaker %s: %v\nusage: %s\nRun 'loopbreaker %s -h' for help.\n", c.name, err, c.synopsis(), c.name)
		return 2
	}
	fmt.Fprintf(stderr, "loopbreaker %s: %v\n", c.name, err)
	return 1
}

// flagError marks the flag package's parse errors (usage errors).
type flagError struct{ error }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// parseInterspersed parses flags that may also come after the operands
// ("release alice@x -rule r"); "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError{err}
		}
		consumed := len(rest) - fs.NArg()
		if consumed > 0 && rest[consumed-1] == "--" {
			return append(operands, fs.Args()...), nil
		}
		if fs.NArg() == 0 {
			return operands, nil
		}
		operands = append(operands, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// hasFlags says whether fs defines any flag.
func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// synopsis is "loopbreaker NAME [flags] ARGS".
func (c *command) synopsis() string {
	s := "loopbreaker " + c.name
	if fs, _ := c.flagSet(); hasFlags(fs) {
		s += " [flags]"
	}
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

func (c *command) writeHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.synopsis(), wrap(upperFirst(c.summary)+".", 76))
	for _, para := range paragraphs(c.doc) {
		fmt.Fprintf(w, "\n%s\n", wrap(para, 76))
	}
	if hasFlags(fs) {
		fmt.Fprintf(w, "\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// paragraphs splits text at blank lines.
func paragraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// wrap fills text into lines of at most width columns.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func writeMainUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: loopbreaker COMMAND [flags] [ARGS]\n\nloopbreaker stops mail loops and NDR storms: a milter for Postfix and Sendmail.\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n\"loopbreaker COMMAND -h\" or \"loopbreaker help COMMAND\" describes a command and its flags.\n")
}

// noFlags is the setup of a command without flags.
func noFlags(fn runFunc) func(*flag.FlagSet) runFunc {
	return func(*flag.FlagSet) runFunc { return fn }
}

var helpCommand = &command{
	name: "help", args: "[COMMAND]", maxArgs: 1,
	summary: "list the commands, or describe one",
	setup: noFlags(func(_ context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) == 0 {
			writeMainUsage(stdout)
			return nil
		}
		c := lookup(args[0])
		if c == nil {
			return usageError(fmt.Sprintf("unknown command %q", args[0]))
		}
		fs, _ := c.flagSet()
		c.writeHelp(stdout, fs)
		return nil
	}),
}

// version is set at build time with -ldflags "-X main.version=..."; else
// the module version of the build (go install ...@v1.2.3), else "(devel)".
var version = ""

// buildVersion is what the binary knows of its origin: the version, the
// VCS commit and whether the tree had uncommitted changes.
type buildVersion struct {
	Module, Version, Commit, CommitTime, Go string
	Modified                                bool
}

func readBuildVersion() buildVersion {
	v := buildVersion{Module: "github.com/loopbreaker/loopbreaker", Version: version, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path != "" {
			v.Module = bi.Main.Path
		}
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

// String is the one-line form, as loopbreaker status shows it:
// "v1.2.3", "(devel) 887df52e0b1c+modified".
func (v buildVersion) String() string {
	s := v.Version
	if v.Commit != "" {
		s += " " + v.Commit[:min(12, len(v.Commit))]
		if v.Modified {
			s += "+modified"
		}
	}
	return s
}

var versionCommand = &command{
	name:    "version",
	summary: "print the version, the VCS commit and the Go version of this binary",
	doc:     `"loopbreaker -version" does the same. The commit is the one the binary was built from (go build in a checkout records it); "modified" says the checkout had uncommitted changes.`,
	setup: noFlags(func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		v := readBuildVersion()
		fmt.Fprintf(stdout, "loopbreaker %s\nmodule  %s\n", v.Version, v.Module)
		commit := v.Commit
		if commit == "" {
			commit = "unknown (built outside a VCS checkout)"
		}
		if v.Modified {
			commit += " (modified)"
		}
		fmt.Fprintf(stdout, "commit  %s\n", commit)
		if v.CommitTime != "" {
			fmt.Fprintf(stdout, "time    %s\n", v.CommitTime)
		}
		fmt.Fprintf(stdout, "go      %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
		return nil
	}),
}

// envDoc are the environment variables, for the man page.
var envDoc = [][2]string{
	{envState, "the state file of serve, when -state is not given; for the admin commands and reload, the state file of the daemon to talk to (its admin socket and pid file are where that daemon puts them)"},
	{envPolicy, "the policy file of serve, when -policy is not given"},
	{admin.EnvAdmin, "the admin socket, for serve and the admin commands, when -admin is not given"},
	{"JOURNAL_STREAM", "set by systemd: serve then leaves the time out of its log lines (journald stamps them)"},
}
