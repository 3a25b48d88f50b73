package postfix

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// HeldCount returns the number of messages in the hold queue.
func (i *Instance) HeldCount() (int, error) {
	return i.countQueues("hold")
}

// QueueCount returns the number of messages in the incoming, active and
// deferred queues: mail Postfix has yet to deliver (held mail excluded).
func (i *Instance) QueueCount() (int, error) {
	return i.countQueues("incoming", "active", "deferred")
}

// QueueCounts returns the number of messages in each of the maildrop,
// incoming, active, deferred and hold queues, keyed by queue name.
func (i *Instance) QueueCounts() (map[string]int, error) {
	out := map[string]int{}
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		n, err := i.countQueues(q)
		if err != nil {
			return nil, err
		}
		out[q] = n
	}
	return out, nil
}

// WaitQueueEmpty waits until the maildrop, incoming, active and deferred
// queues are all empty, or ctx is done. Mail whose destination keeps failing
// stays deferred (and is retried every second or two), so a test expecting
// a deferral should check QueueCount instead.
func (i *Instance) WaitQueueEmpty(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := i.countQueues("maildrop", "incoming", "active", "deferred")
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postfix %s: %d messages still queued: %w\n%s", i.name, n, ctx.Err(), i.queueListing())
		case <-i.masterDone():
			return fmt.Errorf("postfix %s: master has exited with %d messages queued", i.name, n)
		case <-tick.C:
		}
	}
}

func (i *Instance) queueListing() string {
	out, err := i.Postqueue("-p")
	if err != nil {
		return err.Error()
	}
	return out
}

// countQueues counts the queue files below the named queue directories.
func (i *Instance) countQueues(queues ...string) (int, error) {
	n := 0
	for _, q := range queues {
		err := filepath.WalkDir(filepath.Join(i.queueDir, q), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // moved or deleted while we looked
				}
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("postfix %s: count %s queue: %w", i.name, q, err)
		}
	}
	return n, nil
}
