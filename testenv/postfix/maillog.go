package postfix

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// logSize returns the current size of the maillog file.
func (i *Instance) logSize() int64 {
	fi, err := os.Stat(i.logFile)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was appended to the maillog after offset.
func (i *Instance) logSince(offset int64) string {
	log := i.Log()
	if int64(len(log)) < offset {
		return log
	}
	return log[offset:]
}

// Log returns the contents of the instance's maillog file.
func (i *Instance) Log() string {
	b, err := os.ReadFile(i.logFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitLog waits until the maillog contains substr, or ctx is done.
func (i *Instance) WaitLog(ctx context.Context, substr string) error {
	if err := testproc.WaitForLine(ctx, i.Log, substr, 1); err != nil {
		return fmt.Errorf("postfix %s: %w\n%s", i.name, err, i.logTail("maillog", 30))
	}
	return nil
}

// logTail formats the last n lines of the maillog (what = "maillog") or of
// the start-fg output for an error message.
func (i *Instance) logTail(what string, n int) string {
	var text string
	if what == "maillog" {
		text = i.Log()
	} else {
		b, _ := os.ReadFile(i.fgLog)
		text = string(b)
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 || (len(lines) == 1 && lines[0] == "") {
		return fmt.Sprintf("--- %s: empty ---\n", what)
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s\n", what, strings.Join(lines, "\n"))
}
