package postfix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// start configures, checks and starts the instance at i.smtpAddr.
func (i *Instance) start(ctx context.Context, cfg Config) error {
	if err := i.writeConfig(cfg); err != nil {
		return err
	}
	if stdout, stderr, err := runPostfix(ctx, PostfixCmd, "-c", i.confDir, "check"); err != nil {
		return fmt.Errorf("postfix %s: postfix check: %w\n%s%s%s", i.name, err, stdout, stderr, i.logTail("maillog", 30))
	}
	// "postfix start-fg" would run the same checks again unless this file
	// exists (it removes the file).
	if err := os.WriteFile(filepath.Join(i.queueDir, "quick-start"), nil, 0o644); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}

	// The watchdog stops the instance should this process die before Stop:
	// its stdin reaches EOF when our end of the pipe is closed by the
	// kernel. In its own process group, a terminal's ^C does not reach it.
	wdOut, wdIn, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("postfix %s: watchdog: %w", i.name, err)
	}
	wd := &testproc.Proc{Name: "postfix " + i.name + " watchdog", Bin: "/bin/sh", Dir: "/", Stdin: wdOut, Args: []string{"-c", `
read -r line
[ "$line" = done ] && exit 0
"$1" -c "$2" stop >/dev/null 2>&1
[ -n "$3" ] && rm -rf -- "$3"
exit 0`, "lb-postfix-watchdog", PostfixCmd, i.confDir, i.ownRootPath()}}
	err = wd.Start()
	wdOut.Close() // the watchdog has its own; ours would keep the pipe open
	if err != nil {
		wdIn.Close()
		return fmt.Errorf("postfix %s: start watchdog: %w", i.name, err)
	}
	i.watchdog, i.wdIn = wd, wdIn

	// "postfix start-fg" runs postfix-script, which runs "master -s" in the
	// foreground (master becomes the leader of a new session) and exits
	// when master does. Its output goes to a file, not a pipe: daemons may
	// inherit the descriptors, and Wait would then wait for them too.
	logStart := i.logSize()
	fg := &testproc.Proc{Name: "postfix " + i.name + " start-fg", Bin: PostfixCmd,
		Args: []string{"-c", i.confDir, "start-fg"}, LogFile: i.fgLog, Dir: "/"}
	if err := fg.Start(); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}
	i.fg = fg

	if err := i.waitReady(ctx, logStart); err != nil {
		return err
	}
	return nil
}

// waitReady waits until smtpd greets at i.smtpAddr. It gives up early when
// master exits or the maillog reports a fatal error after logStart: Postfix
// programs pause for a while before they exit on a fatal error.
func (i *Instance) waitReady(ctx context.Context, logStart int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Probe in the background: a probe may hang until its timeout if
	// something else listens on the port.
	ready := make(chan error, 1)
	go func() {
		_, err := testproc.WaitForBanner(ctx, i.smtpAddr)
		ready <- err
	}()

	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		var problem string
		select {
		case err := <-ready:
			if err == nil {
				return nil
			}
			return fmt.Errorf("postfix %s: smtpd at %s not ready: %w\n%s", i.name, i.smtpAddr, err, i.logTail("maillog", 30))
		case <-i.masterDone():
			problem = fmt.Sprintf("master exited during start-up (%v)", i.fg.Err())
		case <-tick.C:
		}
		newLog := i.logSince(logStart)
		if problem == "" {
			for _, l := range strings.Split(newLog, "\n") {
				if strings.Contains(l, ": fatal: ") || strings.Contains(l, ": panic: ") {
					problem = "start-up failed: " + l
					break
				}
			}
		}
		if problem != "" {
			err := fmt.Errorf("postfix %s: %s\n%s%s", i.name, problem, i.logTail("start-fg output", 20), i.logTail("maillog", 30))
			if strings.Contains(newLog, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		}
	}
}

// Stop stops the instance ("postfix stop"), waits until every process of
// the instance has exited, and removes the instance files if they live
// outside Config.Dir. It is idempotent. It reports an error if master had
// died before Stop.
func (i *Instance) Stop() error {
	i.stopOnce.Do(func() {
		var crashed error
		if i.fg != nil && !i.fg.Running() {
			crashed = fmt.Errorf("postfix %s: master exited before Stop (%v)\n%s", i.name, i.fg.Err(), i.logTail("maillog", 30))
		}
		i.stopErr = errors.Join(crashed, i.halt(false))
		i.cleanupFiles()
	})
	return i.stopErr
}

// halt stops master and its daemons, waits until no process of the
// instance is left, and dismisses the watchdog. It leaves the files in
// place. With force (a failed start) it kills the processes right away
// rather than asking master to stop: a master with a fatal error pauses
// before it exits, ignoring "postfix stop" for five seconds.
func (i *Instance) halt(force bool) error {
	var errs []error
	if i.fg != nil && i.fg.Running() && !force {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stdout, stderr, err := runPostfix(ctx, PostfixCmd, "-c", i.confDir, "stop")
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("postfix %s: postfix stop: %w\n%s%s", i.name, err, stdout, stderr))
		}
		select {
		case <-i.masterDone():
		case <-time.After(15 * time.Second):
			errs = append(errs, fmt.Errorf("postfix %s: master still running 15s after postfix stop; killing it", i.name))
			force = true
		}
	}
	if force {
		for _, pid := range instanceProcs(i.confDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// master's daemons get SIGTERM from master as it exits; wait for them.
	if err := waitGone(i.confDir, 15*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("postfix %s: %w", i.name, err))
	}
	if i.fg != nil && i.fg.Running() {
		select {
		case <-i.masterDone():
		case <-time.After(5 * time.Second):
			i.fg.Kill() // its own process group
		}
	}
	if i.watchdog != nil {
		_, _ = io.WriteString(i.wdIn, "done\n")
		_ = i.wdIn.Close()
		<-i.watchdog.Done()
		if err := i.watchdog.Err(); err != nil {
			errs = append(errs, fmt.Errorf("postfix %s: watchdog: %w", i.name, err))
		}
		i.watchdog, i.wdIn = nil, nil
	}
	return errors.Join(errs...)
}

// masterDone is closed when "postfix start-fg" (master) has exited; nil
// (never ready) before start.
func (i *Instance) masterDone() <-chan struct{} {
	if i.fg == nil {
		return nil
	}
	return i.fg.Done()
}

// reset forgets the processes of a failed start so that start can run again.
func (i *Instance) reset() {
	i.fg = nil
	_ = os.Remove(filepath.Join(i.queueDir, "pid", "master.pid"))
}

// ownRootPath returns the instance directory if Stop is to remove it.
func (i *Instance) ownRootPath() string {
	if i.ownRoot && os.Getenv(KeepEnv) != "1" {
		return i.root
	}
	return ""
}

// cleanupFiles removes the instance directory if the harness created it
// outside Config.Dir (Config.Dir itself belongs to the caller).
func (i *Instance) cleanupFiles() {
	if p := i.ownRootPath(); p != "" {
		_ = os.RemoveAll(p)
	}
}

// waitGone waits until no process of the instance with configuration
// directory confDir is left, killing the stragglers after timeout.
func waitGone(confDir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	killed := false
	for {
		pids := instanceProcs(confDir)
		if len(pids) == 0 {
			if killed {
				return errors.New("had to SIGKILL processes left after stop")
			}
			return nil
		}
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("processes %v survive SIGKILL", pids)
			}
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			killed = true
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// instanceProcs lists the live processes of the instance whose
// configuration directory is confDir: the postfix command sets MAIL_CONFIG
// and master passes it on to every daemon (import_environment).
func instanceProcs(confDir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("MAIL_CONFIG=" + confDir)
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 { // gone, or a zombie
			continue
		}
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(v []byte) bool { return bytes.Equal(v, want) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}
