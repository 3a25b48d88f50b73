package redisstore

import (
	"context"
	"errors"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
)

// Count reports the current count for (rule, key) without counting.
func (r *Redis) Count(ctx context.Context, rule, key string) (int, error) {
	id := state.ID(rule, key)
	span, err := r.c.HGet(ctx, r.bucketOf(id).spans, id).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, r.wrap(err)
	}
	n, err := r.c.ZCount(ctx, r.k("w", id), after(r.now().UnixMilli()-span), "+inf").Result()
	if err != nil {
		return 0, r.wrap(err)
	}
	return int(n), nil
}

// Tracked is how many (rule, key) have hits in their window.
func (r *Redis) Tracked(ctx context.Context) (int, error) {
	return r.countIndexes(ctx, func(b *bucket) string { return b.keys })
}

// maxTop bounds the keys Top looks at.
const maxTop = 100000

// Top returns the n keys with the highest counts now, highest first. It
// reads every tracked window (up to 100000): for the admin, not per message.
func (r *Redis) Top(ctx context.Context, n int) ([]state.KeyCount, error) {
	if n <= 0 {
		return nil, nil
	}
	now := r.now().UnixMilli()
	ids, err := r.rangeIndexes(ctx, func(b *bucket) string { return b.keys }, int64(maxTop/len(r.buckets)))
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// The window lengths, from each bucket's spans.
	byBucket := map[*bucket][]string{}
	for _, id := range ids {
		b := r.bucketOf(id)
		byBucket[b] = append(byBucket[b], id)
	}
	pipe := r.c.Pipeline()
	spanCmds := make(map[*bucket]*redis.SliceCmd, len(byBucket))
	for b, ids := range byBucket {
		spanCmds[b] = pipe.HMGet(ctx, b.spans, ids...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.wrap(err)
	}
	spans := make(map[string]int64, len(ids))
	for b, ids := range byBucket {
		for i, v := range spanCmds[b].Val() {
			spans[ids[i]] = num(v)
		}
	}
	pipe = r.c.Pipeline()
	counts := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		counts[i] = pipe.ZCount(ctx, r.k("w", id), after(now-spans[id]), "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.wrap(err)
	}
	var out []state.KeyCount
	for i, id := range ids {
		if c := int(counts[i].Val()); c > 0 {
			rule, key := state.SplitID(id)
			out = append(out, state.KeyCount{Rule: rule, Key: key, Count: c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Rule+out[i].Key < out[j].Rule+out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
