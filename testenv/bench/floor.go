package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// floorSource is the floor milter: a do-nothing milter on libmilter that
// negotiates what loopbreaker negotiates (floor/floor.c).
//
//go:embed floor/floor.c
var floorSource []byte

// LibmilterHeader is what Debian's libmilter-dev installs; the floor needs it.
const LibmilterHeader = "/usr/include/libmilter/mfapi.h"

// ErrNoFloor says why the floor milter cannot be built here.
var ErrNoFloor = errors.New("the floor milter needs a C compiler (cc) and libmilter-dev")

// BuildFloor compiles floor/floor.c with cc against libmilter into dir.
func BuildFloor(ctx context.Context, dir string) (string, error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("%w: no cc: %v", ErrNoFloor, err)
	}
	if _, err := os.Stat(LibmilterHeader); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoFloor, err)
	}
	src := filepath.Join(dir, "floor.c")
	if err := os.WriteFile(src, floorSource, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "floor")
	out, err := exec.CommandContext(ctx, cc, "-O2", "-Wall", "-o", bin, src, "-lmilter", "-lpthread").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cc floor.c: %w\n%s", err, out)
	}
	return bin, nil
}

// StartFloor runs the floor milter binary bin: on a unix socket under dir
// (group postfix, so that Postfix's smtpd reaches it) when unix is set,
// else on a loopback port, with TCP_QUICKACK after every read when
// quickack is set (as loopbreaker does) or as stock libmilter when not.
func StartFloor(ctx context.Context, name, dir, bin string, unix, quickack bool) (*Target, error) {
	sockDir := ""
	if unix {
		sockDir = filepath.Join(dir, name+"-sock")
		if err := os.MkdirAll(sockDir, 0o755); err != nil {
			return nil, err
		}
	}
	addr, spec, err := MilterSocket(ctx, sockDir)
	if err != nil {
		return nil, err
	}
	args := []string{"-p", spec}
	if quickack {
		args = append([]string{"-q"}, args...)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := StartProc(sctx, name, dir, addr, bin, args...)
	if err != nil {
		return nil, err
	}
	if unix {
		if err := chownPostfix(addr); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return &Target{Name: name, Addr: addr, Proc: p}, nil
}

// chownPostfix gives a milter's unix socket to the postfix group (smtpd
// runs as postfix), where there is one.
func chownPostfix(path string) error {
	g, err := user.LookupGroup("postfix")
	if err != nil {
		return nil // no Postfix here: nothing but this process connects
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Chown(path, 0, gid); err != nil {
		return err
	}
	return os.Chmod(path, 0o660)
}

// Negotiation is what a milter answered to Postfix 3.7's option
// negotiation, as the go-milter client reads it off the wire.
type Negotiation struct {
	Raw      []byte // the whole SMFIC_OPTNEG reply packet, length prefix included
	Version  uint32
	Actions  gomilter.OptAction
	Protocol gomilter.OptProtocol
	Macros   map[uint32]string // requested macros by stage (SMFIM_*)
}

// recordingDialer keeps the first bytes the milter sends on each
// connection: the reply to the option negotiation.
type recordingDialer struct {
	mu  sync.Mutex
	got bytes.Buffer
}

type recordingConn struct {
	net.Conn
	d *recordingDialer
}

func (d *recordingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, d: d}, nil
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.d.mu.Lock()
	c.d.got.Write(p[:n])
	c.d.mu.Unlock()
	return n, err
}

// Negotiate drives one ordinary message through the milter at addr with
// the go-milter client configured as Postfix 3.7 offers itself
// (NewPostfixLikeClient): the milter must pass it. It returns the milter's
// reply to the option negotiation, as read off the wire.
func Negotiate(addr string) (*Negotiation, error) {
	d := &recordingDialer{}
	c := NewPostfixLikeClient(addr, gomilter.WithDialer(d))
	t, err := sendOne(c, postfixMacros(), Ordinary(1), 1)
	if err != nil {
		return nil, err
	}
	if t.Outcome != Passed {
		return nil, fmt.Errorf("the milter %s an ordinary message", t.Outcome)
	}
	d.mu.Lock()
	raw := append([]byte(nil), d.got.Bytes()...)
	d.mu.Unlock()
	if len(raw) < 4 {
		return nil, fmt.Errorf("negotiation reply of %d bytes", len(raw))
	}
	n := int(binary.BigEndian.Uint32(raw)) + 4
	if n > len(raw) || n < 4+1+12 || raw[4] != 'O' {
		return nil, fmt.Errorf("not a negotiation reply: % x", raw)
	}
	raw = raw[:n]
	neg := &Negotiation{Raw: raw, Version: binary.BigEndian.Uint32(raw[5:]),
		Actions: gomilter.OptAction(binary.BigEndian.Uint32(raw[9:])), Protocol: gomilter.OptProtocol(binary.BigEndian.Uint32(raw[13:])),
		Macros: map[uint32]string{}}
	for rest := raw[17:]; len(rest) > 4; {
		st := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, fmt.Errorf("macro list without NUL: % x", raw)
		}
		neg.Macros[st] = string(rest[:i])
		rest = rest[i+1:]
	}
	return neg, nil
}

// MilterSocket picks where a milter under test listens: a unix socket
// milter.sock in dir, or with dir "" a free loopback TCP port. addr is for
// dialing, spec in the milter's own syntax (unix:PATH, inet:PORT@HOST).
func MilterSocket(ctx context.Context, dir string) (addr, spec string, err error) {
	if dir != "" {
		addr = filepath.Join(dir, "milter.sock")
		return addr, "unix:" + addr, nil
	}
	port, err := testproc.FreePort(ctx, "")
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("inet:%d@127.0.0.1", port), nil
}
