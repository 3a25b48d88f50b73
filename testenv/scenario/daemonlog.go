package scenario

import (
	"encoding/json"
	"strings"
	"time"
)

// Decision is one line of loopbreaker's JSON log about a message.
type Decision struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"` // "pass", "acted", "block started", "refused at RCPT"
	QueueID string    `json:"queue_id"`
	Kind    string    `json:"kind"`
	Sender  string    `json:"sender"`
	Action  string    `json:"action"`
	Rule    string    `json:"rule"`
	Key     string    `json:"key"`
	Count   int       `json:"count"`
	Limit   int       `json:"limit"`
	Until   string    `json:"until"`
	// Evidence is the classifier's explanation.
	Evidence string `json:"evidence"`
	// OriginalMessageID is the message an NDR reports on, as the
	// classifier found it (the deepest one it reached).
	OriginalMessageID string `json:"original_message_id"`
	// Hub is the MTA whose loopbreaker logged the line (not in the log:
	// set by the World).
	Hub string `json:"-"`
}

// Acted reports whether loopbreaker did something to the message.
func (d Decision) Acted() bool { return d.Msg != "pass" }

// parseDecisions reads the decisions from loopbreaker's JSON log.
func parseDecisions(log string) []Decision {
	var out []Decision
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var d Decision
		if json.Unmarshal([]byte(line), &d) != nil {
			continue
		}
		switch d.Msg {
		case "pass", "acted", "block started", "refused at RCPT":
			out = append(out, d)
		}
	}
	return out
}
