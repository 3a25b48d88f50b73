package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestFleetEvents: the daemons sharing Redis share one audit trail, each
// event with its MTA's name; a daemon's events recorded while Redis is
// down are in its own trail meanwhile and reach the fleet's when Redis is
// back; the trail is capped.
func TestFleetEvents(t *testing.T) {
	rs := redisserver.MustStart(t)
	c := newClock()
	a, _ := daemon(t, rs.URL(0), c, SharedOptions{Name: "mta-a"})
	b, _ := daemon(t, rs.URL(0), c, SharedOptions{Name: "mta-b"})
	for i, d := range []*Shared{a, b, a, b, a} {
		d.Record(state.Event{Rule: "fwd", Key: fmt.Sprint("k", i), Action: "quarantine", QueueID: fmt.Sprint("Q", i)})
		c.Advance(time.Second)
	}
	// sent waits for the daemons' events to be in Redis: each sends its
	// own in the background, so another daemon sees them a moment later.
	sent := func(ds ...*Shared) {
		t.Helper()
		for _, d := range ds {
			if err := d.flushEvents(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(d *Shared, n int, want ...string) {
		t.Helper()
		evs := d.Events(n)
		var got []string
		for _, ev := range evs {
			got = append(got, ev.MTA+"/"+ev.QueueID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Events(%d) = %v, want %v", n, got, want)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq <= evs[i-1].Seq && evs[i].Time.Equal(evs[i-1].Time) {
				t.Fatalf("seq not increasing: %+v", evs)
			}
		}
	}
	sent(a)
	check(b, 10, "mta-a/Q0", "mta-b/Q1", "mta-a/Q2", "mta-b/Q3", "mta-a/Q4")
	check(a, 2, "mta-b/Q3", "mta-a/Q4")
	// Each daemon's state file keeps its own, named.
	if evs := a.Local().Events(0); len(evs) != 3 || evs[0].MTA != "mta-a" {
		t.Fatalf("A's own trail: %+v", evs)
	}

	rs.Kill()
	b.Record(state.Event{Rule: "fwd", Key: "k5", Action: "quarantine", QueueID: "Q5"})
	c.Advance(time.Second)
	if _, err := b.Hit(context.Background(), req("x")); err != nil {
		t.Fatal(err)
	}
	if !b.Degraded() {
		t.Fatal("B not degraded with Redis down")
	}
	check(b, 10, "mta-b/Q1", "mta-b/Q3", "mta-b/Q5")
	if err := rs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b)
	waitShared(t, a)
	// Redis came back empty: B's event of the outage is sent, in the
	// background, at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = testproc.Poll(ctx, "B's event of the outage in the stream", func(context.Context) error {
		if len(a.Events(10)) == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	check(a, 10, "mta-b/Q5") // says what is missing when the wait ended without it

	// Capped at state.MaxEvents.
	for i := 0; i < state.MaxEvents+300; i++ {
		a.Record(state.Event{Action: "quarantine", QueueID: fmt.Sprint("C", i)})
	}
	sent(a)
	evs := b.Events(0)
	if len(evs) != state.MaxEvents || evs[len(evs)-1].QueueID != fmt.Sprint("C", state.MaxEvents+299) {
		t.Fatalf("%d events, last %+v", len(evs), evs[len(evs)-1])
	}
	if n, _ := a.Redis().c.XLen(context.Background(), a.Redis().eventsKey()).Result(); n > state.MaxEvents+200 {
		t.Fatalf("the stream holds %d entries", n)
	}
}
