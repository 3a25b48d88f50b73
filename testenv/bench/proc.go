package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Build builds the main package pkg (e.g. "./cmd/loopbreaker") of this
// module into dir, without the race detector: benchmarks measure the binary
// a postmaster runs.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	return testenv.Build(ctx, dir, pkg, false)
}

// Proc is a milter (or other server) process started by the benchmark, its
// output going to a log file as a daemon's would go to the journal.
type Proc struct {
	*testproc.Proc
	Addr string // 127.0.0.1:PORT it listens on, or the path of its unix socket
}

// StartProc runs bin with args, logging to dir/NAME.log, and waits until
// addr accepts connections.
func StartProc(ctx context.Context, name, dir, addr, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return nil, err
	}
	p, err := testproc.Start(name, logPath, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, func(ctx context.Context) error { return testproc.Accepts(ctx, addr) }); err != nil {
		return nil, err
	}
	return &Proc{Proc: p, Addr: addr}, nil
}

// Stop sends SIGTERM and waits up to 40 s, then kills.
func (p *Proc) Stop() { _ = p.Proc.Stop(40 * time.Second) }

// CPUTime is the user+system CPU time the process has used so far.
func (p *Proc) CPUTime() time.Duration { return ProcCPUTime(p.Pid()) }

// RSS is the process's resident set size in bytes.
func (p *Proc) RSS() int64 {
	m := testproc.Status(p.Pid())
	return m["VmRSS"]
}

// ProcCPUTime is the user+system CPU time of pid so far.
func ProcCPUTime(pid int) time.Duration { return testproc.CPUTime(pid) }

// TreeCPUTime is the CPU time used so far by the processes whose
// environment holds env (e.g. MAIL_CONFIG=/path: every process of a
// Postfix instance), including their children that have exited. A
// process that exits moves its time into its parent's children time, so
// the sum over the living processes never loses or counts time twice.
func TreeCPUTime(env string) time.Duration {
	want := []byte(env)
	var sum time.Duration
	for _, pid := range testproc.Pids() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		if slices.ContainsFunc(bytes.Split(b, []byte{0}), func(v []byte) bool { return bytes.Equal(v, want) }) {
			sum += testproc.CPUTimeWithChildren(pid)
		}
	}
	return sum
}

// ChildrenCPUTime is the CPU time of pid and of its children, living or
// reaped.
func ChildrenCPUTime(pid int) time.Duration {
	sum := testproc.CPUTimeWithChildren(pid)
	for _, child := range testproc.Pids() {
		if testproc.ParentPid(child) == pid {
			sum += testproc.CPUTimeWithChildren(child)
		}
	}
	return sum
}

// MB formats bytes as MB (2^20).
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
