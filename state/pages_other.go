//go:build !linux

package state

// adviseDontNeed does nothing here: the file's pages stay mapped until the
// kernel reclaims them.
func adviseDontNeed(addr, n uintptr) {}
