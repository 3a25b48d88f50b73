// Package every runs a function at a fixed interval until told to stop: the
// background loops of state (flush, sweep) and of redisstore (sweep).
package every

import "time"

// Run calls f every interval until stop is closed, and returns then. A call
// of f that is running when stop is closed is waited for.
func Run(stop <-chan struct{}, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f()
		}
	}
}
