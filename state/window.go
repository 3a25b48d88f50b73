package state

import (
	"encoding/binary"
	"errors"
)

// The windows of one rule. A key's window holds the times of its most recent
// hits, as Unix milliseconds: at most limit+1 of them, which is all an exact
// "more than limit in the window" check needs, and which bounds memory for a
// storm.
//
// Most tracked keys have a single hit in their window (a million senders,
// one message each), so a key costs one map entry whose value is one word
// (a slot) holding the newest hit; the hits before it are kept only for the
// keys that have them: one in a map of words, more in a map of slices.
// Neither the slots nor the map's key (the bare key, not rule+key: the maps
// are per rule) is a pointer the garbage collector has to follow per key.
type ruleState struct {
	name string
	// span is the window length in ms as last requested (at least 1):
	// the rule's window.
	span    int64
	windows map[string]slot
	// one holds the hit before the newest for the keys whose slot has
	// slotOne; many the hits before the newest, ascending (2 to limit of
	// them), for the keys whose slot has slotMany.
	one    map[string]int64
	many   map[string][]int64
	blocks map[string]*Block // by bare key
	// high and highOne are the most keys windows and one held at the
	// start of a sweep since they were made: a Go map keeps the room it
	// grew to, so Sweep remakes one that it leaves less than half full
	// (shrink). While it copies, in slices, nextWindows and nextOne are
	// the maps being made: every write goes to both (setWindow, delWindow,
	// setOne, delOne), reads go to the old one.
	high, highOne int
	nextWindows   map[string]slot
	nextOne       map[string]int64
}

// The writes of windows and one: to the map being made too, during a
// shrink.
func (rs *ruleState) setWindow(key string, v slot) { setBoth(rs.windows, rs.nextWindows, key, v) }
func (rs *ruleState) delWindow(key string)         { delBoth(rs.windows, rs.nextWindows, key) }
func (rs *ruleState) setOne(key string, t int64)   { setBoth(rs.one, rs.nextOne, key, t) }
func (rs *ruleState) delOne(key string)            { delBoth(rs.one, rs.nextOne, key) }

// setBoth sets key in m and, while a shrink makes it (next is not nil), in
// the map that will replace m.
func setBoth[V any](m, next map[string]V, key string, v V) {
	m[key] = v
	if next != nil {
		next[key] = v
	}
}

// delBoth deletes key from m and, while a shrink makes it, from the map
// that will replace m (delete on a nil map does nothing).
func delBoth[V any](m, next map[string]V, key string) {
	delete(m, key)
	delete(next, key)
}

func newRuleState(name string) *ruleState {
	return &ruleState{
		name:    name,
		span:    1,
		windows: make(map[string]slot),
		one:     make(map[string]int64),
		many:    make(map[string][]int64),
		blocks:  make(map[string]*Block),
	}
}

// slot packs a key's window into one word: the newest hit in Unix
// milliseconds shifted left by 3, slotOne or slotMany when older hits are
// kept, slotDirty when the window changed since the last flush.
type slot int64

const (
	slotDirty slot = 1 << iota
	slotOne
	slotMany
	slotFlags = slotDirty | slotOne | slotMany
	slotShift = 3
)

func mkslot(ms int64, flags slot) slot { return slot(ms<<slotShift) | flags&slotFlags }
func (v slot) last() int64             { return int64(v) >> slotShift }
func (v slot) dirty() bool             { return v&slotDirty != 0 }
func (v slot) hasOlder() bool          { return v&(slotOne|slotMany) != 0 }

// older appends key's hits before the newest to buf. key must have slot v.
func (rs *ruleState) older(buf []int64, key string, v slot) []int64 {
	switch {
	case v&slotOne != 0:
		return append(buf, rs.one[key])
	case v&slotMany != 0:
		return append(buf, rs.many[key]...)
	}
	return buf
}

// setOlder stores older as key's hits before the newest (stored is the key
// as the maps keep it) and returns the slot flags for it; was is the slot
// before. older may be the slice held in many (it is updated in place).
func (rs *ruleState) setOlder(key, stored string, was slot, older []int64) slot {
	switch {
	case len(older) == 0:
		rs.dropOlder(key, was)
		return 0
	case len(older) == 1:
		if was&slotMany != 0 {
			delete(rs.many, key)
		}
		rs.setOne(stored, older[0])
		return slotOne
	}
	if was&slotOne != 0 {
		rs.delOne(key)
	}
	if was&slotMany == 0 {
		older = append(make([]int64, 0, max(4, len(older))), older...)
	}
	rs.many[stored] = older
	return slotMany
}

func (rs *ruleState) dropOlder(key string, was slot) {
	if was&slotOne != 0 {
		rs.delOne(key)
	}
	if was&slotMany != 0 {
		delete(rs.many, key)
	}
}

// add records a hit at now (Unix ms) for key, forgetting hits outside the
// window and beyond the limit+1 most recent. It returns the count in the
// window, this hit included, and whether the window just became dirty (the
// caller then lists it for the flush). stored is key as the maps keep it:
// a copy of the caller's string, which may be a slice of a whole message
// (Go replaces a map's string key on every assignment).
func (rs *ruleState) add(key, stored string, now int64, limit int) (count int, marked bool) {
	cut := now - rs.span
	v, ok := rs.windows[key]
	var buf [1]int64
	var older []int64
	if ok {
		if v&slotMany != 0 {
			older = rs.many[key] // updated in place
		} else {
			older = rs.older(buf[:0], key, v)
		}
		if prev := v.last(); prev > cut {
			now = max(now, prev) // a clock that stepped back keeps the times ascending
			older = pruneTimes(older, cut)
			if limit > 0 {
				older = append(older, prev)
				if len(older) > limit {
					n := copy(older, older[len(older)-limit:])
					older = older[:n]
				}
			} else {
				older = older[:0]
			}
		} else {
			older = older[:0]
		}
	}
	flags := slotDirty | rs.setOlder(key, stored, v, older)
	rs.setWindow(stored, mkslot(now, flags))
	return 1 + len(older), !ok || !v.dirty()
}

// pruneTimes drops the times at or before cut: the window is (now-span, now].
func pruneTimes(times []int64, cut int64) []int64 {
	i := 0
	for i < len(times) && times[i] <= cut {
		i++
	}
	if i == 0 {
		return times
	}
	n := copy(times, times[i:])
	return times[:n]
}

// count is the number of hits of key in the window at now (Unix ms).
func (rs *ruleState) count(key string, now int64) int {
	v, ok := rs.windows[key]
	if !ok {
		return 0
	}
	return rs.countSlot(key, v, now)
}

func (rs *ruleState) countSlot(key string, v slot, now int64) int {
	cut := now - rs.span
	if v.last() <= cut {
		return 0
	}
	n := 1
	switch {
	case v&slotOne != 0:
		if rs.one[key] > cut {
			n++
		}
	case v&slotMany != 0:
		older := rs.many[key]
		for i := len(older) - 1; i >= 0 && older[i] > cut; i-- {
			n++
		}
	}
	return n
}

// prune forgets the hits of key at or before now-span; it reports false when
// none is left (the caller deletes the key). key must be the stored key.
func (rs *ruleState) prune(key string, v slot, now int64) bool {
	cut := now - rs.span
	if v.last() <= cut {
		rs.dropOlder(key, v)
		return false
	}
	if v.hasOlder() {
		var buf [1]int64
		var older []int64
		if v&slotMany != 0 {
			older = rs.many[key] // pruned in place
		} else {
			older = rs.older(buf[:0], key, v)
		}
		if kept := pruneTimes(older, cut); len(kept) != len(older) {
			if flags := rs.setOlder(key, key, v, kept); flags != v&(slotOne|slotMany) {
				rs.setWindow(key, v&^(slotOne|slotMany)|flags)
			}
		}
	}
	return true
}

// remove forgets key's window.
func (rs *ruleState) remove(key string) (had bool) {
	v, ok := rs.windows[key]
	if !ok {
		return false
	}
	rs.dropOlder(key, v)
	rs.delWindow(key)
	return true
}

// encodeWindow writes a window's record for the file: span, n and the
// times (older, then last) as varint deltas (the format of earlier
// versions, which kept a span per key).
func encodeWindow(span int64, older []int64, last int64) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+(len(older)+1)*4)
	b = binary.AppendVarint(b, span)
	b = binary.AppendUvarint(b, uint64(len(older)+1))
	prev := int64(0)
	for _, t := range older {
		b = binary.AppendVarint(b, t-prev)
		prev = t
	}
	return binary.AppendVarint(b, last-prev)
}

var errBadWindow = errors.New("malformed window record")

// decodeWindow reads a record written by encode: the span it was written
// with and the times, ascending, appended to times.
func decodeWindow(b []byte, times []int64) (span int64, _ []int64, err error) {
	span, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil, errBadWindow
	}
	b = b[n:]
	cnt, n := binary.Uvarint(b)
	if n <= 0 || cnt > uint64(len(b)) {
		return 0, nil, errBadWindow
	}
	b = b[n:]
	prev := int64(0)
	for i := uint64(0); i < cnt; i++ {
		d, n := binary.Varint(b)
		if n <= 0 {
			return 0, nil, errBadWindow
		}
		b = b[n:]
		prev += d
		times = append(times, prev)
	}
	return span, times, nil
}

// restore puts a window read from the file back, dropping the hits at or
// before now-span; it reports false when none is left. It keeps a copy of
// key and of times.
func (rs *ruleState) restore(keyBytes []byte, times []int64, now int64) bool {
	times = pruneTimes(times, now-rs.span)
	if len(times) == 0 {
		return false
	}
	key := string(keyBytes)
	last := times[len(times)-1]
	rs.setWindow(key, mkslot(last, rs.setOlder(key, key, 0, times[:len(times)-1])))
	return true
}

// shrinkMin is the fewest keys a map must have held before Sweep remakes it.
const shrinkMin = 4096

// noteSize records the sizes of the maps at the start of a sweep.
func (rs *ruleState) noteSize() {
	rs.high = max(rs.high, len(rs.windows))
	rs.highOne = max(rs.highOne, len(rs.one))
}

// shrinkDue says whether the sweep left windows or one less than half
// as full as they were.
func (rs *ruleState) shrinkDue() (windows, one bool) {
	// A shrink under way (another Sweep let the lock go) is left to end.
	return rs.nextWindows == nil && rs.high >= shrinkMin && 2*len(rs.windows) < rs.high,
		rs.nextOne == nil && rs.highOne >= shrinkMin && 2*len(rs.one) < rs.highOne
}
