package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstallWithoutGoOnPath runs `make install` the way `sudo make
// install` does: with a PATH that has no Go toolchain on it (sudo's
// secure_path drops /usr/local/go/bin). With a binary already built it must
// install without building; without one it must find the toolchain in
// /usr/local/go/bin.
func TestMakeInstallWithoutGoOnPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon with make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make:", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	securePath := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, dir := range filepath.SplitList(securePath) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			t.Skipf("%s/go is on sudo's secure_path here; the case cannot be made", dir)
		}
	}
	install := func(t *testing.T, bin string, extra ...string) (string, string) {
		t.Helper()
		dest := t.TempDir()
		args := append([]string{"-C", root, "install", "BIN=" + bin, "DESTDIR=" + dest}, extra...)
		cmd := exec.Command("make", args...)
		cmd.Env = append(os.Environ(), "PATH="+securePath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return dest, string(out)
	}

	t.Run("prebuilt", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "loopbreaker")
		build := exec.Command("go", "build", "-o", bin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		dest, out := install(t, bin, "GO=no-such-go")
		if strings.Contains(out, "go build") {
			t.Errorf("make install built although %s was there:\n%s", bin, out)
		}
		for _, f := range []string{"usr/local/sbin/loopbreaker", "etc/systemd/system/loopbreaker.service", "etc/loopbreaker/policy.toml", "usr/local/share/man/man8/loopbreaker.8", "usr/local/share/man/man5/loopbreaker.toml.5"} {
			if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
				t.Errorf("not installed: %v", err)
			}
		}
	})
	t.Run("toolchain-in-usr-local-go", func(t *testing.T) {
		if _, err := os.Stat("/usr/local/go/bin/go"); err != nil {
			t.Skip("Go is not in /usr/local/go/bin here")
		}
		bin := filepath.Join(t.TempDir(), "loopbreaker")
		dest, _ := install(t, bin)
		if _, err := os.Stat(filepath.Join(dest, "usr/local/sbin/loopbreaker")); err != nil {
			t.Errorf("not installed: %v", err)
		}
	})
}
