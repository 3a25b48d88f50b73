package e2e

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestSIGTERMLetsSessionsInProgressFinish: a milter session is in the middle
// of a message when the daemon gets SIGTERM; the daemon stops accepting new
// connections, answers the session to the end, then exits.
func TestSIGTERMLetsSessionsInProgressFinish(t *testing.T) {
	requirePostfix(t) // for the daemon binary built in TestMain
	h := startHub(t)
	d := h.daemon
	c := gomilter.NewClient("tcp", d.Addr, gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptAddRcpt|gomilter.OptRemoveRcpt|gomilter.OptQuarantine|gomilter.OptSetMacros))
	s, err := c.Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(_ *gomilter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Conn("mx", gomilter.FamilyInet, 25, "192.0.2.1"))
	must(s.Helo("mx"))
	must(s.Mail("alice@corp.example", ""))
	must(s.Rcpt("bob@outside.example", ""))
	must(s.DataStart())
	must(s.HeaderField("Subject", "hello", nil))

	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.WaitLog(ctx, "shutting down; waiting for sessions in progress", 1); err != nil {
		t.Fatal(err)
	}
	// No new connections...
	refusing, cancelRefusing := context.WithTimeout(ctx, 10*time.Second)
	defer cancelRefusing()
	if err := testproc.Poll(refusing, "the daemon to refuse new connections after SIGTERM", func(context.Context) error {
		conn, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err != nil {
			return nil
		}
		conn.Close()
		return errors.New("still accepts")
	}); err != nil {
		t.Fatal(err)
	}
	// ...but the session in progress is answered to the end.
	must(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
	if err != nil || act.Type != gomilter.ActionAccept || len(mods) != 0 {
		t.Fatalf("in-flight message after SIGTERM: %v %+v %v", act, mods, err)
	}
	s.Close()
	if err := d.WaitLog(ctx, `msg=stopped`, 1); err != nil {
		t.Fatal(err)
	}
}
