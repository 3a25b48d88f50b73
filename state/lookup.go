package state

import "sort"

// Blocked reports the block in force for (rule, key) without counting.
func (s *Store) Blocked(rule, key string) (Block, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rules[rule]
	if rs == nil {
		return Block{}, false
	}
	b := rs.blocks[key]
	if b == nil || !b.activeAt(now) {
		return Block{}, false
	}
	return b.clone(), true
}

// Count reports the current count for (rule, key) without counting.
func (s *Store) Count(rule, key string) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.rules[rule]; rs != nil {
		return rs.count(key, now.UnixMilli())
	}
	return 0
}

// Blocks lists the blocks in force, oldest first.
func (s *Store) Blocks() []Block {
	now := s.now()
	s.mu.Lock()
	var out []Block
	for _, rs := range s.rules {
		for _, b := range rs.blocks {
			if b.activeAt(now) {
				out = append(out, b.clone())
			}
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return ID(out[i].Rule, out[i].Key) < ID(out[j].Rule, out[j].Key)
	})
	return out
}

// Stats is a snapshot of the store's size.
type Stats struct {
	Windows int
	Blocks  int
	// Dirty is how many windows wait for the flush (at most: a window
	// released or swept since it changed is counted until the flush).
	Dirty int
}

// Stats reports how many keys are tracked.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Dirty: len(s.dirty)}
	for _, rs := range s.rules {
		st.Windows += len(rs.windows)
		st.Blocks += len(rs.blocks)
	}
	return st
}
