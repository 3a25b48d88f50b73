package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// WriteMachine prints what the numbers were measured on.
func WriteMachine(w io.Writer) {
	cpu := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ProcMeminfo("MemTotal")
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	distro := "unknown"
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		distro = "Debian " + strings.TrimSpace(string(b))
	}
	pfx := "not installed"
	if out, err := exec.Command("/usr/sbin/postconf", "-d", "-h", "mail_version").Output(); err == nil {
		pfx = strings.TrimSpace(string(out))
	}
	commit := "unknown"
	if root, err := testproc.ModuleRoot(); err == nil {
		if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(out))
			if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
				commit += " (with uncommitted changes)"
			}
		}
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| date | %s |\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "| CPU | %s, %d online (nproc) |\n", cpu, runtime.NumCPU())
	fmt.Fprintf(w, "| memory | %s |\n", MB(mem))
	fmt.Fprintf(w, "| kernel | Linux %s, %s |\n", kernel, distro)
	fmt.Fprintf(w, "| Go | %s |\n", runtime.Version())
	fmt.Fprintf(w, "| Postfix | %s |\n", pfx)
	fmt.Fprintf(w, "| loopbreaker | commit %s |\n", commit)
	fmt.Fprintf(w, "| load average at start | %s |\n", load)
}

// ProcMeminfo reads a kB field of /proc/meminfo, in bytes.
func ProcMeminfo(field string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n << 10
		}
	}
	return 0
}
