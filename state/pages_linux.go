package state

import "syscall"

// adviseDontNeed is madvise(addr, n, MADV_DONTNEED). On a read-only shared
// file mapping it only drops the process's page table entries.
func adviseDontNeed(addr, n uintptr) {
	if addr == 0 || n == 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, n, syscall.MADV_DONTNEED)
}
