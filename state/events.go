package state

import (
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxEvents is how many decisions the audit trail keeps, in memory and in
// the file.
const MaxEvents = 1000

var bucketEvents = []byte("events")

// Event is one decision worth auditing: a message acted on, or a block
// started or released.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	QueueID string    `json:"queue_id,omitempty"`
	Rule    string    `json:"rule,omitempty"`
	Key     string    `json:"key,omitempty"`
	// Action is what was done: an action, "none" for a decision of
	// monitor mode (see WouldAction), "release" for a lifted block.
	Action string `json:"action"`
	// WouldAction is, for a decision of monitor mode, what enforce mode
	// would have done ("redirect", ...); nothing was done.
	WouldAction string `json:"would_action,omitempty"`
	Count       int    `json:"count,omitempty"`
	Limit       int    `json:"limit,omitempty"`
	// Acted is how many messages the block had acted on with this one.
	Acted   int    `json:"acted,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Sender  string `json:"sender,omitempty"`
	Subject string `json:"subject,omitempty"`
	// NewBlock says the event started a block.
	NewBlock bool `json:"new_block,omitempty"`
	// MTA names the daemon that decided, in a trail shared by several
	// (redisstore.Shared); empty in a daemon's own.
	MTA string `json:"mta,omitempty"`
}

// Record appends an event to the audit trail. It is written to the file
// with the next flush, like the counts.
func (s *Store) Record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	if len(ev.Subject) > maxSubject {
		ev.Subject = ev.Subject[:maxSubject]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventSeq++
	ev.Seq = s.eventSeq
	s.events = trimEvents(append(s.events, ev))
	// Events that fail to reach the file wait for the next flush; beyond
	// MaxEvents they would be trimmed from the file anyway.
	s.pendingEvents = trimEvents(append(s.pendingEvents, ev))
}

// trimEvents keeps the last MaxEvents of evs once it reaches 2*MaxEvents:
// one copy per MaxEvents records instead of one per record, which under
// the store's lock in a storm (every message acted on is recorded) cost
// every other message its wait.
func trimEvents(evs []Event) []Event {
	if len(evs) < 2*MaxEvents {
		return evs
	}
	n := copy(evs, evs[len(evs)-MaxEvents:])
	clear(evs[n:]) // let the strings of the dropped events go
	return evs[:n]
}

// Events returns up to n (at most MaxEvents) of the most recent events,
// newest last.
func (s *Store) Events(n int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if have := min(len(s.events), MaxEvents); n <= 0 || n > have {
		n = have
	}
	return append([]Event(nil), s.events[len(s.events)-n:]...)
}

func eventKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// writeEvents puts new events and drops those past MaxEvents; it runs
// inside the flush transaction.
func writeEvents(tx *bolt.Tx, evs []Event, lastSeq uint64) error {
	b := tx.Bucket(bucketEvents)
	for _, ev := range evs {
		v, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := b.Put(eventKey(ev.Seq), v); err != nil {
			return err
		}
	}
	if lastSeq <= MaxEvents {
		return nil
	}
	cut := eventKey(lastSeq - MaxEvents + 1)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(cut); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// loadEvents reads the trail at start.
func loadEvents(tx *bolt.Tx) ([]Event, uint64) {
	var evs []Event
	var last uint64
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var ev Event
		if json.Unmarshal(v, &ev) == nil {
			evs = append(evs, ev)
		}
		if len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
	}
	if len(evs) > MaxEvents {
		evs = evs[len(evs)-MaxEvents:]
	}
	return evs, last
}
