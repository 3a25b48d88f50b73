package milter

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	gomilter "github.com/d--j/go-milter"
)

// libraryLog is where go-milter's warnings go. go-milter has one
// package-level hook (LogWarning), so this is process-wide by necessity: the
// hook is set once and reads the logger through an atomic pointer, so that
// servers started one after another (or at once, in tests) never race on it.
var (
	libraryLog  atomic.Pointer[slog.Logger]
	installHook sync.Once
)

// RouteLibraryLog sends go-milter's own warnings ("Error reading milter
// command: ...") to log, as warnings with from=go-milter, instead of the
// standard log package, whose plain-text lines would land between the
// daemon's structured ones. It applies to every server in the process; the
// last call wins.
func RouteLibraryLog(log *slog.Logger) {
	if log == nil {
		return
	}
	libraryLog.Store(log)
	installHook.Do(func() {
		gomilter.LogWarning = func(format string, v ...any) {
			if l := libraryLog.Load(); l != nil {
				l.Warn(fmt.Sprintf(format, v...), "from", "go-milter")
			}
		}
	})
}
