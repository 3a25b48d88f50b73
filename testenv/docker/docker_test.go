// Package docker holds loopbreaker's container test environment: the
// Dockerfile, compose.yaml and their scripts, lbtestenv (the mailstore
// and its agents), and the test that runs a forwarding-rule storm through
// the compose stack.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// baseImage is the registry-free base image base.sh builds.
const baseImage = "loopbreaker-base:bookworm"

// images are compose.yaml's images, by target of this directory's
// Dockerfile; the one with none is the daemon's image, built from
// cmd/loopbreaker/dist/Dockerfile as make image does.
var images = []struct{ target, tag string }{
	{"", "loopbreaker:local"},
	{"mailstore", "loopbreaker-testenv-mailstore:local"},
	{"postfix", "loopbreaker-testenv-postfix:local"},
	{"sendmail", "loopbreaker-testenv-sendmail:local"},
	{"redis", "loopbreaker-testenv-redis:local"},
}

// report is lbtestenv scenario -json's output (the fields the test reads).
type report struct {
	Via               string  `json:"via"`
	User              string  `json:"user"`
	CapReached        bool    `json:"cap_reached"`
	DurationSeconds   float64 `json:"duration_seconds"`
	Forwards          int     `json:"forwards"`
	ForwardedNDRs     int     `json:"forwarded_ndrs"`
	RefusedAtSubmit   int     `json:"refused_at_submit"`
	NDRsBack          int     `json:"ndrs_back"`
	Quarantined       int     `json:"quarantined"`
	StillInMTA        int     `json:"still_in_mta"`
	OrdinarySent      int     `json:"ordinary_sent"`
	OrdinaryDelivered int     `json:"ordinary_delivered"`
	Block             string  `json:"block"`
	BlockSeconds      float64 `json:"block_seconds"`
}

// TestComposeForwardStorm builds the images on a base made with
// debootstrap (no registry needed), starts compose.yaml, and runs alice's
// forwarding-rule storm through a Postfix hub, the second hub and Sendmail:
// each time loopbreaker's built-in policy lets 25 forwarded NDRs out, sends
// the 26th to the quarantine mailbox, and the storm is over; nothing is
// left in the MTAs and alice's ordinary mail is delivered.
func TestComposeForwardStorm(t *testing.T) {
	requireDocker(t, "container test")
	compose := composeCommand()
	if compose == nil {
		t.Skip("skipping the container test: neither 'docker compose' nor docker-compose is installed")
	}
	start := time.Now()
	base := os.Getenv("LB_BASE_IMAGE")
	if base == "" {
		base = baseImage
		ensureBase(t)
	}
	t.Logf("base image %s ready after %s", base, time.Since(start).Round(time.Second))

	ctxDir := buildContext(t)
	network := "default"
	if base == baseImage {
		// Everything is in the base's apt cache; without a network the
		// maintainer scripts' DNS lookups fail at once instead of timing
		// out (sendmail's took two minutes).
		network = "none"
	}
	for _, img := range images {
		step := time.Now()
		old, _ := runErr(time.Minute, ctxDir, nil, "docker", "image", "inspect", "-f", "{{.Id}}", img.tag)
		args := []string{"build", "-q", "--network", network, "-t", img.tag}
		if img.target == "" {
			args = append(args, "image") // FROM scratch: no base
		} else {
			args = append(args, "--build-arg", "BASE="+base, "--target", img.target, ".")
		}
		run(t, 15*time.Minute, ctxDir, []string{"DOCKER_BUILDKIT=0"}, "docker", args...)
		t.Logf("image %s built in %s", img.tag, time.Since(step).Round(time.Second))
		// The image this build replaced, if any, is of no use any more.
		if old = strings.TrimSpace(old); strings.HasPrefix(old, "sha256:") {
			if now, _ := runErr(time.Minute, ctxDir, nil, "docker", "image", "inspect", "-f", "{{.Id}}", img.tag); strings.TrimSpace(now) != old {
				_, _ = runErr(time.Minute, ctxDir, nil, "docker", "image", "rm", old)
			}
		}
	}

	project := fmt.Sprintf("lbtest%d", os.Getpid())
	env := []string{"LB_BASE_IMAGE=" + base, "COMPOSE_PROJECT_NAME=" + project}
	dcArgs := func(args ...string) []string {
		return append(append(append([]string{}, compose[1:]...), "-p", project, "-f", filepath.Join(ctxDir, "compose.yaml")), args...)
	}
	dc := func(timeout time.Duration, args ...string) (string, error) {
		return runErr(timeout, ctxDir, env, compose[0], dcArgs(args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := dc(time.Minute, "logs", "--no-color", "--tail", "25")
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := dc(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	step := time.Now()
	if out, err := dc(5*time.Minute, "up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("compose up in %s", time.Since(step).Round(time.Second))

	for _, c := range []struct{ via, user string }{
		{"hub1", "alice@corp.example"},
		{"hub2", "frank@corp.example"},
		{"sendmail", "erin@corp.example"},
	} {
		step := time.Now()
		stdout, stderr, err := runSplit(5*time.Minute, ctxDir, env, compose[0], dcArgs("exec", "-T", "mailstore", "lbtestenv", "scenario", "forward-storm",
			"-via", c.via, "-user", c.user, "-json", "-wait", "3m")...)
		var rep report
		if jerr := json.Unmarshal([]byte(stdout), &rep); jerr != nil {
			t.Fatalf("storm through %s: %v (%v)\n%s\n%s", c.via, err, jerr, stderr, stdout)
		}
		t.Logf("storm through %s (%s): %s\n%s", c.via, time.Since(step).Round(time.Second), summary(rep), stderr)
		if rep.CapReached {
			t.Errorf("%s: the storm ran until the loop budget stopped it", c.via)
		}
		// The built-in forward-storm rule: 25 forwarded NDRs a quarter of
		// an hour, the 26th redirected to the quarantine mailbox.
		if rep.ForwardedNDRs != 26 || rep.Quarantined != 1 || rep.NDRsBack != 26 {
			t.Errorf("%s: %d forwarded NDRs, %d quarantined, %d NDRs back; want 26, 1, 26 (25 let through + the forward of the first message)",
				c.via, rep.ForwardedNDRs, rep.Quarantined, rep.NDRsBack)
		}
		if !strings.Contains(rep.Block, "rule=forward-storm") || !strings.Contains(rep.Block, "count=26") || !strings.Contains(rep.Block, "limit=25") {
			t.Errorf("%s: quarantined message's X-Loopbreaker: %q", c.via, rep.Block)
		}
		if rep.StillInMTA != 0 || rep.RefusedAtSubmit != 0 {
			t.Errorf("%s: %d forwards still in the MTA, %d refused at submission; want none", c.via, rep.StillInMTA, rep.RefusedAtSubmit)
		}
		if rep.OrdinarySent != 1 || rep.OrdinaryDelivered != 1 {
			t.Errorf("%s: ordinary mail during the storm: %d sent, %d delivered; want 1 and 1", c.via, rep.OrdinarySent, rep.OrdinaryDelivered)
		}
	}
	// hub1 and Sendmail go through the loopbreaker service, hub2 through
	// loopbreaker2: sharing Redis, each daemon sees all three blocks.
	for _, svc := range []string{"loopbreaker", "loopbreaker2"} {
		out, err := dc(time.Minute, "exec", "-T", svc, "loopbreaker", "status", "-json")
		var st struct {
			Backend struct {
				Name     string `json:"name"`
				Degraded bool   `json:"degraded"`
			} `json:"backend"`
		}
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Backend.Name != "redis" || st.Backend.Degraded {
			t.Errorf("%s: status: want backend redis, not degraded: %v\n%s", svc, err, out)
		}
		out, err = dc(time.Minute, "exec", "-T", svc, "loopbreaker", "blocks", "-json")
		var bs []struct {
			Key string `json:"key"`
		}
		if err != nil || json.Unmarshal([]byte(out), &bs) != nil {
			t.Errorf("%s: blocks: %v\n%s", svc, err, out)
			continue
		}
		keys := map[string]bool{}
		for _, b := range bs {
			keys[b.Key] = true
		}
		for _, k := range []string{"alice@corp.example", "frank@corp.example", "erin@corp.example"} {
			if !keys[k] {
				t.Errorf("%s does not list the shared block of %s: %s", svc, k, out)
			}
		}
	}
	// The image's HEALTHCHECK (loopbreaker status, no flags) does not fail.
	for _, svc := range []string{"loopbreaker", "loopbreaker2"} {
		id, err := dc(time.Minute, "ps", "-q", svc)
		if err != nil {
			t.Errorf("compose ps %s: %v\n%s", svc, err, id)
			continue
		}
		health, err := runErr(time.Minute, ctxDir, nil, "docker", "inspect", "-f", "{{.State.Health.Status}}", strings.TrimSpace(id))
		if health = strings.TrimSpace(health); err != nil || (health != "healthy" && health != "starting") {
			t.Errorf("%s: health %q (%v); want healthy (or starting)", svc, health, err)
		}
	}
	t.Logf("container test took %s", time.Since(start).Round(time.Second))
}

func summary(r report) string {
	return fmt.Sprintf("%d forwarded NDRs, %d NDRs back, %d quarantined, %d still in the MTA, block at +%.1fs: %s; stopped after %.1fs",
		r.ForwardedNDRs, r.NDRsBack, r.Quarantined, r.StillInMTA, r.BlockSeconds, r.Block, r.DurationSeconds)
}

// composeCommand returns the compose command available, or nil.
func composeCommand() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil && exec.Command(p, "version").Run() == nil {
		return []string{p}
	}
	return nil
}

// ensureBase builds the base image with base.sh unless it exists; it skips
// the test when that cannot be done here.
func ensureBase(t *testing.T) {
	t.Helper()
	var rebuild []string
	if exec.Command("docker", "image", "inspect", baseImage).Run() == nil {
		// A base from before the redis image lacks redis-server's packages.
		if exec.Command("docker", "run", "--rm", "--network", "none", baseImage, "sh", "-c", "ls /var/cache/apt/archives/redis-server_*.deb").Run() == nil {
			return
		}
		rebuild = []string{"LB_REBUILD_BASE=1"}
	}
	if os.Geteuid() != 0 {
		t.Skipf("skipping the container test: no %s image, and building it with debootstrap needs root", baseImage)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skipf("skipping the container test: no %s image, and debootstrap is not installed (scripts/deps.sh installs it)", baseImage)
	}
	step := time.Now()
	run(t, 20*time.Minute, ".", rebuild, "bash", "base.sh", baseImage)
	t.Logf("built %s with debootstrap in %s", baseImage, time.Since(step).Round(time.Second))
}

// buildContext copies this directory's build files to a temporary
// directory, builds the static binaries into its bin/ and makes the
// daemon image's context in its image/, as run.sh up does.
func buildContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore", "compose.yaml", "install-packages.sh", "postfix-entrypoint.sh", "sendmail-entrypoint.sh", "sendmail.mc"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	root, err := testproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	run(t, 10*time.Minute, root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", filepath.Join(dir, "bin")+"/",
		"./cmd/loopbreaker", "./testenv/docker/lbtestenv")
	run(t, time.Minute, root, nil, "bash", "cmd/loopbreaker/dist/image-context.sh", filepath.Join(dir, "image"), filepath.Join(dir, "bin", "loopbreaker"))
	return dir
}

// run runs a command and fails the test if it fails.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(timeout, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	var out bytes.Buffer
	err := runTo(&out, &out, timeout, dir, env, name, args...)
	return out.String(), err
}

// runSplit runs a command and returns its standard output and standard
// error apart.
func runSplit(timeout time.Duration, dir string, env []string, name string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := runTo(&stdout, &stderr, timeout, dir, env, name, args...)
	return stdout.String(), stderr.String(), err
}

// runTo runs a command in dir with env added, its output going to stdout
// and stderr, within timeout.
func runTo(stdout, stderr io.Writer, timeout time.Duration, dir string, env []string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// requireDocker skips the test (what it is, for the message) in -short
// mode and where no Docker engine answers.
func requireDocker(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: skipped in -short mode", what)
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("skipping the %s: no Docker engine answers (docker info: %v: %s)", what, err, firstLine(out))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
