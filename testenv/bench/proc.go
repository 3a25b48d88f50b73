package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// Build builds the main package pkg (e.g. "./cmd/loopbreaker") of this
// module into dir, without the race detector: benchmarks measure the binary
// a postmaster runs.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	return testenv.Build(ctx, dir, pkg, false)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Network is "unix" for an absolute path (a unix socket), else "tcp".
func Network(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "unix"
	}
	return "tcp"
}

// Proc is a milter (or other server) process started by the benchmark, its
// output going to a log file as a daemon's would go to the journal.
type Proc struct {
	Name string
	Addr string // 127.0.0.1:PORT it listens on, or the path of its unix socket
	Log  string // its log file
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc runs bin with args, logging to dir/NAME.log, and waits until
// addr accepts connections.
func StartProc(ctx context.Context, name, dir, addr, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &Proc{Name: name, Addr: addr, Log: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	for {
		c, err := net.DialTimeout(Network(addr), addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited at start:\n%s", name, b)
		case <-ctx.Done():
			p.Kill()
			return nil, fmt.Errorf("%s did not listen on %s: %w", name, addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to 40 s, then kills.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// CPUTime is the user+system CPU time the process has used so far.
func (p *Proc) CPUTime() time.Duration { return ProcCPUTime(p.Pid()) }

// RSS is the process's resident set size in bytes.
func (p *Proc) RSS() int64 {
	m := ProcStatus(p.Pid())
	return m["VmRSS"]
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// ProcCPUTime reads utime+stime of pid from /proc/PID/stat.
func ProcCPUTime(pid int) time.Duration { return procCPU(pid, false) }

// procCPU reads utime+stime of pid, plus cutime+cstime (its reaped
// children) when children is set.
func procCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	last := 12
	if children {
		last = 14
	}
	for k := 11; k <= last; k++ {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// TreeCPUTime is the CPU time used so far by the processes whose
// environment holds env (e.g. MAIL_CONFIG=/path: every process of a
// Postfix instance), including their children that have exited. A
// process that exits moves its time into its parent's children time, so
// the sum over the living processes never loses or counts time twice.
func TreeCPUTime(env string) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := []byte(env)
	var sum time.Duration
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, v := range bytes.Split(b, []byte{0}) {
			if bytes.Equal(v, want) {
				sum += procCPU(pid, true)
				break
			}
		}
	}
	return sum
}

// ProcStatus reads the kB fields of /proc/PID/status (VmRSS, RssAnon,
// RssFile, VmHWM, ...) in bytes; pid 0 is this process.
func ProcStatus(pid int) map[string]int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	out := map[string]int64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 2 && fs[1] == "kB" {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// MB formats bytes as MB (2^20).
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
