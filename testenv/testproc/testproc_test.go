package testproc

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFreePortLoopbackOnly(t *testing.T) {
	ctx := context.Background()
	port, err := FreePort(ctx, "")
	if err != nil || port == 0 {
		t.Fatalf("FreePort: %d, %v", port, err)
	}
	if _, err := FreePort(ctx, "0.0.0.0"); err == nil {
		t.Error("FreePort accepted a non-loopback address")
	}
}

func TestBanner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 test ESMTP\r\n"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := WaitForBanner(ctx, ln.Addr().String())
	if err != nil || got != "220 test ESMTP" {
		t.Fatalf("WaitForBanner: %q, %v", got, err)
	}
}

func TestProc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start("sh", "", "/bin/sh", "-c", `echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog(ctx, "started", 1); err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.Pid() == 0 {
		t.Fatal("not running")
	}
	if err := p.Start(); err == nil {
		t.Error("a second Start while running succeeded")
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Log(), "bye") {
		t.Errorf("log %q lacks the TERM handler's line", p.Log())
	}
	// Started again, with its output in a file.
	p.LogFile = t.TempDir() + "/log"
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog(ctx, "started", 1); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if p.Running() {
		t.Error("running after Kill")
	}
	if b, _ := os.ReadFile(p.LogFile); !strings.Contains(string(b), "started") {
		t.Errorf("log file %q", b)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Fatal(err)
	}
}

func TestFreePortWithPeer(t *testing.T) {
	ctx := context.Background()
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePortWithPeer(ctx, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if p < 20000 || p+10000 > 65535 {
			t.Fatalf("port %d: its peer %d is out of range", p, p+10000)
		}
		if seen[p] || seen[p+10000] {
			t.Fatalf("port %d or its peer handed out twice", p)
		}
		seen[p], seen[p+10000] = true, true
	}
	if _, err := FreePortWithPeer(ctx, "", 0); err == nil {
		t.Error("offset 0 accepted")
	}
}

func TestPollFinal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	if err := Poll(ctx, "the third call", func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll: %v after %d calls", err, calls)
	}
	gone := errors.New("gone")
	calls = 0
	if err := Poll(ctx, "nothing", func(context.Context) error { calls++; return Final(gone) }); !errors.Is(err, gone) || calls != 1 {
		t.Fatalf("Poll with Final: %v after %d calls", err, calls)
	}
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if err := Poll(short, "an event", func(context.Context) error { return errors.New("last") }); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last") {
		t.Fatalf("Poll past its context: %v", err)
	}
}

func TestProcEnvAndExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &Proc{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", `echo "v=$TESTPROC_V"; exit 3`}, Env: []string{"TESTPROC_V=42"}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	err := p.WaitReady(ctx, func(context.Context) error { return errors.New("never ready") })
	if err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Fatalf("WaitReady of a process that exits: %v", err)
	}
	if !strings.Contains(p.Log(), "v=42") {
		t.Errorf("log %q lacks the variable of Env", p.Log())
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			b.Write([]byte("x"))
		}
	}()
	for range 100 {
		_ = b.String()
	}
	<-done
	if got := b.String(); got != strings.Repeat("x", 100) {
		t.Fatalf("Buffer holds %q", got)
	}
}

func TestStatus(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if rss := Status(0)["VmRSS"]; rss <= 0 {
		t.Fatalf("VmRSS of this process %d", rss)
	}
	if got := Status(os.Getpid())["VmRSS"]; got <= 0 {
		t.Fatalf("VmRSS by pid %d", got)
	}
}

// TestLongestStall: a probe held up by f counts with all the time f held
// it (at least the time f saw it wait), and f runs once, to its end.
func TestLongestStall(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var probeStart time.Time
	first := true
	var held time.Duration
	ran := 0
	worst := LongestStall(func() {
		if first {
			first = false
			probeStart = time.Now()
			close(entered)
			<-release
		}
	}, func() {
		ran++
		<-entered
		held = time.Since(probeStart)
		close(release)
	})
	if ran != 1 || worst < held {
		t.Fatalf("f ran %d times; worst stall %v, less than the %v the probe was held", ran, worst, held)
	}
}

func TestProcStat(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	pid := os.Getpid()
	if got := ParentPid(pid); got != os.Getppid() {
		t.Errorf("ParentPid = %d, want %d", got, os.Getppid())
	}
	if !slices.Contains(Pids(), pid) {
		t.Error("Pids lacks this process")
	}
	if own, with := CPUTime(pid), CPUTimeWithChildren(pid); with < own {
		t.Errorf("CPU time with children %v below its own %v", with, own)
	}
	if got := CPUTime(-1); got != 0 {
		t.Errorf("CPUTime of no process = %v", got)
	}
}
