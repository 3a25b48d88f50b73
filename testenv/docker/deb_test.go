package docker

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestDebPackage builds the Debian package with make deb and, in one
// container of the debootstrap base image without any network, installs
// it with apt-get, starts the daemon as the unit would (its exact
// ExecStart, as the loopbreaker user, with the RuntimeDirectory made), asks
// it loopbreaker status with no flags, stops it and purges the package:
// every file the package listed is gone, and so are /etc/loopbreaker and
// /var/lib/loopbreaker; the loopbreaker user stays, as Debian keeps system
// users.
func TestDebPackage(t *testing.T) {
	requireDocker(t, "package test")
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping the package test: %s is not installed", tool)
		}
	}
	start := time.Now()
	ensureBase(t)
	root, err := testproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	debDir := t.TempDir()
	step := time.Now()
	out := run(t, 10*time.Minute, root, nil, "make", "-s", "deb", "DEBDIR="+debDir, "STATIC="+filepath.Join(t.TempDir(), "loopbreaker"))
	debs, _ := filepath.Glob(filepath.Join(debDir, "loopbreaker_*_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %q in %s\n%s", debs, debDir, out)
	}
	deb := filepath.Base(debs[0])
	version := strings.Split(deb, "_")[1]
	t.Logf("make deb: %s in %s", deb, time.Since(step).Round(time.Second))

	name := fmt.Sprintf("lbdeb%d", os.Getpid())
	run(t, time.Minute, ".", nil, "docker", "run", "-d", "--rm", "--name", name, "--network", "none",
		"-v", debDir+":/pkg:ro", baseImage, "sleep", "infinity")
	t.Cleanup(func() { _, _ = runErr(time.Minute, ".", nil, "docker", "rm", "-f", name) })
	// sh runs a shell script in the container as root.
	sh := func(script string) (string, error) {
		return runErr(2*time.Minute, ".", nil, "docker", "exec", name, "sh", "-ec", script)
	}
	mustSh := func(what, script string) string {
		t.Helper()
		out, err := sh(script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		return out
	}

	step = time.Now()
	mustSh("apt-get install", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /pkg/"+deb)
	t.Logf("apt-get install ./%s (offline) in %s", deb, time.Since(step).Round(100*time.Millisecond))

	// What postinst made and what the package holds.
	mustSh("after install", `
		id loopbreaker
		getent group loopbreaker
		test "$(stat -c '%U:%G %a' /var/lib/loopbreaker)" = "loopbreaker:loopbreaker 750"
		test -x /usr/sbin/loopbreaker
		test -s /etc/loopbreaker/policy.toml
		/usr/sbin/loopbreaker check-policy /etc/loopbreaker/policy.toml
		test -s /usr/share/man/man8/loopbreaker.8.gz -a -s /usr/share/man/man5/loopbreaker.toml.5.gz
		test -s /usr/share/doc/loopbreaker/copyright
		# enabled as dh_installsystemd would: the wants link, no systemd running.
		test -L /etc/systemd/system/multi-user.target.wants/loopbreaker.service
		grep -qx /etc/loopbreaker/policy.toml /var/lib/dpkg/info/loopbreaker.conffiles`)
	if v := mustSh("loopbreaker version", "loopbreaker version"); !strings.Contains(v, version) {
		t.Errorf("loopbreaker version says %q; the package is %s", v, version)
	}
	execStart := strings.TrimSpace(mustSh("the unit's ExecStart", "sed -n 's/^ExecStart=//p' /lib/systemd/system/loopbreaker.service"))
	if !strings.HasPrefix(execStart, "/usr/sbin/loopbreaker serve ") {
		t.Fatalf("packaged unit: ExecStart=%s", execStart)
	}
	listed := strings.Fields(mustSh("dpkg -L", "dpkg -L loopbreaker"))

	// The daemon as systemd would start it: RuntimeDirectory=loopbreaker
	// (0750), UMask=0007, User= and Group=loopbreaker, NoNewPrivileges.
	step = time.Now()
	run(t, time.Minute, ".", nil, "docker", "exec", "-d", name, "sh", "-c",
		"install -d -o loopbreaker -g loopbreaker -m 0750 /run/loopbreaker && umask 0007 && cd / && "+
			"exec setpriv --reuid=loopbreaker --regid=loopbreaker --init-groups --no-new-privs -- "+execStart+" >/tmp/loopbreaker.log 2>&1")
	var status string
	for deadline := time.Now().Add(20 * time.Second); ; {
		status, err = sh("loopbreaker status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := sh("cat /tmp/loopbreaker.log; ls -la /run/loopbreaker /var/lib/loopbreaker")
			t.Fatalf("loopbreaker status (no flags) does not answer: %v\n%s\ndaemon:\n%s", err, status, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("daemon up, status answered after %s:\n%s", time.Since(step).Round(100*time.Millisecond), status)
	mustSh("runtime files", `
		test -S /run/loopbreaker/admin.sock
		test -s /run/loopbreaker/loopbreaker.pid
		test "$(stat -c %U /var/lib/loopbreaker/state.db)" = loopbreaker
		# the loopbreaker user asks too (group access to the 0660 socket)
		setpriv --reuid=loopbreaker --regid=loopbreaker --init-groups loopbreaker status >/dev/null`)
	// systemctl stop: SIGTERM, then the daemon is gone.
	mustSh("stop the daemon", `
		pid=$(cat /run/loopbreaker/loopbreaker.pid)
		kill "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done`)

	step = time.Now()
	mustSh("apt-get purge", "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q loopbreaker")
	t.Logf("apt-get purge in %s", time.Since(step).Round(100*time.Millisecond))
	// Left behind: any file the package listed, its own directories, the
	// state, the systemd enablement.
	var check strings.Builder
	check.WriteString("left=\n")
	for _, p := range listed {
		fmt.Fprintf(&check, "[ -d %[1]q ] || [ ! -e %[1]q ] || left=\"$left %[1]s\"\n", p)
	}
	for _, p := range []string{"/etc/loopbreaker", "/var/lib/loopbreaker", "/run/loopbreaker", "/usr/share/doc/loopbreaker",
		"/lib/systemd/system/loopbreaker.service", "/etc/systemd/system/multi-user.target.wants/loopbreaker.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/loopbreaker.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-masked/loopbreaker.service", "/var/lib/dpkg/info/loopbreaker.list"} {
		fmt.Fprintf(&check, "[ ! -e %[1]q ] && [ ! -L %[1]q ] || left=\"$left %[1]s\"\n", p)
	}
	check.WriteString(`echo "status: $(dpkg-query -W -f='${Status}' loopbreaker 2>/dev/null || echo none)"` + "\n")
	check.WriteString(`echo "left:$left"` + "\n")
	check.WriteString(`id loopbreaker` + "\n")
	after := mustSh("after purge", check.String())
	if !strings.Contains(after, "left:\n") {
		t.Errorf("apt-get purge left files behind:\n%s", after)
	}
	if s := after[:strings.Index(after, "\n")]; s != "status: none" && !strings.Contains(s, "not-installed") {
		t.Errorf("after purge, dpkg says %q", s)
	}
	t.Logf("after purge (the user stays):\n%s", after)
	t.Logf("package test took %s", time.Since(start).Round(time.Second))
}
