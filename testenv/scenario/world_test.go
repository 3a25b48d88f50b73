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
