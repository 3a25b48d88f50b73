package state

import (
	"encoding/binary"
	"errors"
	"time"
)

// window holds the times of the most recent hits of one (rule, key), newest
// last, as Unix milliseconds. It keeps at most limit+1 of them: that is all an
// exact "more than limit in the window" check needs, and it bounds memory for
// a storm while a key with one hit costs one int64.
type window struct {
	span  int64   // the window length in ms, as last requested
	times []int64 // ascending
}

// add records a hit at now, forgetting hits outside the window and beyond
// the limit+1 most recent.
func (w *window) add(now time.Time, span time.Duration, limit int) {
	w.span = span.Milliseconds()
	if w.span <= 0 {
		w.span = 1
	}
	w.prune(now)
	w.times = append(w.times, now.UnixMilli())
	if keep := limit + 1; len(w.times) > keep {
		n := copy(w.times, w.times[len(w.times)-keep:])
		w.times = w.times[:n]
	}
}

// prune drops hits at or before now-span: the window is (now-span, now].
func (w *window) prune(now time.Time) {
	cut := now.UnixMilli() - w.span
	i := 0
	for i < len(w.times) && w.times[i] <= cut {
		i++
	}
	if i > 0 {
		n := copy(w.times, w.times[i:])
		w.times = w.times[:n]
	}
}

// count is the number of hits in the window at now.
func (w *window) count(now time.Time) int {
	cut := now.UnixMilli() - w.span
	n := 0
	for i := len(w.times) - 1; i >= 0 && w.times[i] > cut; i-- {
		n++
	}
	return n
}

func (w *window) empty() bool { return len(w.times) == 0 }

// encode writes span, n and the times as varint deltas.
func (w *window) encode() []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(w.times)*4)
	b = binary.AppendVarint(b, w.span)
	b = binary.AppendUvarint(b, uint64(len(w.times)))
	prev := int64(0)
	for _, t := range w.times {
		b = binary.AppendVarint(b, t-prev)
		prev = t
	}
	return b
}

var errBadWindow = errors.New("malformed window record")

func decodeWindow(b []byte) (*window, error) {
	span, n := binary.Varint(b)
	if n <= 0 {
		return nil, errBadWindow
	}
	b = b[n:]
	cnt, n := binary.Uvarint(b)
	if n <= 0 || cnt > uint64(len(b)) {
		return nil, errBadWindow
	}
	b = b[n:]
	w := &window{span: span, times: make([]int64, 0, cnt)}
	prev := int64(0)
	for i := uint64(0); i < cnt; i++ {
		d, n := binary.Varint(b)
		if n <= 0 {
			return nil, errBadWindow
		}
		b = b[n:]
		prev += d
		w.times = append(w.times, prev)
	}
	return w, nil
}
