package redisstore

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
)

// Blocked reports the block in force for (rule, key) without counting.
func (r *Redis) Blocked(ctx context.Context, rule, key string) (state.Block, bool, error) {
	bs, err := r.blocks(ctx, []string{state.ID(rule, key)})
	if err != nil || len(bs) == 0 {
		return state.Block{}, false, err
	}
	return bs[0], true, nil
}

// blocks reads the blocks of ids that are in force, in one round trip.
func (r *Redis) blocks(ctx context.Context, ids []string) ([]state.Block, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.c.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(ids))
	ss := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		hs[i] = pipe.HGetAll(ctx, r.k("b", id))
		ss[i] = pipe.LRange(ctx, r.k("s", id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.wrap(err)
	}
	now := r.now()
	var out []state.Block
	for i := range ids {
		b, ok := decodeBlock(hs[i].Val(), ss[i].Val())
		if ok && now.Before(b.Until) {
			out = append(out, b)
		}
	}
	return out, nil
}

// decodeBlock reads a block from its hash (PREFIX b:ID) and samples;
// ok is false when there is no block.
func decodeBlock(h map[string]string, samples []string) (state.Block, bool) {
	if len(h) == 0 || h["until"] == "" {
		return state.Block{}, false
	}
	return state.Block{
		Rule:    h["rule"],
		Key:     h["key"],
		Since:   time.UnixMilli(num(h["since"])),
		Until:   time.UnixMilli(num(h["until"])),
		Count:   int(num(h["count"])),
		Limit:   int(num(h["limit"])),
		Window:  time.Duration(num(h["window"])) * time.Millisecond,
		Samples: samples,
	}, true
}

// Blocks lists the blocks in force, oldest first.
func (r *Redis) Blocks(ctx context.Context) ([]state.Block, error) {
	ids, err := r.blockIDs(ctx)
	if err != nil {
		return nil, err
	}
	bs, err := r.blocks(ctx, ids)
	if err != nil {
		return nil, err
	}
	sortBlocks(bs)
	return bs, nil
}

func sortBlocks(bs []state.Block) {
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].Since.Equal(bs[j].Since) {
			return bs[i].Since.Before(bs[j].Since)
		}
		return state.ID(bs[i].Rule, bs[i].Key) < state.ID(bs[j].Rule, bs[j].Key)
	})
}

// blockIDs lists the IDs of the blocks that have not ended, from every
// bucket's index.
func (r *Redis) blockIDs(ctx context.Context) ([]string, error) {
	return r.rangeIndexes(ctx, func(b *bucket) string { return b.blocks }, 0)
}

// rangeIndexes lists the members of one index of every bucket whose score
// is after now (at most limit of each when limit > 0), in one pipeline:
// one round trip to each master.
func (r *Redis) rangeIndexes(ctx context.Context, index func(*bucket) string, limit int64) ([]string, error) {
	by := &redis.ZRangeBy{Min: after(r.now().UnixMilli()), Max: "+inf", Count: limit}
	pipe := r.c.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(r.buckets))
	for i := range r.buckets {
		cmds[i] = pipe.ZRangeByScore(ctx, index(&r.buckets[i]), by)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.wrap(err)
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	return ids, nil
}

// countIndexes sums the members of one index of every bucket whose score
// is after now, in one pipeline.
func (r *Redis) countIndexes(ctx context.Context, index func(*bucket) string) (int, error) {
	from := after(r.now().UnixMilli())
	pipe := r.c.Pipeline()
	cmds := make([]*redis.IntCmd, len(r.buckets))
	for i := range r.buckets {
		cmds[i] = pipe.ZCount(ctx, index(&r.buckets[i]), from, "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, r.wrap(err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// Release lifts the blocks that match, as state.Store.Release does: rule
// and key both given lift one; an empty rule lifts that key in every rule;
// an empty key lifts every block of the rule. Their windows are cleared.
func (r *Redis) Release(ctx context.Context, rule, key string) ([]state.Block, error) {
	if rule == "" && key == "" {
		return nil, errors.New("redisstore: release needs a rule or a key")
	}
	var ids []string
	if rule != "" && key != "" {
		ids = []string{state.ID(rule, key)}
	} else {
		all, err := r.blockIDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range all {
			ru, k := state.SplitID(id)
			if (rule == "" || ru == rule) && (key == "" || k == key) {
				ids = append(ids, id)
			}
		}
	}
	now := r.now()
	var lifted []state.Block
	for _, id := range ids {
		bk := r.bucketOf(id)
		v, err := releaseScript.Run(ctx, r.c,
			[]string{r.k("b", id), r.k("s", id), r.k("w", id), bk.blocks, bk.keys, bk.spans}, id).StringSlice()
		if err != nil {
			return lifted, r.wrap(err)
		}
		h := map[string]string{}
		i := 0
		for ; i+1 < len(v) && v[i] != ""; i += 2 {
			h[v[i]] = v[i+1]
		}
		var samples []string
		if i < len(v) {
			samples = v[i+1:]
		}
		if b, ok := decodeBlock(h, samples); ok && now.Before(b.Until) {
			lifted = append(lifted, b)
		}
	}
	sortBlocks(lifted)
	return lifted, nil
}

// Push puts a block made elsewhere into Redis: it starts there if Redis
// has none for its (rule, key), else the one in force lasts until the later
// end and counts both blocks' messages.
func (r *Redis) Push(ctx context.Context, b state.Block) error {
	id := state.ID(b.Rule, b.Key)
	args := []any{b.Rule, b.Key, b.Since.UnixMilli(), b.Until.UnixMilli(), b.Count, b.Limit,
		b.Window.Milliseconds(), r.now().UnixMilli(), state.MaxSamples, id}
	for _, s := range b.Samples {
		args = append(args, state.ClipSubject(s))
	}
	if err := pushScript.Run(ctx, r.c, []string{r.k("b", id), r.k("s", id), r.bucketOf(id).blocks}, args...).Err(); err != nil {
		return r.wrap(err)
	}
	return nil
}

// blockCount is how many blocks have not ended, from the blocks index.
func (r *Redis) blockCount(ctx context.Context) (int, error) {
	return r.countIndexes(ctx, func(b *bucket) string { return b.blocks })
}
