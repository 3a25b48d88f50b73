package redisstore

import (
	"context"
	"fmt"

	"github.com/loopbreaker/loopbreaker/state"
)

// Move takes a daemon's state from the backend cur (its state file alone,
// *state.Store, or a *Shared) to the Redis r, or to the state file alone
// when r is nil, keeping the blocks in force: a reload that changes the
// policy's redis runs it, under state.Switch.Move, so no hit runs
// meanwhile (connect and ping r before: the messages need not wait for
// that). r must not be the Redis cur shares already.
//
//   - file → Redis: the file's blocks are pushed to the new Redis.
//   - Redis A → Redis B: A's blocks, and the file's blocks A has no copy
//     of, are pushed to B; A is let go (its queued audit events sent).
//   - Redis → file: Redis's blocks are adopted by the file (committed
//     before Move returns); Redis is let go.
//
// The windows' counts are not carried: a key's count starts again in the
// new backend (a storm already blocked stays blocked; one under its limit
// gets its whole limit again, once).
//
// When r does not answer or a block cannot be carried, Move returns the
// reason, cur is untouched and still in force, and r is still the
// caller's to close. On success the returned backend owns r, and cur must
// not be used any more, except through what Move returns (the same state
// file).
func Move(ctx context.Context, cur state.Backend, r *Redis, sopts SharedOptions) (state.Backend, error) {
	var local *state.Store
	var old *Shared // the Redis left, if any
	switch c := cur.(type) {
	case *state.Store:
		local = c
	case *Shared:
		old, local = c, c.Local()
	default:
		return nil, fmt.Errorf("redisstore: cannot move the state from a %T", cur)
	}
	if r == nil {
		if old == nil {
			return cur, nil
		}
		if _, err := local.Adopt(ctx, old.Blocks()...); err != nil {
			return nil, fmt.Errorf("carrying Redis's blocks to the state file %s: %w", local.Path(), err)
		}
		old.Detach()
		old.log.Info("state in the state file alone; Redis let go", "redis", old.redis.Addr(), "state", local.Path())
		return local, nil
	}
	var carried []state.Block
	if old != nil {
		carried = old.Blocks()
	}
	next, err := Attach(ctx, r, local, sopts, carried)
	if err != nil {
		return nil, err
	}
	if old != nil {
		old.Detach()
		old.log.Info("Redis let go", "redis", old.redis.Addr(), "now", r.Addr())
	}
	return next, nil
}
