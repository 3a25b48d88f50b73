package redisstore

import (
	"context"
	"fmt"
)

// Sweep drops the index entries of what has expired, a batch at a time.
func (r *Redis) Sweep(ctx context.Context) error {
	for {
		n, err := sweepScript.Run(ctx, r.c, []string{r.blocksKey(), r.keysKey(), r.spansKey()}, r.now().UnixMilli(), 1000).Int()
		if err != nil {
			return fmt.Errorf("redis %s: %w", r.addr, err)
		}
		if n < 1000 {
			return nil
		}
	}
}
