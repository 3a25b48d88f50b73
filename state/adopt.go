package state

import (
	"context"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Adopt puts blocks made elsewhere (by the Redis the daemon shared until a
// reload moved its state to the file alone) into the store and commits
// them to the file, in one transaction, before it returns, as Hit does
// with a block it starts. When the store already has a block in force for
// the same rule and key (a copy of the same block, made while Redis was
// unreachable), the two become one: the earlier start, the later end, the
// larger count of messages acted on (a copy's messages are already in the
// count of the block it was pushed to, so they are not added) and the
// samples of both, up to MaxSamples. Blocks that have ended are ignored.
// Adopt returns how many blocks it took.
func (s *Store) Adopt(ctx context.Context, blocks ...Block) (int, error) {
	now := s.now()
	type put struct {
		id string
		v  []byte
	}
	var puts []put
	// wmu: no release or flush batch between the merge and the commit.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	for _, b := range blocks {
		if !b.activeAt(now) || b.Rule == "" || b.Key == "" {
			continue
		}
		key := strings.Clone(b.Key)
		rs := s.rule(b.Rule)
		cur := rs.blocks[key]
		if cur == nil || !cur.activeAt(now) {
			nb := b.clone()
			nb.Key = key
			nb.Samples = nb.Samples[:min(len(nb.Samples), MaxSamples)]
			cur = &nb
			rs.blocks[key] = cur
		} else {
			if b.Since.Before(cur.Since) {
				cur.Since = b.Since
			}
			if b.Until.After(cur.Until) {
				cur.Until = b.Until
			}
			cur.Count = max(cur.Count, b.Count)
			for _, sm := range b.Samples {
				if !slices.Contains(cur.Samples, sm) {
					cur.addSample(sm) // appends only: a snapshot taken meanwhile stays valid
				}
			}
		}
		v, err := encodeBlock(cur)
		if err != nil {
			s.mu.Unlock()
			return 0, fmt.Errorf("encoding the adopted block %s: %w", ID(b.Rule, key), err)
		}
		puts = append(puts, put{ID(b.Rule, key), v})
	}
	s.mu.Unlock()
	if len(puts) == 0 {
		return 0, nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		for _, p := range puts {
			if err := tx.Bucket(bucketBlocks).Put([]byte(p.id), p.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return len(puts), fmt.Errorf("committing %d adopted block(s): %w", len(puts), err)
	}
	return len(puts), nil
}
