package postfix

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Postconf runs "postconf -c CONFIGDIR args..." and returns its standard
// output. For example Postconf("-h", "myhostname") reads a setting and
// Postconf("-e", "smtpd_milters=inet:127.0.0.1:7357") changes main.cf (then
// call Reload; Postfix programs pause a second or two for a main.cf changed
// within the last second).
func (i *Instance) Postconf(args ...string) (string, error) {
	return i.command(PostconfCmd, args...)
}

// Postqueue runs "postqueue -c CONFIGDIR args..." and returns its standard
// output, e.g. Postqueue("-j") lists the queue as JSON lines.
func (i *Instance) Postqueue(args ...string) (string, error) {
	return i.command(PostqueueCmd, args...)
}

// Postsuper runs "postsuper -c CONFIGDIR args..." and returns its standard
// output, e.g. Postsuper("-H", "ALL") releases all held messages.
func (i *Instance) Postsuper(args ...string) (string, error) {
	return i.command(PostsuperCmd, args...)
}

// Reload runs "postfix reload": daemons pick up main.cf and master.cf
// changes.
func (i *Instance) Reload() error {
	_, err := i.command(PostfixCmd, "reload")
	return err
}

// Flush runs "postqueue -f": deliver deferred mail now.
func (i *Instance) Flush() error {
	_, err := i.Postqueue("-f")
	return err
}

// command runs a Postfix command with "-c CONFIGDIR" and a one-minute limit.
func (i *Instance) command(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, err := runPostfix(ctx, path, append([]string{"-c", i.confDir}, args...)...)
	if err != nil {
		return stdout, fmt.Errorf("postfix %s: %s %s: %w: %s", i.name, filepath.Base(path),
			strings.Join(args, " "), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

// runPostfix runs a Postfix command and returns its standard output and
// standard error. Postfix commands write diagnostics to standard error only
// when it is a terminal (and otherwise to syslog, or to the maillog once
// they have read main.cf: a fatal error in main.cf would vanish), so
// standard error is a pseudo-terminal when one can be had.
func runPostfix(ctx context.Context, path string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	var outBuf bytes.Buffer
	cmd.Stdout = &outBuf
	ctl, tty, ptyErr := openPTY()
	if ptyErr != nil {
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		err = cmd.Run()
		return outBuf.String(), errBuf.String(), err
	}
	defer ctl.Close()
	cmd.Stderr = tty
	err = cmd.Start()
	tty.Close()
	if err != nil {
		return "", "", err
	}
	copied := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(ctl) // ends with EIO once no process has the terminal open
		copied <- b
	}()
	err = cmd.Wait()
	var errBytes []byte
	select {
	case errBytes = <-copied:
	case <-time.After(5 * time.Second):
		// A background process (e.g. "postsuper &" of postfix reload)
		// still holds the terminal. ctl.Close ends the read.
	}
	return outBuf.String(), strings.ReplaceAll(string(errBytes), "\r\n", "\n"), err
}
