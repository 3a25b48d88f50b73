package state

import bolt "go.etcd.io/bbolt"

// dropFilePages unmaps the pages of the state file that reads touched from
// the process (madvise MADV_DONTNEED on bbolt's read-only shared mapping,
// pages_linux.go), so that they stop counting in its RSS. The file is
// unchanged and its pages stay in the kernel's page cache: the next read
// of one is a minor fault, not a disk read. Without it a load, or a flush
// of keys scattered over the whole file, leaves most of the file mapped
// into the process: 70-95 MB of RSS at 1M keys (state/rss_test.go).
//
// It runs in a read transaction, which keeps bbolt from remapping the file
// (a remap waits for the read transactions to end), so the address and the
// length are those of the live mapping.
func (s *Store) dropFilePages() {
	_ = s.db.View(func(tx *bolt.Tx) error {
		adviseDontNeed(s.db.Info().Data, uintptr(tx.Size()))
		return nil
	})
}
