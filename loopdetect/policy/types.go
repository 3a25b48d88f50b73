package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what a rule does with a message over its limit.
type Action string

// The actions. Every action but monitor ends the message's normal delivery.
const (
	// ActionNone is the decision for a message no rule acts on.
	ActionNone Action = ""
	// ActionReject refuses the message with a 5xx reply (RFC 5321 4.2.2).
	ActionReject Action = "reject"
	// ActionTempfail refuses it with a 4xx reply; the sender retries later.
	ActionTempfail Action = "tempfail"
	// ActionQuarantine accepts it into the MTA's hold queue (Postfix:
	// released with postsuper -H).
	ActionQuarantine Action = "quarantine"
	// ActionRedirect replaces every recipient with the quarantine mailbox and
	// records the original recipients in a header.
	ActionRedirect Action = "redirect"
	// ActionDiscard accepts and drops it.
	ActionDiscard Action = "discard"
	// ActionTag delivers it with a header that names the rule.
	ActionTag Action = "tag"
	// ActionMonitor only logs and counts.
	ActionMonitor Action = "monitor"
)

var actions = []Action{ActionReject, ActionTempfail, ActionQuarantine, ActionRedirect, ActionDiscard, ActionTag, ActionMonitor}

// UnmarshalText validates the action name, so a typo is reported at its position.
func (a *Action) UnmarshalText(b []byte) error { return parseName(a, "action", b, actions...) }

// parseName sets *dst to the name in b, lower-cased and trimmed, when it is
// one of names; else it says which names there are. It serves the
// UnmarshalText of the policy's named values (what is the value's kind).
func parseName[T ~string](dst *T, what string, b []byte, names ...T) error {
	s := T(strings.ToLower(strings.TrimSpace(string(b))))
	if !slices.Contains(names, s) {
		return fmt.Errorf("unknown %s %q (want %s)", what, b, orList(names))
	}
	*dst = s
	return nil
}

// orList writes names as "a, b or c".
func orList[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Mode is how the daemon treats its decisions: it carries them out
// (enforce) or only counts, starts and ends blocks and says what it would
// have done (monitor).
type Mode string

// The modes.
const (
	// ModeEnforce carries out every rule's action. The default.
	ModeEnforce Mode = "enforce"
	// ModeMonitor counts every rule and starts and ends blocks exactly as
	// enforce does, but acts on no message: the decision log, the audit
	// trail, the blocks, the metrics and the admin mail say what enforce
	// would have done.
	ModeMonitor Mode = "monitor"
)

// UnmarshalText validates the mode name.
func (m *Mode) UnmarshalText(b []byte) error {
	return parseName(m, "mode", b, ModeEnforce, ModeMonitor)
}

// Duration is a time.Duration written as "15m", "1h30m" or "2d".
type Duration time.Duration

// UnmarshalText parses Go duration syntax, plus a whole number of days ("2d").
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && !strings.ContainsAny(n, "hms.") {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n {
			*d = Duration(time.Duration(days) * 24 * time.Hour)
			return nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: want a number with a unit, e.g. \"15m\", \"1h\", \"2d\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Direction says which recipients a rule looks at.
type Direction string

// Directions.
const (
	// DirectionOutbound: recipients outside the local domains.
	DirectionOutbound Direction = "outbound"
	// DirectionInbound: recipients in the local domains.
	DirectionInbound Direction = "inbound"
	// DirectionAny: every recipient.
	DirectionAny Direction = "any"
)

// UnmarshalText validates the direction name.
func (d *Direction) UnmarshalText(b []byte) error {
	return parseName(d, "direction", b, DirectionOutbound, DirectionInbound, DirectionAny)
}

// Match kinds: the classifier's kinds plus two of the policy's own.
const (
	// KindLoopSign matches a message with any loop sign (hops, X-Loop,
	// forward depth, NDR of an NDR), whatever its kind.
	KindLoopSign = "loop-sign"
	// KindAny matches every message.
	KindAny = "any"
)

// Key components a rule counts by.
const (
	KeySender          = "sender"
	KeyAuthUser        = "auth-user"
	KeyRecipient       = "recipient"
	KeyOriginalMessage = "original-message"
	KeyClientIP        = "client-ip"
	// KeyPair is shorthand for sender+recipient.
	KeyPair = "pair"
)

var keyComponents = []string{KeySender, KeyAuthUser, KeyRecipient, KeyOriginalMessage, KeyClientIP, KeyPair}
