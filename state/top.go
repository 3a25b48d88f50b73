package state

import (
	"container/heap"
	"sort"
)

// KeyCount is one key's count in one rule's window.
type KeyCount struct {
	Rule  string `json:"rule"`
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Top returns the n keys with the highest counts now, highest first. It
// walks every tracked key under the store's lock, so callers should not
// call it per message (the admin API caches it).
func (s *Store) Top(n int) []KeyCount {
	if n <= 0 {
		return nil
	}
	now := s.now()
	h := &minHeap{}
	s.mu.Lock()
	nowMs := now.UnixMilli()
	for _, rs := range s.rules {
		for key, v := range rs.windows {
			c := rs.countSlot(key, v, nowMs)
			if c == 0 || (h.Len() == n && c <= (*h)[0].count) {
				continue
			}
			heap.Push(h, idCount{rs.name, key, c})
			if h.Len() > n {
				heap.Pop(h)
			}
		}
	}
	s.mu.Unlock()
	out := make([]KeyCount, 0, h.Len())
	for _, e := range *h {
		out = append(out, KeyCount{Rule: e.rule, Key: e.key, Count: e.count})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Rule+out[i].Key < out[j].Rule+out[j].Key
	})
	return out
}

type idCount struct {
	rule, key string
	count     int
}

type minHeap []idCount

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].count < h[j].count }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(idCount)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
