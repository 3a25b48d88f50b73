package redisstore

import "context"

// sweepBatch is how many expired windows one run of lua/sweep.lua drops.
const sweepBatch = 1000

// Sweep drops the index entries of what has expired, bucket by bucket,
// sweepBatch windows per script run (the keys themselves expire by their
// TTL).
func (r *Redis) Sweep(ctx context.Context) error {
	for i := range r.buckets {
		b := &r.buckets[i]
		for {
			n, err := sweepScript.Run(ctx, r.c, []string{b.blocks, b.keys, b.spans}, r.now().UnixMilli(), sweepBatch).Int()
			if err != nil {
				return r.wrap(err)
			}
			if n < sweepBatch {
				break
			}
		}
	}
	return nil
}
