package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// TestFloorNegotiatesLikeLoopbreaker keeps the floor milter (floor/floor.c)
// and loopbreaker from drifting apart: the go-milter client, offering what
// Postfix 3.7 offers, must get the same negotiation reply from both, byte
// for byte (version, actions, protocol steps, macro requests per stage),
// and both must pass an ordinary message.
func TestFloorNegotiatesLikeLoopbreaker(t *testing.T) {
	dir := t.TempDir()
	bin, err := BuildFloor(t.Context(), dir)
	if errors.Is(err, ErrNoFloor) {
		t.Skipf("%v (bash scripts/deps.sh installs both)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	lb := startLoopbreaker(t)
	want, err := Negotiate(lb.Addr)
	if err != nil {
		t.Fatalf("loopbreaker: %v", err)
	}
	if want.Actions&gomilter.OptSetMacros == 0 || len(want.Macros) != 7 {
		t.Fatalf("loopbreaker negotiated %v and macros %v", want.Actions, want.Macros)
	}
	t.Logf("loopbreaker: % x", want.Raw)
	for _, c := range []struct {
		name           string
		unix, quickack bool
	}{{"floor", false, true}, {"floor-stock", false, false}, {"floor-unix", true, false}} {
		fl, err := StartFloor(t.Context(), c.name, dir, bin, c.unix, c.quickack)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// libmilter takes up to 5 s to act on SIGTERM: all stop at once.
		stopped := make(chan struct{})
		t.Cleanup(func() { <-stopped })
		go func() { <-t.Context().Done(); fl.Proc.Stop(); close(stopped) }()
		got, err := Negotiate(fl.Addr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got.Raw, want.Raw) {
			t.Errorf("%s negotiates differently from loopbreaker:\n floor       % x\n loopbreaker % x\n floor:       version %d, %v, %v, macros %v\n loopbreaker: version %d, %v, %v, macros %v",
				c.name, got.Raw, want.Raw, got.Version, got.Actions, got.Protocol, got.Macros, want.Version, want.Actions, want.Protocol, want.Macros)
		}
	}
}

func TestFloorTable(t *testing.T) {
	cell := func(name string, e2e ...float64) *PostfixCell {
		return &PostfixCell{Name: name, EndToEnd: e2e, Inject: e2e, Messages: 10, PostfixCPU: 10 * time.Millisecond}
	}
	r := &PostfixResult{Sessions: 1, Cells: []*PostfixCell{cell("no milter", 300, 300), cell("loopbreaker", 100, 200),
		cell("floor", 200, 200), cell("floor stock", 20, 20)}}
	var out strings.Builder
	WriteFloorTable(&out, r)
	for _, want := range []string{"| loopbreaker vs floor | **0.75×** (0.50–1.00) | 1.00× |", "| floor stock | 50.00 ms | 46.67 ms | **yes** |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
