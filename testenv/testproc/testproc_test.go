package testproc

import (
	"context"
	"net"
	"os"
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
