package state

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// load reads what is still in force at start: the windows with a hit in
// them, the blocks that have not ended and the audit trail. It reads in one
// read-only transaction (which copies nothing) and then deletes what has
// expired or cannot be read, in transactions of at most flushBatch keys.
func (s *Store) load() error {
	now := s.now()
	if err := s.createBuckets(); err != nil {
		return err
	}
	var stale staleRecords
	err := s.db.View(func(tx *bolt.Tx) error {
		s.sizeWindowMaps(tx)
		if err := s.loadWindows(tx, now.UnixMilli(), &stale); err != nil {
			return err
		}
		if err := s.loadBlocks(tx, now, &stale); err != nil {
			return err
		}
		s.events, s.eventSeq = loadEvents(tx)
		return nil
	})
	if err != nil {
		return err
	}
	err = s.deleteStale(stale)
	s.dropFilePages() // the load read every page of the file
	return err
}

// staleRecords are the file keys load found expired or unreadable.
type staleRecords struct {
	counts, blocks [][]byte
}

// createBuckets creates the buckets a new file lacks.
func (s *Store) createBuckets() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCounts, bucketBlocks, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		return nil
	})
}

// sizeWindowMaps makes each rule's map of windows the size the file needs:
// a map grown one key at a time leaves its old tables to the GC and ends up
// with more room than it needs (measured: 55 against 30-odd bytes per key
// at 1M keys).
func (s *Store) sizeWindowMaps(tx *bolt.Tx) {
	sizes := make(map[string]int)
	c := tx.Bucket(bucketCounts).Cursor()
	n := 0
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if i := bytes.IndexByte(k, 0); i >= 0 {
			sizes[string(k[:i])]++
		}
		if n++; n%loadDropEvery == 0 {
			adviseDontNeed(s.db.Info().Data, uintptr(tx.Size())) // as loadWindows does
		}
	}
	for name, n := range sizes {
		rs := s.rule(name)
		rs.windows = make(map[string]slot, n)
	}
}

// loadDropEvery is how many records load reads between two unmappings of
// the file's pages (dropFilePages): at about 100 bytes a record, 5 MB.
const loadDropEvery = 50_000

// loadWindows restores the windows with hits inside them at nowMs and lists
// the others, and the unreadable records, as stale.
func (s *Store) loadWindows(tx *bolt.Tx, nowMs int64, stale *staleRecords) error {
	var times []int64 // reused: restore copies what it keeps
	var rs *ruleState
	n := 0
	return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
		if n++; n%loadDropEvery == 0 {
			// The pages read so far are in the maps now: unmapped as the
			// load goes, a restart's RSS never holds the whole file.
			// The read transaction keeps the mapping where it is; k and v
			// stay valid (a page read again is mapped again).
			adviseDontNeed(s.db.Info().Data, uintptr(tx.Size()))
		}
		i := bytes.IndexByte(k, 0)
		var span int64
		var err error
		if i >= 0 {
			span, times, err = decodeWindow(v, times[:0])
		}
		if i < 0 || err != nil {
			// A damaged record costs one key's count, not the daemon.
			s.log.Warn("dropping unreadable count record", "key", string(k), "err", err)
			stale.counts = append(stale.counts, bytes.Clone(k))
			return nil
		}
		if rs == nil || rs.name != string(k[:i]) {
			rs = s.rule(string(k[:i]))
		}
		rs.span = max(span, 1)
		if !rs.restore(k[i+1:], times, nowMs) {
			stale.counts = append(stale.counts, bytes.Clone(k))
		}
		return nil
	})
}

// loadBlocks restores the blocks in force at now and lists the others, and
// the unreadable records, as stale.
func (s *Store) loadBlocks(tx *bolt.Tx, now time.Time, stale *staleRecords) error {
	return tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
		rule, key, ok := splitIDBytes(k)
		b, err := decodeBlock(v)
		if !ok || err != nil || !b.activeAt(now) {
			stale.blocks = append(stale.blocks, bytes.Clone(k))
			return nil
		}
		s.rule(rule).blocks[key] = b
		return nil
	})
}

// deleteStale deletes the stale records from the file, flushBatch of each
// bucket per transaction.
func (s *Store) deleteStale(stale staleRecords) error {
	counts, blocks := stale.counts, stale.blocks
	for len(counts) > 0 || len(blocks) > 0 {
		nc, nb := min(len(counts), flushBatch), min(len(blocks), flushBatch)
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := deleteKeys(tx.Bucket(bucketCounts), counts[:nc]); err != nil {
				return err
			}
			return deleteKeys(tx.Bucket(bucketBlocks), blocks[:nb])
		})
		if err != nil {
			return err
		}
		counts, blocks = counts[nc:], blocks[nb:]
	}
	return nil
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
