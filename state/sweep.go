package state

import (
	"runtime"
	"runtime/debug"
)

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
	shrunk := false
	defer func() {
		if shrunk {
			// The old maps are garbage now, and the heap's next goal
			// was set while both the old and the new one were live:
			// collect and give the memory back at once (a sweep that
			// dropped half of at least shrinkMin keys is rare).
			debug.FreeOSMemory()
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := make([]*ruleState, 0, len(s.rules))
	for _, rs := range s.rules {
		rules = append(rules, rs)
	}
	seen := 0
	for _, rs := range rules {
		rs.noteSize()
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
				rs.delWindow(key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
		for key, b := range rs.blocks {
			if !b.activeAt(now) {
				delete(rs.blocks, key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
		shrunk = s.shrink(rs) || shrunk
	}
}

// shrink remakes the maps of rs's windows and second hits when the sweep
// left them less than half full, so that the room they grew to goes back
// to the heap (a Go map never gives it back). It copies sweepSlice keys
// per hold of the store's lock, as Sweep looks at them (a copy of 500,000
// keys at once held it for 160-190 ms), and makes the new map with the
// lock let go; meanwhile every write goes to both
// maps (setWindow and the others), so the new map is exact when the copy
// ends. The strings are shared, not copied. It reports whether it remade
// a map. Call with mu held.
func (s *Store) shrink(rs *ruleState) bool {
	windows, one := rs.shrinkDue()
	if windows {
		// The new map is made with the lock let go: making room for
		// 500,000 keys in fresh memory took 76-95 ms (its page faults).
		// A placeholder takes the writes meanwhile (and claims the
		// shrink: shrinkDue says no to another Sweep).
		rs.nextWindows = map[string]slot{}
		n := len(rs.windows)
		s.mu.Unlock()
		m := make(map[string]slot, n)
		s.mu.Lock()
		for k, v := range rs.nextWindows {
			m[k] = v
		}
		rs.nextWindows = m
		n = 0
		for k := range rs.windows {
			if n++; n%sweepSlice == 0 {
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
			}
			// The value now, not the iteration's: it may have changed
			// while the lock was let go (a key deleted meanwhile is not
			// visited).
			if v, ok := rs.windows[k]; ok {
				rs.nextWindows[k] = v
			}
		}
		rs.windows, rs.nextWindows = rs.nextWindows, nil
		rs.high = len(rs.windows)
	}
	// Asked again: the lock was let go, another Sweep may have begun it.
	if _, one = rs.shrinkDue(); one {
		rs.nextOne = map[string]int64{}
		n := len(rs.one)
		s.mu.Unlock()
		m := make(map[string]int64, n)
		s.mu.Lock()
		for k, t := range rs.nextOne {
			m[k] = t
		}
		rs.nextOne = m
		n = 0
		for k := range rs.one {
			if n++; n%sweepSlice == 0 {
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
			}
			if t, ok := rs.one[k]; ok {
				rs.nextOne[k] = t
			}
		}
		rs.one, rs.nextOne = rs.nextOne, nil
		rs.highOne = len(rs.one)
	}
	return windows || one
}
