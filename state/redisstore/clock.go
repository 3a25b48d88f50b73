package redisstore

import (
	"context"
	"sync/atomic"
	"time"
)

// serverClock is the local clock corrected by its offset from Redis's,
// measured with TIME (the middle of the round trip stands for the moment
// Redis read its clock).
type serverClock struct {
	local   func() time.Time
	sync    func(context.Context) error
	offset  atomic.Int64 // ns to add to the local clock
	synced  atomic.Int64 // local unix ns of the last measurement
	syncing atomic.Bool
}

// clockResync is how often the offset is measured again.
const clockResync = time.Minute

// now is the local clock plus the offset last measured. When that
// measurement is more than clockResync old (or none succeeded yet), it
// starts a new one in the background; the answer does not wait for it.
func (c *serverClock) now() time.Time {
	t := c.local()
	if t.UnixNano()-c.synced.Load() > int64(clockResync) && c.sync != nil && c.syncing.CompareAndSwap(false, true) {
		go func() {
			defer c.syncing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
			defer cancel()
			_ = c.sync(ctx)
		}()
	}
	return t.Add(time.Duration(c.offset.Load()))
}

// syncClock measures the offset of the local clock from Redis's: at Ping,
// and from serverClock.now every clockResync.
func (r *Redis) syncClock(ctx context.Context) error {
	c := r.clock
	t0 := c.local()
	srv, err := r.c.Time(ctx).Result()
	if err != nil {
		return err
	}
	t1 := c.local()
	mid := t0.Add(t1.Sub(t0) / 2)
	c.offset.Store(int64(srv.Sub(mid)))
	c.synced.Store(t1.UnixNano())
	return nil
}
