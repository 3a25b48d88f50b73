package state

import (
	"os"
	"time"
)

// With LOOPBREAKER_RSS_KEEPLIMIT=1, TestRSS (and its restarted child) run
// KeepMemoryLimit as the daemon does. This file is not copied with
// rss_test.go into an older version (which has no KeepMemoryLimit).
func init() {
	if os.Getenv("LOOPBREAKER_RSS_KEEPLIMIT") != "" {
		rssKeepLimit = func() { go KeepMemoryLimit(make(chan struct{}), time.Second) }
	}
}
