package admin

import (
	"os"
	"path/filepath"
	"syscall"
)

// Names of the daemon's runtime files.
const (
	SocketName  = "admin.sock"
	PidFileName = "loopbreaker.pid"
)

// EnvAdmin names the admin socket for the daemon and for the CLI, like -admin.
const EnvAdmin = "LOOPBREAKER_ADMIN"

// Layout is where a daemon and the CLI agree to find each other without
// flags.
//
// The daemon of the system state file (/var/lib/loopbreaker/state.db, the
// one the systemd unit runs) keeps its admin socket and pid file in the run
// directory (/run/loopbreaker) when that directory exists and it may write
// there; any other daemon, and that one when it may not, keeps them beside
// its state file. The state file is what identifies a daemon (one daemon
// per state file: bbolt's lock), so two daemons never share these paths.
type Layout struct {
	RunDir      string // /run/loopbreaker
	SystemState string // /var/lib/loopbreaker/state.db
}

// Installed is the layout of an installed system (make install, the unit).
var Installed = Layout{RunDir: "/run/loopbreaker", SystemState: "/var/lib/loopbreaker/state.db"}

// isSystem says whether statePath is the system state file.
func (l Layout) isSystem(statePath string) bool {
	a, err1 := filepath.Abs(statePath)
	b, err2 := filepath.Abs(l.SystemState)
	return err1 == nil && err2 == nil && a == b
}

// DaemonPath is where the daemon of statePath puts the runtime file name
// (SocketName, PidFileName) when no flag says.
func (l Layout) DaemonPath(statePath, name string) string {
	if l.isSystem(statePath) && writableDir(l.RunDir) {
		return filepath.Join(l.RunDir, name)
	}
	return filepath.Join(filepath.Dir(statePath), name)
}

// Candidates are the places the CLI looks for the runtime file name, in
// order, when no flag names it: for a state file named with -state or
// $LOOPBREAKER_STATE, where that daemon puts it (the run directory too when
// it is the system state file); with none, the run directory, then beside
// the system state file.
func (l Layout) Candidates(statePath, name string) []string {
	if statePath == "" || l.isSystem(statePath) {
		return []string{filepath.Join(l.RunDir, name), filepath.Join(filepath.Dir(l.SystemState), name)}
	}
	return []string{filepath.Join(filepath.Dir(statePath), name)}
}

// FoundWithoutFlags says whether the CLI finds the runtime file at path
// with no flag and no environment: what the admin mail's release command
// can leave out.
func (l Layout) FoundWithoutFlags(path, name string) bool {
	a, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for _, c := range l.Candidates("", name) {
		if c == a {
			return true
		}
	}
	return false
}

// writableDir says whether dir is a directory this process may create
// files in (access(2) also says no on a read-only mount).
func writableDir(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	return syscall.Access(dir, 0x2 /* W_OK */) == nil
}
