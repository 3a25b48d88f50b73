package state

import (
	"maps"
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
			if s.yield(&seen) {
				// The map may have changed while the lock was let go;
				// Go's map iteration allows that (a key deleted meanwhile
				// is not visited, one added may be).
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

// yield counts one more key looked at in *seen and, every sweepSlice
// keys, lets the lock go for a moment so that the messages waiting for it
// get in. It reports whether it let the lock go. Call with mu held.
func (s *Store) yield(seen *int) bool {
	if *seen++; *seen%sweepSlice != 0 {
		return false
	}
	s.mu.Unlock()
	runtime.Gosched()
	s.mu.Lock()
	return true
}

// shrink remakes the maps of rs's windows and second hits when the sweep
// left them less than half full, so that the room they grew to goes back
// to the heap (a Go map never gives it back). It reports whether it
// remade a map. Call with mu held.
func (s *Store) shrink(rs *ruleState) bool {
	windows, one := rs.shrinkDue()
	if windows {
		remake(s, &rs.windows, &rs.nextWindows)
		rs.high = len(rs.windows)
	}
	// Asked again: the lock was let go, another Sweep may have begun it.
	if _, one = rs.shrinkDue(); one {
		remake(s, &rs.one, &rs.nextOne)
		rs.highOne = len(rs.one)
	}
	return windows || one
}

// remake replaces *cur by a copy made to its present size, through *next.
// It copies sweepSlice keys per hold of the store's lock, as Sweep looks
// at them (a copy of 500,000 keys at once held it for 160-190 ms), and
// makes the new map with the lock let go (making room for 500,000 keys in
// fresh memory took 76-95 ms, its page faults). Meanwhile every write goes
// to both maps (setWindow and the others write to *next too when it is
// not nil), so the new map is exact when the copy ends; a placeholder in
// *next takes the writes while the new map is made, and claims the remake
// (shrinkDue says no to another Sweep). The strings are shared, not
// copied. Call with mu held.
func remake[V any](s *Store, cur, next *map[string]V) {
	*next = map[string]V{}
	n := len(*cur)
	s.mu.Unlock()
	m := make(map[string]V, n)
	s.mu.Lock()
	maps.Copy(m, *next)
	*next = m
	n = 0
	for k := range *cur {
		s.yield(&n)
		// The value now, not the iteration's: it may have changed while
		// the lock was let go (a key deleted meanwhile is not visited).
		if v, ok := (*cur)[k]; ok {
			m[k] = v
		}
	}
	*cur, *next = m, nil
}
