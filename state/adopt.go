package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Adopt puts a block made elsewhere (by the Redis the daemon shared until a
// reload moved it to its state file alone) into the store and commits it to
// the file before it returns, as Hit does with a block it starts. When the
// store already has a block in force for the same rule and key (a copy of
// the same block, made while Redis was unreachable), the two become one:
// the earlier start, the later end, the larger count of messages acted on
// (a copy's messages are already in the count of the block it was pushed
// to, so they are not added) and the samples of both, up to MaxSamples. A
// block that has ended is ignored. Adopt reports whether the store took
// anything.
func (s *Store) Adopt(ctx context.Context, b Block) (bool, error) {
	now := s.now()
	if !b.activeAt(now) || b.Rule == "" || b.Key == "" {
		return false, nil
	}
	key := strings.Clone(b.Key)
	s.mu.Lock()
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
	s.mu.Unlock()
	if err := s.putBlock(ctx, rs, key, cur); err != nil {
		return true, fmt.Errorf("committing the adopted block %s: %w", ID(b.Rule, key), err)
	}
	return true, nil
}
