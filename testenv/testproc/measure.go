package testproc

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// Status reads the kB fields of /proc/PID/status (VmRSS, RssAnon, RssFile,
// VmHWM, ...) in bytes; pid 0 is this process. A field it cannot read is
// absent (0 from the map): a process that is gone has none.
func Status(pid int) map[string]int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	out := map[string]int64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if fs := strings.Fields(v); len(fs) == 2 && fs[1] == "kB" {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// LongestStall runs f while another goroutine calls probe over and over
// (50 µs apart, so that f gets the lock between probes), and returns the
// longest one probe call took: how long f kept a concurrent caller waiting.
func LongestStall(probe, f func()) time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stop:
				done <- worst
				return
			default:
			}
			t := time.Now()
			probe()
			worst = max(worst, time.Since(t))
			time.Sleep(50 * time.Microsecond)
		}
	}()
	f()
	close(stop)
	return <-done
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// CPUTime is the user+system CPU time process pid has used so far (0 when
// it cannot be read), from /proc/PID/stat.
func CPUTime(pid int) time.Duration { return procCPU(pid, false) }

// CPUTimeWithChildren is CPUTime plus that of pid's children it has
// reaped (cutime+cstime).
func CPUTimeWithChildren(pid int) time.Duration { return procCPU(pid, true) }

// procCPU reads utime+stime of pid, plus cutime+cstime when children.
func procCPU(pid int, children bool) time.Duration {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	last := 12
	if children {
		last = 14
	}
	for k := 11; k <= last; k++ {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// ParentPid is the parent of process pid (0 when it cannot be read).
func ParentPid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// statFields are the fields of /proc/PID/stat after the command name
// (which may hold spaces): the state is [0], the parent [1], utime [11].
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// Pids are the ids of the processes running now (nil when /proc cannot be
// read).
func Pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
