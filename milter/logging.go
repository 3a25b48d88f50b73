package milter

import (
	"fmt"
	"log/slog"

	gomilter "github.com/d--j/go-milter"
)

// RouteLibraryLog sends go-milter's own warnings ("Error reading milter
// command: ...") to log, as warnings with from=go-milter, instead of the
// standard log package, whose plain-text lines would land between the
// daemon's structured ones. go-milter keeps one package-level hook, so this
// applies to every server in the process; the last call wins.
func RouteLibraryLog(log *slog.Logger) {
	if log == nil {
		return
	}
	gomilter.LogWarning = func(format string, v ...any) {
		log.Warn(fmt.Sprintf(format, v...), "from", "go-milter")
	}
}
