package policy

import (
	"strings"
	"testing"
)

func TestMode(t *testing.T) {
	if p := Default(); p.Mode != ModeEnforce || p.CurrentMode() != ModeEnforce {
		t.Fatalf("built-in mode %q", p.Mode)
	}
	p, err := Parse("p.toml", []byte("mode = \"Monitor\"\n"))
	if err != nil || p.Mode != ModeMonitor {
		t.Fatalf("mode = \"Monitor\": %v %v", p, err)
	}
	if !strings.Contains(strings.Join(p.Notes(), "\n"), "monitor mode") {
		t.Errorf("notes of a monitor policy: %q", p.Notes())
	}
	if _, err := Parse("p.toml", []byte("\nmode = \"watch\"\n")); err == nil || !strings.Contains(err.Error(), "p.toml:2:1: mode: unknown mode \"watch\" (want enforce or monitor)") {
		t.Fatalf("bad mode: %v", err)
	}
	// The command line's mode overrides the file's, and says so.
	p.Apply(Overrides{Mode: ModeEnforce})
	if p.Mode != ModeEnforce || p.FileMode != ModeMonitor {
		t.Fatalf("override: mode %q file mode %q", p.Mode, p.FileMode)
	}
	if n := strings.Join(p.Notes(), "\n"); !strings.Contains(n, "mode enforce is set on the command line") || strings.Contains(n, "monitor mode:") {
		t.Errorf("notes: %q", n)
	}
	q := Default()
	q.Apply(Overrides{Mode: ModeEnforce})
	if q.FileMode != "" {
		t.Errorf("the same mode is no override: %q", q.FileMode)
	}
}
