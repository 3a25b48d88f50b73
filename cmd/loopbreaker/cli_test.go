package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

func runCLI(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	rc := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), rc
}

// listedFlags are the flags a help text lists ("  -name ...").
func listedFlags(help string) []string {
	var fs []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		fs = append(fs, m[1])
	}
	sort.Strings(fs)
	return fs
}

// TestCommandsHelpAndUsage: every command has its own flags only, -h
// prints its help on stdout with status 0, a bad flag, a missing or an
// extra operand is a usage error (status 2) with "loopbreaker COMMAND: "
// and the synopsis, and a runtime error is status 1 with the same prefix.
func TestCommandsHelpAndUsage(t *testing.T) {
	var sf serveFlags
	var serveFlagNames []string
	serveFlagSet(&sf, io.Discard).VisitAll(func(f *flag.Flag) { serveFlagNames = append(serveFlagNames, f.Name) })
	tests := []struct {
		name    string
		flags   []string
		missing []string // a call missing its operand
		extra   []string // a call with one operand too many
	}{
		{name: "serve", flags: serveFlagNames, extra: []string{"x"}},
		{name: "status", flags: []string{"admin", "json"}, extra: []string{"x"}},
		{name: "blocks", flags: []string{"admin", "json"}, extra: []string{"x"}},
		{name: "release", flags: []string{"admin", "json", "rule"}, missing: []string{}, extra: []string{"a", "b"}},
		{name: "events", flags: []string{"admin", "json", "n"}, extra: []string{"x"}},
		{name: "explain", flags: []string{"admin", "json"}, missing: []string{}, extra: []string{"a", "b"}},
		{name: "reload", flags: []string{"pidfile", "state"}, extra: []string{"x"}},
		{name: "check-policy", missing: []string{}, extra: []string{"a", "b"}},
		{name: "default-policy", extra: []string{"x"}},
		{name: "classify", flags: []string{"body-limit", "from", "json"}, missing: []string{}},
		{name: "replay", flags: []string{"html", "json", "local-domains", "mailbox", "policy", "q", "quarantine-mailbox", "set", "state"}, missing: []string{}},
		{name: "version", extra: []string{"x"}},
		{name: "help", extra: []string{"a", "b"}},
		{name: "man", missing: []string{}, extra: []string{"8", "5"}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, rc := runCLI(tt.name, "-h")
			if rc != 0 || errOut != "" || !strings.HasPrefix(out, "usage: loopbreaker "+tt.name) {
				t.Errorf("-h: exit %d, stdout %q, stderr %q", rc, out, errOut)
			}
			want := slices.Clone(tt.flags)
			sort.Strings(want)
			if got := listedFlags(out); !slices.Equal(got, want) {
				t.Errorf("-h lists flags %q, want %q", got, want)
			}
			if hout, _, hrc := runCLI("help", tt.name); hrc != 0 || hout != out {
				t.Errorf("help %s: exit %d, differs from -h", tt.name, hrc)
			}
			usageErr := func(args []string, want string) {
				t.Helper()
				out, errOut, rc := runCLI(append([]string{tt.name}, args...)...)
				prefix := "loopbreaker " + tt.name + ": "
				if rc != 2 || out != "" || !strings.HasPrefix(errOut, prefix) || !strings.Contains(errOut, want) ||
					!strings.Contains(errOut, "usage: loopbreaker "+tt.name) {
					t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2, %q", args, rc, out, errOut, prefix+want)
				}
			}
			usageErr([]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag")
			if tt.missing != nil {
				usageErr(tt.missing, "missing ")
			}
			if tt.extra != nil {
				usageErr(tt.extra, "unexpected argument")
			}
		})
	}
	for _, c := range commands {
		if !seen[c.name] {
			t.Errorf("command %s is not in the test", c.name)
		}
	}
	// Flags of one command are refused by another.
	if _, errOut, rc := runCLI("status", "-n", "5"); rc != 2 || !strings.Contains(errOut, "loopbreaker status: flag provided but not defined: -n") {
		t.Errorf("status -n 5: exit %d %q", rc, errOut)
	}
	if _, errOut, rc := runCLI("explain"); rc != 2 || !strings.Contains(errOut, "loopbreaker explain: missing KEY") {
		t.Errorf("explain: exit %d %q", rc, errOut)
	}
	// Runtime errors: status 1, the same prefix.
	dir := t.TempDir()
	for _, args := range [][]string{
		{"status", "-admin", filepath.Join(dir, "admin.sock")},
		{"reload", "-pidfile", filepath.Join(dir, "loopbreaker.pid")},
		{"check-policy", filepath.Join(dir, "none.toml")},
	} {
		out, errOut, rc := runCLI(args...)
		if rc != 1 || out != "" || errOut == "" || strings.Contains(errOut, "usage:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, rc, out, errOut)
		}
		if args[0] != "check-policy" && !strings.HasPrefix(errOut, "loopbreaker "+args[0]+": ") {
			t.Errorf("%q: stderr %q", args, errOut)
		}
	}
	// No command: the list on stderr, 2; -h and help: on stdout, 0.
	if out, errOut, rc := runCLI(); rc != 2 || out != "" || !strings.Contains(errOut, "commands:") {
		t.Errorf("no command: exit %d", rc)
	}
	if _, _, rc := runCLI("no-such-command"); rc != 2 {
		t.Errorf("unknown command: exit %d", rc)
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"--help"}} {
		out, errOut, rc := runCLI(args...)
		if rc != 0 || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q", args, rc, errOut)
		}
		for _, c := range commands {
			if listed := strings.Contains(out, "\n  "+c.name+" ") && strings.Contains(out, c.summary); listed == c.hidden {
				t.Errorf("%q: command %s listed %v", args, c.name, listed)
			}
		}
	}
}

// TestFlagPlaceholders: every flag's placeholder in the help is an
// intended one (a backquoted word in the usage names it: "-pidfile
// loopbreaker reload" came from a backquoted command in the text).
func TestFlagPlaceholders(t *testing.T) {
	ok := regexp.MustCompile(`^([A-Z][A-Z:|.=,]*)?$`)
	for _, c := range commands {
		fs, _ := c.flagSet()
		fs.VisitAll(func(f *flag.Flag) {
			name, _ := flag.UnquoteUsage(f)
			if !ok.MatchString(name) {
				t.Errorf("%s -%s: placeholder %q", c.name, f.Name, name)
			}
		})
	}
}

// TestVersion: version and -version print the module, its version and the
// commit; a binary built in a git checkout names the checkout's commit.
func TestVersion(t *testing.T) {
	out, _, rc := runCLI("version")
	if rc != 0 || !strings.Contains(out, "module  github.com/loopbreaker/loopbreaker") || !strings.Contains(out, "commit  ") || !strings.HasPrefix(out, "loopbreaker ") {
		t.Errorf("version: exit %d\n%s", rc, out)
	}
	if out2, _, _ := runCLI("-version"); out2 != out {
		t.Errorf("-version differs:\n%s", out2)
	}
	if testing.Short() {
		return
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	// A clone with the checkout's files over it (go records no VCS data in
	// a git worktree, where .git is a file).
	clone := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command(git, "clone", "-q", "--no-hardlinks", "../..", clone).CombinedOutput(); err != nil {
		t.Skipf("git clone: %v %s", err, out)
	}
	files, err := exec.Command(git, "-C", "../..", "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			continue // deleted in the checkout
		}
		os.MkdirAll(filepath.Dir(filepath.Join(clone, f)), 0o755)
		if err := os.WriteFile(filepath.Join(clone, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	status, err := exec.Command(git, "-C", clone, "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	modified := len(bytes.TrimSpace(status)) > 0
	head, err := exec.Command(git, "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "loopbreaker")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/loopbreaker")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	vout, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "commit  " + strings.TrimSpace(string(head))
	if modified {
		want += " (modified)"
	}
	if !strings.Contains(string(vout), want+"\n") {
		t.Errorf("version of a build at %s:\n%s", head, vout)
	}
}
