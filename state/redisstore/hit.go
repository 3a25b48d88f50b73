package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
)

// Hit counts one event and reports whether it is blocked, as
// state.Store.Hit does, in one round trip.
func (r *Redis) Hit(ctx context.Context, q state.Request) (state.Result, error) {
	if q.Limit < 0 || q.Window <= 0 {
		return state.Result{}, fmt.Errorf("redisstore: invalid request for rule %q: limit %d window %s", q.Rule, q.Limit, q.Window)
	}
	id := state.ID(q.Rule, q.Key)
	now := r.now()
	ms := now.UnixMilli()
	span := max(q.Window.Milliseconds(), 1)
	subject := state.ClipSubject(q.Subject)
	member := strconv.FormatInt(ms, 10) + ":" + r.process + ":" + strconv.FormatUint(r.member.Add(1), 10)
	blockMs := max(q.BlockFor.Milliseconds(), 0)
	bk := r.bucketOf(id)
	v, err := hitScript.Run(ctx, r.c,
		[]string{r.k("w", id), r.k("b", id), r.k("s", id), bk.blocks, bk.keys, bk.spans},
		ms, span, q.Limit, blockMs, subject, member, id, q.Rule, q.Key, state.MaxSamples,
	).Slice()
	if err != nil {
		return state.Result{}, r.wrap(err)
	}
	if len(v) < 3 {
		return state.Result{}, fmt.Errorf("redis %s: unexpected answer %v", r.addr, v)
	}
	res := state.Result{Count: int(num(v[0])), Blocked: num(v[1]) == 1, NewBlock: num(v[2]) == 1}
	switch {
	case res.NewBlock:
		res.Block = state.Block{Rule: q.Rule, Key: q.Key, Since: time.UnixMilli(ms), Until: time.UnixMilli(ms + blockMs),
			Count: 1, Limit: q.Limit, Window: time.Duration(span) * time.Millisecond}
		if subject != "" {
			res.Block.Samples = []string{subject}
		}
	case res.Blocked && len(v) >= 8:
		res.Block = state.Block{Rule: q.Rule, Key: q.Key, Since: time.UnixMilli(num(v[3])), Until: time.UnixMilli(num(v[4])),
			Count: int(num(v[5])), Limit: int(num(v[6])), Window: time.Duration(num(v[7])) * time.Millisecond}
		for _, s := range v[8:] {
			if s, ok := s.(string); ok {
				res.Block.Samples = append(res.Block.Samples, s)
			}
		}
	}
	return res, nil
}

// num reads an integer of a script's answer (Lua numbers arrive as
// integers, hash fields as strings).
func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
