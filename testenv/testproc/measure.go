package testproc

import (
	"bufio"
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
