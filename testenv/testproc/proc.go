package testproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a child process of a test, a benchmark or the soak: a daemon
// whose output (standard output and standard error) is captured, that can
// be stopped, killed and started again with the same command line. It runs
// in its own process group, so a terminal's ^C reaches only the harness.
type Proc struct {
	Name string   // for messages
	Bin  string   // the program
	Args []string // its arguments
	// LogFile, when set, receives the output (appended, as a daemon's
	// goes to the journal); else the output is kept in memory. A process
	// whose children may outlive it and keep its descriptors (Postfix's
	// master) needs a file: a pipe would hold Wait until they exit.
	LogFile string
	Dir     string   // its working directory; "" is the caller's
	Env     []string // added to the caller's environment ("KEY=value")
	// Stdin, when set, is the process's standard input (else /dev/null);
	// an *os.File (a pipe's end) is handed to the child as it is.
	Stdin io.Reader

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	buf     bytes.Buffer
}

// Start runs bin with args; see Proc.
func Start(name, logFile, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Bin: bin, Args: args, LogFile: logFile}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Start runs the process, the first time or again after it exited.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil && !IsClosed(p.done) {
		return fmt.Errorf("%s is still running", p.Name)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Dir, cmd.Stdin = p.Dir, p.Stdin
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	var out io.Writer = lockedWriter{p}
	if p.LogFile != "" {
		f, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close() // the child has its own descriptor
		out = f
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// lockedWriter appends to the in-memory log.
type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.buf.Write(b)
}

// Done is closed when the process (of the latest Start) has exited.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Err is how the process (of the latest Start) exited: its Wait error,
// nil until it has exited.
func (p *Proc) Err() error { return p.exitErr() }

// Running reports whether the process is running.
func (p *Proc) Running() bool {
	done := p.Done()
	return done != nil && !IsClosed(done)
}

// Pid is the process id (of the latest Start; 0 before).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// WaitReady calls ready until it returns nil. It fails when the process
// exits first, or when ctx ends first (then it kills the process).
func (p *Proc) WaitReady(ctx context.Context, ready func(context.Context) error) error {
	done := p.Done()
	err := Poll(ctx, p.Name+" to be ready", func(ctx context.Context) error {
		err := ready(ctx)
		if err != nil && IsClosed(done) {
			return Final(fmt.Errorf("%s exited at start (%v):\n%s", p.Name, p.Err(), p.Log()))
		}
		return err
	})
	if err != nil && ctx.Err() != nil && !IsClosed(done) {
		p.Kill()
		return fmt.Errorf("%w\n%s", err, p.Log())
	}
	return err
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; then
// it kills it and reports that. A process that is not running is stopped.
func (p *Proc) Stop(timeout time.Duration) error {
	done := p.Done()
	if done == nil || IsClosed(done) {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop on SIGTERM within %s", p.Name, timeout)
	}
}

// Kill sends SIGKILL (a crash) to the process and its process group and
// waits for the process to be gone.
func (p *Proc) Kill() {
	done := p.Done()
	if done == nil {
		return
	}
	if pid := p.Pid(); pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // its own process group
	}
	<-done
}

// Log is the process's output so far (the whole LogFile when set).
func (p *Proc) Log() string {
	if p.LogFile != "" {
		b, _ := os.ReadFile(p.LogFile)
		return string(b)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// WaitLog waits until the log holds substr n times or more.
func (p *Proc) WaitLog(ctx context.Context, substr string, n int) error {
	if err := WaitForLine(ctx, p.Log, substr, n); err != nil {
		return fmt.Errorf("%s: %w\n%s", p.Name, err, p.Log())
	}
	return nil
}

// IsClosed reports whether ch is closed.
func IsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
