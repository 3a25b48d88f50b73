package state

import (
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// dropEvery is how many keys a flush batch writes between two unmappings of
// the file's pages.
const dropEvery = 2000

// lockSlice is how many keys Flush copies per hold of the store's lock.
const lockSlice = 1000

// Flush writes the counts and block counters changed since the last flush,
// the deletions of what expired or was swept, and the new audit events. It
// writes in transactions of at most flushBatch keys, in key order; each
// batch is encoded under the store's lock and written before another writer
// of the file (a release, a new block) runs, so the lock is held for one
// batch's encoding at a time and a new block waits for one batch at most.
//
// What a failed batch did not write is put back for the next flush.
func (s *Store) Flush() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	p := s.takePending()
	if p.empty() {
		return nil
	}
	p.sort()
	b := newBatch(len(p.dirty))
	for p.left() {
		if err := s.writeBatch(p, b); err != nil {
			s.putBack(p, b)
			return fmt.Errorf("flushing %d counts: %w", len(p.dirty)-p.written, err)
		}
		p.written += len(b.snaps)
		p.evs = nil
		// The batch's keys are scattered over the file: unmapped after
		// each batch, the pages a flush reads never add up to the file.
		s.dropFilePages()
	}
	return nil
}

// flushLogged is the background flush: a failure is logged and counted in
// the file's health, and the counts wait in memory for the next one.
func (s *Store) flushLogged() {
	err := s.Flush()
	s.noteWrite(err) // health.go
	if err != nil {
		s.log.Error("state flush failed; counts stay in memory", "err", err)
	}
}

// pending is what one Flush writes, taken from the store at its start.
type pending struct {
	dirty, gone []ruleKey
	// next and nextGone are the first entries of dirty and gone not yet
	// copied into a batch.
	next, nextGone int
	// evs are the audit events to write, nil once written; lastSeq is the
	// sequence number of the newest event recorded.
	evs     []Event
	lastSeq uint64
	// written counts the windows written so far.
	written int
}

// takePending takes the dirty and gone lists and the pending events from
// the store, leaving them empty for what happens during the flush.
func (s *Store) takePending() *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &pending{dirty: s.dirty, gone: s.gone, evs: s.pendingEvents, lastSeq: s.eventSeq}
	s.dirty, s.gone, s.pendingEvents = nil, nil, nil
	if len(p.evs) == 0 {
		p.evs = nil
	}
	return p
}

func (p *pending) empty() bool { return len(p.dirty) == 0 && len(p.gone) == 0 && p.evs == nil }

// left says whether anything is still to be written.
func (p *pending) left() bool { return p.keysLeft() || p.evs != nil }

// keysLeft says whether dirty or gone entries are still to be copied.
func (p *pending) keysLeft() bool { return p.next < len(p.dirty) || p.nextGone < len(p.gone) }

// sort orders the entries by ID: sorted keys make bbolt's page writes
// sequential and let each batch touch one stretch of the tree.
func (p *pending) sort() {
	byID := func(a, b ruleKey) int {
		if c := strings.Compare(a.rs.name, b.rs.name); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	}
	slices.SortFunc(p.dirty, byID)
	slices.SortFunc(p.gone, byID)
}

// batch is one transaction's worth of a flush, copied out of memory
// under the store's lock. Its buffers are reused from batch to batch.
type batch struct {
	snaps []windowSnap
	// older holds the older hits of every window of snaps.
	older []int64
	dels  []goneKey
	// goneFrom is the first gone entry of this batch, for putBack.
	goneFrom int
}

// windowSnap is a window copied for the flush: its slot, its rule's span,
// where its older hits are in the batch's buffer, and its block if any.
type windowSnap struct {
	rk    ruleKey
	v     slot
	span  int64
	older [2]int
	block *Block
}

// goneKey is a key whose window or block is to be deleted from the file.
type goneKey struct {
	rk            ruleKey
	window, block bool
}

func newBatch(dirty int) *batch {
	return &batch{
		snaps: make([]windowSnap, 0, min(dirty, flushBatch)),
		older: make([]int64, 0, 1024),
	}
}

func (b *batch) empty() bool { return len(b.snaps) == 0 && len(b.dels) == 0 }

// writeBatch copies the next batch of p and writes it, with the events if
// they are not written yet, in one transaction. The other writers of the
// file wait for it, the messages only for each slice of lockSlice keys
// copied under the store's lock.
func (s *Store) writeBatch(p *pending, b *batch) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.copyBatch(p, b)
	if b.empty() && p.evs == nil {
		return nil
	}
	return s.boltUpdate(func(tx *bolt.Tx) error {
		if err := b.write(tx, s.db); err != nil {
			return err
		}
		if p.evs == nil {
			return nil
		}
		return writeEvents(tx, p.evs, p.lastSeq)
	})
}

// copyBatch fills b with up to flushBatch keys of p: the dirty windows
// first, then the gone keys, taking the store's lock for lockSlice of each
// at a time.
func (s *Store) copyBatch(p *pending, b *batch) {
	b.snaps, b.older, b.dels = b.snaps[:0], b.older[:0], b.dels[:0]
	b.goneFrom = p.nextGone
	for n := 0; n < flushBatch && p.keysLeft(); {
		s.mu.Lock()
		n = s.copyDirty(p, b, n)
		n = s.copyGone(p, b, n)
		s.mu.Unlock()
	}
}

// copyDirty copies up to lockSlice dirty entries of p into b, as long as b
// holds fewer than flushBatch keys (n so far), and marks their windows
// clean. It returns the new n. It allocates nothing (b's buffers have
// room), so that the lock is never held for a GC assist. Call with mu held.
func (s *Store) copyDirty(p *pending, b *batch, n int) int {
	for k := 0; k < lockSlice && n < flushBatch && p.next < len(p.dirty); k, p.next = k+1, p.next+1 {
		d := p.dirty[p.next]
		v, ok := d.rs.windows[d.key]
		if !ok || !v.dirty() {
			continue // released, swept, or already written from a duplicate entry
		}
		n++
		start := len(b.older)
		b.older = d.rs.older(b.older, d.key, v)
		sn := windowSnap{rk: d, v: v, span: d.rs.span, older: [2]int{start, len(b.older)}}
		if blk := d.rs.blocks[d.key]; blk != nil {
			sn.block = blk.snapshot()
		}
		d.rs.setWindow(d.key, v&^slotDirty)
		b.snaps = append(b.snaps, sn)
	}
	return n
}

// deleteWeight is what a deletion counts for in a batch's flushBatch keys:
// the commit of deletions scattered over the file rebalances the pages
// they left underfull, reading their siblings, so a batch of 10,000
// deletions mapped some 34 MB of the file at 1M keys (state/rss_test.go).
const deleteWeight = 2

// copyGone lists up to lockSlice gone entries of p in b's deletions, as
// long as b holds fewer than flushBatch keys (n so far, a deletion
// counting deleteWeight), and returns the new n. A gone key may have come back since it was listed: only what
// memory no longer holds is deleted from the file. Call with mu held.
func (s *Store) copyGone(p *pending, b *batch, n int) int {
	for k := 0; k < lockSlice && n < flushBatch && p.nextGone < len(p.gone); k, p.nextGone = k+1, p.nextGone+1 {
		g := p.gone[p.nextGone]
		_, w := g.rs.windows[g.key]
		_, blk := g.rs.blocks[g.key]
		if !w || !blk {
			n += deleteWeight
			b.dels = append(b.dels, goneKey{rk: g, window: !w, block: !blk})
		}
	}
	return n
}

// write puts b's windows and their blocks and deletes its gone keys. Every
// dropEvery keys it unmaps the file's pages read so far (dropFilePages):
// the keys are scattered, a batch of 10,000 reads some 30 MB of pages at
// 1M keys. Within a write transaction, before its commit, bbolt does not
// remap the file.
func (b *batch) write(tx *bolt.Tx, db *bolt.DB) error {
	n := 0
	drop := func() {
		if n++; n%dropEvery == 0 {
			adviseDontNeed(db.Info().Data, uintptr(tx.Size()))
		}
	}
	counts, blocks := tx.Bucket(bucketCounts), tx.Bucket(bucketBlocks)
	// Keys are written once and rarely grow: fuller pages make a file
	// (and a mapped file at start) about 40 % smaller than bbolt's default
	// of half-full pages.
	counts.FillPercent = countsFillPercent
	// One buffer for every key: bbolt's Put copies the key it keeps and
	// Delete keeps none (a fresh key each was 22 MB of garbage in a flush
	// of 700,000 deletions).
	var id []byte
	for _, sn := range b.snaps {
		drop()
		id = appendFileKey(id[:0], sn.rk.rs.name, sn.rk.key)
		if err := counts.Put(id, encodeWindow(sn.span, b.older[sn.older[0]:sn.older[1]], sn.v.last())); err != nil {
			return err
		}
		if sn.block != nil {
			v, err := encodeBlock(sn.block)
			if err != nil {
				return err
			}
			if err := blocks.Put(id, v); err != nil {
				return err
			}
		}
	}
	for _, d := range b.dels {
		drop()
		id = appendFileKey(id[:0], d.rk.rs.name, d.rk.key)
		if d.window {
			if err := counts.Delete(id); err != nil {
				return err
			}
		}
		if d.block {
			if err := blocks.Delete(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// putBack returns to the store what the failed batch b and the batches
// after it did not write, so the next flush tries again: b's windows
// (unless a hit listed them again meanwhile), the entries not yet copied,
// b's gone keys and the events if they were not written.
func (s *Store) putBack(p *pending, b *batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sn := range b.snaps {
		rk := sn.rk
		if v, ok := rk.rs.windows[rk.key]; ok && !v.dirty() {
			rk.rs.setWindow(rk.key, v|slotDirty)
			s.dirty = append(s.dirty, rk)
		}
	}
	s.dirty = append(s.dirty, p.dirty[p.next:]...)
	s.gone = append(s.gone, p.gone[b.goneFrom:]...)
	s.pendingEvents = append(p.evs, s.pendingEvents...)
}
