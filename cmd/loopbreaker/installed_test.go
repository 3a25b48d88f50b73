package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
	"github.com/loopbreaker/loopbreaker/testenv/miltertest"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// envInstalledChild marks the test binary re-run inside its own mount and
// network namespaces by TestInstalledLayout.
const envInstalledChild = "LOOPBREAKER_TEST_INSTALLED_CHILD"

// unitExecStart is the unit's ExecStart, split into words.
func unitExecStart(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("dist/loopbreaker.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("the unit has no ExecStart")
	return nil
}

// TestInstalledLayout runs the daemon with the systemd unit's exact
// ExecStart flags on the real paths (/run/loopbreaker, /var/lib/loopbreaker:
// empty tmpfs mounts in a private mount namespace, the unit's port in a
// private network namespace), then the admin commands with no flag and no
// environment, as an administrator would after make install: status,
// blocks, events, explain, the release command the admin mail prints, and
// reload. Only -policy differs from the unit (a policy that blocks at the
// second message and mails a local sink), and -admin-mail-delay is added.
func TestInstalledLayout(t *testing.T) {
	if os.Getenv(envInstalledChild) == "1" {
		installedLayoutChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs the daemon in its own namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace over /run and /var/lib")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip(8) to bring up loopback in the private network namespace")
	}
	cmd := selfCommand(t, []string{envInstalledChild + "=1"}, "-test.run=^TestInstalledLayout$", "-test.v", "-test.count=1")
	cmd.Env = removeEnv(cmd.Env, envAsMain)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Skipf("cannot make private namespaces here: %v", err)
		}
		t.Fatalf("in the installed layout: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestInstalledLayout") {
		t.Fatalf("the child did not run the test:\n%s", out)
	}
	t.Logf("%s", out)
}

func removeEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

func installedLayoutChild(t *testing.T) {
	// The mounts live only in this process's namespace (Go made / private).
	for _, dir := range []string{"/run", "/var/lib"} {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", dir, err)
		}
	}
	for _, dir := range []string{admin.Installed.RunDir, filepath.Dir(admin.Installed.SystemState)} {
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	sink := smtpsink.MustStart(t, "relay")
	policyFile := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(policyFile, []byte(`admin_address = "postmaster@corp.example"
admin_relay = "`+sink.Addr()+`"

[[rule]]
name = "test-storm"
kinds = ["any"]
allow_broad = true
direction = "any"
key = "sender"
limit = 1
window = "1h"
action = "reject"
block_for = "1h"
`), 0o644)

	args := unitExecStart(t)
	if args[0] != "/usr/local/sbin/loopbreaker" {
		t.Fatalf("ExecStart runs %s", args[0])
	}
	args = args[1:]
	var listen string
	for i := range args {
		switch args[i] {
		case "-policy":
			args[i+1] = policyFile
		case "-listen":
			listen = args[i+1]
		}
	}
	args = append(args, "-admin-mail-delay", "100ms")
	// No flag and no environment that points the CLI anywhere.
	clean := []string{admin.EnvAdmin + "=", envState + "="}
	daemon := startSelf(t, clean, filepath.Join(admin.Installed.RunDir, admin.SocketName), args...)
	if _, err := os.Stat(filepath.Join(admin.Installed.RunDir, admin.PidFileName)); err != nil {
		t.Fatalf("pid file: %v", err)
	}

	cli := func(args ...string) string {
		t.Helper()
		out, errOut, rc := runSelf(t, clean, args...)
		if rc != 0 {
			t.Fatalf("loopbreaker %s: exit %d\n%s%s\ndaemon log:\n%s", strings.Join(args, " "), rc, out, errOut, daemon.Log())
		}
		return out
	}
	if out := cli("status"); !strings.Contains(out, admin.Installed.SystemState) {
		t.Errorf("status:\n%s", out)
	}

	network, addr, err := parseSocket(listen)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []gomilter.ActionType{gomilter.ActionAccept, gomilter.ActionRejectWithCode} {
		if got := milterSend(t, network, addr, "alice@corp.example", "bob@outside.example", "storm "+string(rune('a'+i))); got != want {
			t.Fatalf("message %d: %v, want %v", i+1, got, want)
		}
	}
	if out := cli("blocks"); !strings.Contains(out, "alice@corp.example") || !strings.Contains(out, "test-storm") {
		t.Errorf("blocks:\n%s", out)
	}
	if out := cli("events"); !strings.Contains(out, "alice@corp.example") {
		t.Errorf("events:\n%s", out)
	}
	if out := cli("explain", "alice@corp.example"); !strings.Contains(out, "test-storm") {
		t.Errorf("explain:\n%s", out)
	}

	// The admin mail's release command, run as it is printed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sink.WaitCount(ctx, 1); err != nil {
		t.Fatalf("no admin mail: %v\n%s", err, daemon.Log())
	}
	var release string
	for _, line := range strings.Split(strings.ReplaceAll(string(sink.Messages()[0].Data), "\r\n", "\n"), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "loopbreaker release ") {
			release = l
		}
	}
	if release != "loopbreaker release alice@corp.example -rule test-storm" {
		t.Fatalf("release command in the admin mail: %q", release)
	}
	if out := cli(strings.Fields(release)[1:]...); !strings.Contains(out, "released 1 block") {
		t.Errorf("%s:\n%s", release, out)
	}
	if out := cli("blocks"); strings.Contains(out, "alice@corp.example") {
		t.Errorf("blocks after release:\n%s", out)
	}

	if out := cli("reload"); !strings.Contains(out, "sent SIGHUP") {
		t.Errorf("reload: %s", out)
	}
	waitLog(t, daemon, "policy reloaded")
	stopSelf(t, daemon)
	// Stopped: the CLI says where it looked.
	_, errOut, rc := runSelf(t, clean, "status")
	if rc != 1 || !strings.Contains(errOut, "/run/loopbreaker/admin.sock") || !strings.Contains(errOut, "/var/lib/loopbreaker/admin.sock") {
		t.Errorf("status with no daemon: exit %d, %q", rc, errOut)
	}
}

// milterSend runs one message through the milter as an MTA would and
// returns the milter's final action.
func milterSend(t *testing.T, network, addr, from, to, subject string) gomilter.ActionType {
	t.Helper()
	mta := miltertest.MTA{Network: strings.TrimSuffix(network, "4"), Actions: miltertest.AllActions &^ gomilter.OptSetMacros, Macros: gomilter.NewMacroBag()}
	r, err := mta.Send(addr, miltertest.Message{From: from, Rcpts: []string{to}, Headers: [][2]string{{"From", from}, {"Subject", subject}}, Body: "hello\r\n"})
	if err != nil {
		t.Fatal(err)
	}
	return r.Action.Type
}
