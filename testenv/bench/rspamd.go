package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// RspamdBin is the rspamd of Debian's package (scripts/deps.sh --bench).
const RspamdBin = "/usr/bin/rspamd"

// ErrNoRspamd says that rspamd, the peer, is not installed.
var ErrNoRspamd = errors.New("rspamd is not installed (bash scripts/deps.sh --bench installs Debian's package)")

// RspamdBounceBurst and RspamdBounceRate are the peer's bounce_to bucket:
// the built-in policy's bounces-to-recipient rule (50 bounces to one
// recipient in 10 minutes) as a leaky bucket.
const (
	RspamdBounceBurst = 50
	RspamdBounceRate  = "5 / 1m"
)

// rspamdConf is the peer's whole configuration: the proxy worker as a
// milter that scans by itself (self_scan, no normal worker), no C module
// (filters = ""), no rules, and of the Lua plugins only ratelimit, with a
// bounce_to bucket that matches loopbreaker's bounces-to-recipient rule and
// its buckets in Redis. DNS points nowhere: nothing needs it.
const rspamdConf = `options {
  pidfile = "{{DIR}}/rspamd.pid";
  dbdir = "{{DIR}}/db";
  filters = "";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "{{DIR}}/rspamd.log"; level = "notice"; }
modules { path = "{{DIR}}/plugins"; }
redis { servers = "{{REDIS}}"; }
ratelimit {
  rates {
    bounce_to = { burst = {{BURST}}; rate = "{{RATE}}"; }
  }
}
actions { reject = 15; add_header = 6; greylist = 4; }
worker "rspamd_proxy" {
  bind_socket = "{{ADDR}}";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" { default = yes; self_scan = yes; }
}
`

// StartRspamd runs rspamd as a milter on a loopback port, with a
// configuration of its own under dir (never /etc/rspamd) and its
// ratelimit buckets in the Redis at redisAddr. Its CPU time counts its
// workers (Target.Tree).
func StartRspamd(ctx context.Context, dir, redisAddr string) (*Target, error) {
	if _, err := os.Stat(RspamdBin); err != nil {
		return nil, ErrNoRspamd
	}
	rdir := filepath.Join(dir, "rspamd")
	for _, d := range []string{rdir, filepath.Join(rdir, "db"), filepath.Join(rdir, "plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink("/usr/share/rspamd/plugins/ratelimit.lua", filepath.Join(rdir, "plugins", "ratelimit.lua")); err != nil {
		return nil, err
	}
	port, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	conf := strings.NewReplacer("{{DIR}}", rdir, "{{REDIS}}", redisAddr, "{{ADDR}}", addr,
		"{{BURST}}", strconv.Itoa(RspamdBounceBurst), "{{RATE}}", RspamdBounceRate).Replace(rspamdConf)
	confPath := filepath.Join(rdir, "rspamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-f", "-c", confPath}
	// As root rspamd wants a user to drop to: Debian's _rspamd.
	if u, err := user.Lookup("_rspamd"); err == nil && os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{rdir, filepath.Join(rdir, "db")} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
		args = append(args, "-u", "_rspamd", "-g", "_rspamd")
	} else if os.Geteuid() == 0 {
		args = append(args, "-i")
	}
	// Loading takes 20–30 s (the public suffix list, hyperscan).
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	p, err := StartProc(sctx, "rspamd", dir, addr, RspamdBin, args...)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w (see %s)", err, filepath.Join(rdir, "rspamd.log"))
	}
	return &Target{Name: "rspamd", Addr: addr, Proc: p, Tree: true}, nil
}

// RspamdVersion is what rspamd --version says, or "rspamd".
func RspamdVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, RspamdBin, "--version").Output()
	if err != nil {
		return "rspamd"
	}
	return strings.TrimSpace(string(out))
}
