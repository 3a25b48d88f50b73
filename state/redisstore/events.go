package redisstore

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
)

// The fleet's audit trail: every daemon adds its events to one capped
// stream, PREFIX events (XADD MAXLEN ~ state.MaxEvents), each entry with
// the daemon's name (field mta) and the event in JSON (field ev). The
// stream is not touched by the scripts: in a cluster it is one key like
// any other.

// eventsKey is the stream of the fleet's events.
func (r *Redis) eventsKey() string { return r.prefix + "events" }

// AddEvents appends events to the fleet's trail in one round trip, with
// the name of the MTA that decided them.
func (r *Redis) AddEvents(ctx context.Context, mta string, evs []state.Event) error {
	if len(evs) == 0 {
		return nil
	}
	pipe := r.c.Pipeline()
	for _, ev := range evs {
		ev.MTA, ev.Seq = "", 0
		v, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.eventsKey(), MaxLen: state.MaxEvents, Approx: true, Values: []any{"mta", mta, "ev", v}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return r.wrap(err)
	}
	return nil
}

// Events returns up to n (at most state.MaxEvents) of the fleet's most
// recent events, oldest first, each with its MTA; Seq is the entry's place
// in the stream (its ID's milliseconds and sequence number, as one number).
func (r *Redis) Events(ctx context.Context, n int) ([]state.Event, error) {
	if n <= 0 || n > state.MaxEvents {
		n = state.MaxEvents
	}
	// The whole stream (about state.MaxEvents entries: this is for the
	// admin, not per message): the n most recent by time are not the last
	// n added when a daemon sends late what it recorded during an outage.
	xs, err := r.c.XRevRangeN(ctx, r.eventsKey(), "+", "-", 2*state.MaxEvents).Result()
	if err != nil {
		return nil, r.wrap(err)
	}
	evs := make([]state.Event, 0, len(xs))
	for i := len(xs) - 1; i >= 0; i-- {
		var ev state.Event
		raw, _ := xs[i].Values["ev"].(string)
		if json.Unmarshal([]byte(raw), &ev) != nil {
			continue
		}
		ev.MTA, _ = xs[i].Values["mta"].(string)
		ev.Seq = streamSeq(xs[i].ID)
		evs = append(evs, ev)
	}
	// Events a daemon recorded while Redis was unreachable reach the
	// stream late: order by time (stable, so the stream's order stays for
	// equal times).
	slices.SortStableFunc(evs, func(a, b state.Event) int { return a.Time.Compare(b.Time) })
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return evs, nil
}

// streamSeq is a stream ID MS-SEQ as MS<<20 | SEQ: increasing along the stream.
func streamSeq(id string) uint64 {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m<<20 | s&(1<<20-1)
}

// eventQueue holds the events of this daemon not yet in the stream: Record
// must not wait for Redis, so a goroutine sends them, in batches, and keeps
// them while Redis is unreachable (the last state.MaxEvents of them).
type eventQueue struct {
	mu      sync.Mutex
	pending []state.Event
	kick    chan struct{}
}

func (q *eventQueue) add(ev state.Event) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	if len(q.pending) > 2*state.MaxEvents {
		q.pending = slices.Delete(q.pending, 0, len(q.pending)-state.MaxEvents)
	}
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take empties the queue.
func (q *eventQueue) take() []state.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.pending
	q.pending = nil
	if len(evs) > state.MaxEvents {
		evs = evs[len(evs)-state.MaxEvents:]
	}
	return evs
}

// putBack returns events that failed to reach Redis, before newer ones.
func (q *eventQueue) putBack(evs []state.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(evs, q.pending...)
	if len(q.pending) > state.MaxEvents {
		q.pending = q.pending[len(q.pending)-state.MaxEvents:]
	}
}

// eventRetry is how often events kept while Redis was unreachable are
// tried again.
const eventRetry = time.Second

// sendEvents runs until stop: it sends the queued events when Record adds
// some, and every eventRetry while some wait; at stop it tries once more.
func (s *Shared) sendEvents() {
	for {
		select {
		case <-s.stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.flushEvents(ctx)
			cancel()
			return
		case <-s.events.kick:
		case <-time.After(eventRetry):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.flushEvents(ctx)
		cancel()
	}
}

// flushEvents sends the queued events unless Redis is unreachable; the
// ones it fails to send wait for the next try.
func (s *Shared) flushEvents(ctx context.Context) error {
	if s.degraded.Load() {
		return nil
	}
	s.eventsMu.Lock() // one sender at a time: the trail keeps the daemon's order
	defer s.eventsMu.Unlock()
	evs := s.events.take()
	if len(evs) == 0 {
		return nil
	}
	if err := s.redis.AddEvents(ctx, s.opts.Name, evs); err != nil {
		s.events.putBack(evs)
		s.log.Debug("audit events not sent to Redis yet", "events", len(evs), "err", err)
		return err
	}
	return nil
}
