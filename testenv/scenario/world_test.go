package scenario

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSpreadMap asks Postfix's own postmap what the outside's
// sender_dependent_relayhost_maps answers: every answer is the whole hub
// list, rotated, and the answers start at more than one hub.
func TestSpreadMap(t *testing.T) {
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/postmap"); err != nil {
			t.Skip("skipping: needs Postfix's postmap (make deps)")
		}
		postmap = "/usr/sbin/postmap"
	}
	hosts := []string{"[127.0.0.11]:2525", "[127.0.0.12]:2526", "[127.0.0.13]:2527", "[127.0.0.14]:2528"}
	table := spreadMap(hosts)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	starts := map[string]bool{}
	for _, sender := range []string{"<>", "owner-staff@lists.corp.example", "carol@outside.example"} {
		for range 20 {
			out, err := exec.Command(postmap, "-c", dir, "-q", sender, table).CombinedOutput()
			if err != nil {
				t.Fatalf("postmap -q %s %q: %v\n%s", sender, table, err, out)
			}
			got := strings.Fields(string(out))
			i := slices.Index(hosts, got[0])
			if i < 0 {
				t.Fatalf("answer %q starts at no hub", out)
			}
			if want := append(slices.Clone(hosts[i:]), hosts[:i]...); !slices.Equal(got, want) {
				t.Fatalf("answer %q, want the rotation %q", got, want)
			}
			starts[got[0]] = true
		}
	}
	if len(starts) < 2 {
		t.Errorf("60 answers all start at %v: nothing is spread", starts)
	}
}

// TestDaemonHasFlag: -name is passed only to a daemon whose serve -h lists
// it, so the fleet runs with daemons from before and after the flag.
func TestDaemonHasFlag(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, usage string) string {
		p := filepath.Join(dir, name)
		script := "#!/bin/sh\ncat >&2 <<'END'\n" + usage + "END\nexit 2\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := fake("before", "Usage of serve:\n  -metrics HOST:PORT\n    \tserve Prometheus metrics\n  -mode MODE\n    \tenforce or monitor\n")
	after := fake("after", "Usage of serve:\n  -mode MODE\n    \tenforce or monitor\n  -name NAME\n    \tthis MTA's name in the fleet's audit trail\n")
	if daemonHasFlag(t.Context(), before, "name") {
		t.Error("-name found in a usage without it")
	}
	if !daemonHasFlag(t.Context(), after, "name") {
		t.Error("-name not found in a usage with it")
	}
	if daemonHasFlag(t.Context(), filepath.Join(dir, "missing"), "name") {
		t.Error("-name found for a binary that does not exist")
	}
}
