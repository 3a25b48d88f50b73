package state

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Release lifts the blocks that match: rule and key both given lift one;
// an empty rule lifts that key in every rule; an empty key lifts every block
// of the rule. It also clears their windows, so the next message starts a
// fresh count. It returns the blocks lifted, once deleted from the file.
func (s *Store) Release(ctx context.Context, rule, key string) ([]Block, error) {
	if rule == "" && key == "" {
		return nil, errors.New("state: release needs a rule or a key")
	}
	// wmu: no flush batch encoded before the release is written after it.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ids, lifted := s.lift(rule, key)
	if len(ids) == 0 {
		return nil, nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := tx.Bucket(bucketBlocks).Delete([]byte(id)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketCounts).Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return lifted, fmt.Errorf("committing release: %w", err)
	}
	return lifted, nil
}

// lift drops the matching blocks and their windows from memory and returns
// their IDs and copies.
func (s *Store) lift(rule, key string) (ids []string, lifted []Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, rs := range s.rules {
		if rule != "" && name != rule {
			continue
		}
		for k, b := range rs.blocks {
			if key != "" && k != key {
				continue
			}
			ids = append(ids, ID(name, k))
			lifted = append(lifted, b.clone())
			delete(rs.blocks, k)
			// A dirty entry for it is skipped by the flush once the
			// window is gone.
			rs.remove(k)
		}
	}
	return ids, lifted
}
