package state

import (
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Request is one counted event for one rule and key.
type Request struct {
	Rule   string
	Key    string
	Window time.Duration
	// Limit is how many events the window lets through; the (Limit+1)th
	// starts a block.
	Limit int
	// BlockFor is how long a block lasts once started.
	BlockFor time.Duration
	// Subject is kept as a sample on the block, for the admin.
	Subject string
}

// Result is what Hit decided.
type Result struct {
	// Count is the number of events in the window, this one included
	// (capped at Limit+1: older hits beyond that are not kept).
	Count int
	// Blocked says the event falls under a block and is to be acted on.
	Blocked bool
	// NewBlock says this event started the block.
	NewBlock bool
	// Block is a copy of the block in force, when Blocked.
	Block Block
}

// Hit counts one event and reports whether it is blocked. Counting and the
// limit check are one atomic step, so with any number of concurrent callers
// exactly Limit events of a storm pass. A block that this call starts is
// committed to the file before Hit returns.
func (s *Store) Hit(ctx context.Context, r Request) (Result, error) {
	if r.Limit < 0 || r.Window <= 0 {
		return Result{}, fmt.Errorf("state: invalid request for rule %q: limit %d window %s", r.Rule, r.Limit, r.Window)
	}
	now := s.now()
	span := max(r.Window.Milliseconds(), 1)
	key := strings.Clone(r.Key) // allocated before the lock is taken

	s.mu.Lock()
	rs := s.rule(r.Rule)
	rs.span = span
	count, marked := rs.add(r.Key, key, now.UnixMilli(), r.Limit)
	if marked {
		s.dirty = append(s.dirty, ruleKey{rs, key})
	}

	if b := rs.blocks[key]; b != nil && b.activeAt(now) {
		b.Count++
		b.addSample(r.Subject)
		res := Result{Count: count, Blocked: true, Block: b.clone()}
		s.mu.Unlock()
		return res, nil
	}
	if count <= r.Limit {
		s.mu.Unlock()
		return Result{Count: count}, nil
	}
	b := &Block{
		Rule:   r.Rule,
		Key:    key,
		Since:  now,
		Until:  now.Add(r.BlockFor),
		Count:  1,
		Limit:  r.Limit,
		Window: r.Window,
	}
	b.addSample(r.Subject)
	rs.blocks[key] = b
	res := Result{Count: count, Blocked: true, NewBlock: true, Block: b.clone()}
	s.mu.Unlock()

	// Durable before anyone acts on it. Other messages already see the block
	// in memory, so exactness does not wait for the disk.
	if err := s.putBlock(ctx, rs, key, b); err != nil {
		return res, fmt.Errorf("committing block %s: %w", ID(r.Rule, key), err)
	}
	return res, nil
}

// putBlock commits b unless it was released in the meantime.
func (s *Store) putBlock(ctx context.Context, rs *ruleState, key string, b *Block) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	current := rs.blocks[key] == b
	v, err := encodeBlock(b)
	s.mu.Unlock()
	if err != nil || !current {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put([]byte(ID(rs.name, key)), v)
	})
}
