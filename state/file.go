package state

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"
)

// The file has three buckets: counts (a window per rule and key, see
// encodeWindow), blocks (a block per rule and key, see encodeBlock) and
// events (the audit trail by sequence number, events.go). Counts and blocks
// are keyed by ID(rule, key).
var (
	bucketCounts = []byte("counts")
	bucketBlocks = []byte("blocks")
)

// flushBatch is how many keys one transaction writes or deletes at most
// (a flush, the deletion of stale records at Open): a transaction of many
// scattered keys copies most of bbolt's tree into memory at once.
const flushBatch = 10_000

// countsFillPercent is how full the flush fills the counts bucket's pages.
const countsFillPercent = 0.9

// fileKey is ID(rule, key) as the file's key.
func fileKey(rule, key string) []byte {
	return appendFileKey(make([]byte, 0, len(rule)+1+len(key)), rule, key)
}

// appendFileKey appends ID(rule, key) as the file's key to b.
func appendFileKey(b []byte, rule, key string) []byte {
	return append(append(append(b, rule...), 0), key...)
}

// splitIDBytes splits a file key into rule and key, each a string of its
// own (the key is stored: it must not keep the rule's bytes alive).
func splitIDBytes(id []byte) (rule, key string, ok bool) {
	i := bytes.IndexByte(id, 0)
	if i < 0 {
		return "", "", false
	}
	return string(id[:i]), string(id[i+1:]), true
}

// update runs one write transaction unless ctx is already done, and notes
// its outcome in the file's health.
func (s *Store) update(ctx context.Context, f func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.boltUpdate(f)
	s.noteWrite(err)
	return err
}
