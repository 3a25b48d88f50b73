package state

import "runtime"

// sweepSlice is how many keys Sweep looks at per hold of the store's lock.
const sweepSlice = 10_000

// Sweep drops windows with no hit inside their window and expired blocks,
// from memory and (at the next flush) from the file. It looks at sweepSlice
// keys per hold of the store's lock, so a sweep of a million keys does not
// stop the messages for its whole length. It only changes memory, so it
// cannot fail; the flush that deletes from the file reports its errors.
func (s *Store) Sweep() {
	now := s.now()
	nowMs := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := make([]*ruleState, 0, len(s.rules))
	for _, rs := range s.rules {
		rules = append(rules, rs)
	}
	seen := 0
	for _, rs := range rules {
		for key, v := range rs.windows {
			if seen++; seen%sweepSlice == 0 {
				// Let the messages waiting for the lock in. The map may
				// change meanwhile; Go's map iteration allows that (a key
				// deleted meanwhile is not visited, one added may be).
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
				var ok bool
				if v, ok = rs.windows[key]; !ok {
					continue
				}
			}
			if !rs.prune(key, v, nowMs) {
				delete(rs.windows, key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
		for key, b := range rs.blocks {
			if !b.activeAt(now) {
				delete(rs.blocks, key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
	}
}
