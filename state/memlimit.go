package state

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/loopbreaker/loopbreaker/state/internal/every"
)

// The Go runtime lets the heap grow to twice the live heap (GOGC=100)
// before it collects. At 1M tracked keys the live heap is 80-105 MB, and a
// flush or a sweep of many keys allocates fast (bbolt's nodes and cursors,
// the lists of keys): the heap alone reached 190-240 MB and the RSS 250-280
// MB with the package's other savings (state/rss_test.go). A soft memory
// limit a little above the live heap bounds that, and following the live
// heap keeps it from starving the daemon when there are more keys than a
// fixed limit was made for (a live heap above the limit makes the GC run
// all the time, up to half the CPU).
const (
	// MinMemoryLimit is the lowest limit KeepMemoryLimit sets.
	MinMemoryLimit = 128 << 20
	// memoryHeadroom is what MemoryLimit adds to 1.25 times the live heap.
	memoryHeadroom = 16 << 20
)

// MemoryLimit is the soft memory limit for a live heap of live bytes: 1.25
// times it plus 16 MiB, and at least MinMemoryLimit. At 1M keys (a live
// heap of 77-99 MiB) that is 128-140 MiB; the limit is soft (the GC lets
// the heap past it rather than take more than half the CPU), and the
// file's pages (up to some 35 MB during a flush) come on top.
func MemoryLimit(live uint64) int64 {
	return max(MinMemoryLimit, int64(live+live/4)+memoryHeadroom)
}

// KeepMemoryLimit sets the Go runtime's soft memory limit
// (debug.SetMemoryLimit) to MemoryLimit of the live heap now and every
// interval until stop is closed. When GOMEMLIMIT is set in the environment
// it does nothing: the operator's limit stands.
func KeepMemoryLimit(stop <-chan struct{}, interval time.Duration) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(MemoryLimit(sample[0].Value.Uint64()))
		}
	}
	set()
	every.Run(stop, interval, set)
}
