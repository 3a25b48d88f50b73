package scenario

// fleet.go: the fleet scenario's faults and figures. Six hubs, each with its
// own loopbreaker, share one Redis Cluster; the list loop runs over all of
// them. Two things break on the way, each at a moment read from what the
// run shows (a log line, a count in Redis), never after a delay:
//
//   - at the first NDR a loopbreaker decides on, the last hub's
//     loopbreaker is killed: its Postfix applies milter_default_action =
//     tempfail, so the outside hands what it routed there to the next hub
//     of its list;
//   - once the second loop (the list post sent when the first block
//     started) has 3 hits in its ndrs-per-original window, the Redis
//     master holding that window is killed; its replica takes over while
//     the daemons count in their state files.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
)

// FleetHubs is the fleet scenario's default number of hubs.
const FleetHubs = 6

// fleetKillAt is how many hits loop 2's ndrs-per-original window has when
// its Redis master is killed: mid-loop, below the rule's limit of 10.
const fleetKillAt = 3

// Fault is one thing the fleet scenario broke, or saw recover, and when.
type Fault struct {
	Time time.Time
	What string
}

// fleetFaults breaks a fleet during its run: start watches for the first
// NDR, step is called from watch at every tick.
type fleetFaults struct {
	masterKilled bool
	// failover runs the goroutines that wait for the faults' effects;
	// stopWatch ends the wait for the first NDR.
	failover  sync.WaitGroup
	stopWatch context.CancelFunc

	mu     sync.Mutex
	faults []Fault
}

func (f *fleetFaults) add(what string) {
	f.mu.Lock()
	f.faults = append(f.faults, Fault{Time: time.Now(), What: what})
	f.mu.Unlock()
}

// wait stops watching, waits for a failover under way and returns the
// faults.
func (f *fleetFaults) wait() []Fault {
	if f.stopWatch != nil {
		f.stopWatch()
	}
	f.failover.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Fault(nil), f.faults...)
}

// start kills the last hub's loopbreaker as soon as any loopbreaker logs
// its first decision on a bounce: the first NDR of loop 1. It waits on the
// logs (every 20 ms) rather than at watch's ticks, so that the kill comes
// well before the next NDR, a round of the loop later (about 150 ms here),
// can be inside the daemon killed: loop 1's count is Redis's alone.
func (f *fleetFaults) start(ctx context.Context, w *World) {
	wctx, cancel := context.WithCancel(ctx)
	f.stopWatch = cancel
	first := make(chan int, len(w.Daemons))
	for i, d := range w.Daemons {
		f.failover.Go(func() {
			if d.WaitLog(wctx, `"kind":"bounce"`, 1) == nil {
				first <- i
			}
		})
	}
	f.failover.Go(func() {
		select {
		case i := <-first:
			cancel()
			last := len(w.Daemons) - 1
			w.Daemons[last].Kill()
			name := HubName(last, len(w.Daemons))
			f.add(fmt.Sprintf("%s's loopbreaker killed (SIGKILL) at the first NDR decided (by %s's): %s's Postfix applies milter_default_action = %s",
				name, HubName(i, len(w.Daemons)), name, w.cfg.MilterDefaultAction))
		case <-wctx.Done():
		}
	})
}

// step kills the Redis master holding loop 2's count once it has
// fleetKillAt hits.
func (f *fleetFaults) step(ctx context.Context, w *World) error {
	if f.masterKilled || w.Cluster == nil {
		return nil
	}
	posts := 0
	loop2 := ""
	for _, s := range w.Submissions() {
		if s.Kind == "ordinary" && len(s.To) == 1 && strings.EqualFold(s.To[0], List) {
			if posts++; posts == 2 {
				loop2 = s.MessageID
			}
		}
	}
	if loop2 == "" {
		return nil
	}
	node, key, hits, err := countingNode(ctx, w.Cluster, "ndrs-per-original", loop2)
	if err != nil || node == nil || hits < fleetKillAt {
		return err
	}
	f.masterKilled = true
	slot, err := node.Do(ctx, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return fmt.Errorf("CLUSTER KEYSLOT %q: %w", key, err)
	}
	node.Kill()
	f.add(fmt.Sprintf("Redis master %s killed (SIGKILL): it serves slot %v, which holds %q, loop 2's ndrs-per-original window, at %d hits",
		node.Addr, slot, key, hits))
	start := time.Now()
	f.failover.Go(func() {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := w.Cluster.WaitFailover(fctx, node); err != nil {
			f.add("no failover: " + err.Error())
			return
		}
		f.add(fmt.Sprintf("its replica serves slot %v: the cluster is healthy again %.1fs after the kill", slot, time.Since(start).Seconds()))
	})
	return nil
}

// countingNode finds the live master holding the window of rule for the
// original message msgID (its key carries the rule and the Message-ID, and
// a bucket's hash tag): the node, the key and the hits in the window.
func countingNode(ctx context.Context, c *redisserver.Cluster, rule, msgID string) (*redisserver.Node, string, int64, error) {
	masters, err := c.Masters(ctx)
	if err != nil {
		return nil, "", 0, fmt.Errorf("finding the masters: %w", err)
	}
	want := strings.ToLower(strings.Trim(msgID, "<>"))
	for _, m := range masters {
		v, err := m.Do(ctx, "KEYS", "*w:"+rule+"*")
		if err != nil {
			return nil, "", 0, fmt.Errorf("KEYS on %s: %w", m.Addr, err)
		}
		keys, _ := v.([]any)
		for _, k := range keys {
			key, _ := k.(string)
			if !strings.Contains(strings.ToLower(key), want) {
				continue
			}
			n, err := m.Do(ctx, "ZCARD", key)
			if err != nil {
				return nil, "", 0, fmt.Errorf("ZCARD %q on %s: %w", key, m.Addr, err)
			}
			hits, _ := n.(int64)
			return m, key, hits, nil
		}
	}
	return nil, "", 0, nil
}

// FleetBound is the most NDRs a loop may pass in a fleet of daemons whose
// shared count is lost for a while (a master killed, its replica taking
// over) against a limit: the redisstore failover bound with one message
// in flight per daemon (a list loop is one chain: one NDR at a time).
// Before the kill and after the recovery the count is Redis's: at most
// limit pass there. During the outage each daemon counts in its own
// state file from zero: at most limit more at each. The hits the old
// master had not replicated are lost with it: at most one per daemon.
func FleetBound(daemons, limit int) int { return limit + daemons*limit + daemons }

// LoopNDRs counts the NDRs loopbreaker passed and refused in each of a
// list loop's two loops: the first, from the post that starts the run,
// ends at the first block (the NDR that starts it is refused and the
// outside cannot bounce a bounce); the second is the post sent right
// after, so every NDR decided later is its.
func (r *Result) LoopNDRs() (loop1, loop2 LoopCount) {
	first, ok := r.FirstBlock()
	for _, d := range r.Decisions {
		if d.Kind != "bounce" {
			continue
		}
		l := &loop1
		if ok && d.Time.After(first.Time) {
			l = &loop2
		}
		if d.Acted() {
			l.Refused++
		} else {
			l.Passed++
		}
	}
	return loop1, loop2
}

// LoopCount is what loopbreaker did with one loop's NDRs.
type LoopCount struct {
	Passed, Refused int
}

// HubNDRs counts the NDRs the hubs' bounce daemons made.
func (r *Result) HubNDRs() int {
	if len(r.Hubs) == 0 {
		return r.Ledger.NDRs["hub"]
	}
	n := 0
	for _, h := range r.Hubs {
		n += r.Ledger.NDRs[h]
	}
	return n
}
