// Package policy reads, checks and applies loopbreaker's TOML policy: the
// local domains, the quarantine mailbox and the rules that say which messages
// are counted by which key, how many a window lets through and what happens
// to the rest.
//
// It is pure: matching a message against a rule needs no I/O. Counting is
// the state package's job, deciding the engine's.
package policy

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

//go:embed default.toml
var defaultPolicy string

// DefaultText is the built-in policy, with its comments, as
// `loopbreaker default-policy` prints it.
func DefaultText() string { return defaultPolicy }

// Default parses the built-in policy.
func Default() *Policy {
	p, err := Parse("(built-in)", []byte(defaultPolicy))
	if err != nil {
		// The built-in policy is tested; failing here is a build defect.
		panic("built-in policy does not parse: " + err.Error())
	}
	return p
}

// Policy is a parsed and checked policy.
type Policy struct {
	// Mode is enforce (the default: rules act) or monitor (rules count and
	// blocks start and end, but no message is acted on). The -mode flag of
	// serve overrides it (Overrides.Mode), also across reloads.
	Mode Mode `toml:"mode"`
	// LocalDomains are the domains whose recipients are inside. A leading
	// dot (".corp.example") also takes the subdomains.
	LocalDomains []string `toml:"local_domains"`
	// LocalNetworks are the client networks that count as inside (CIDR).
	LocalNetworks []string `toml:"local_networks"`
	// QuarantineMailbox receives redirected messages.
	QuarantineMailbox string `toml:"quarantine_mailbox"`
	// AdminAddress is told when a block starts; "" sends no mail.
	AdminAddress string `toml:"admin_address"`
	// AdminFrom is the envelope sender of admin mail: "" is the null
	// sender (RFC 5321 4.5.5), which no auto-responder or rule answers.
	AdminFrom string `toml:"admin_from"`
	// AdminRelay is the SMTP server admin mail goes through (host:port);
	// default the local MTA, 127.0.0.1:25.
	AdminRelay string `toml:"admin_relay"`
	// AdminMailsPerHour caps admin mail; blocks past it are summed up in
	// one message when the hour is over. Default 10.
	AdminMailsPerHour int `toml:"admin_mails_per_hour"`
	// BodyLimit is how many body bytes the classifier reads.
	BodyLimit int `toml:"body_limit"`
	// StateFile is the bbolt file; flags override it.
	StateFile string `toml:"state_file"`
	// Redis is the URL of a Redis that several daemons share their counts
	// and blocks in (redis://HOST:PORT/DB, redis-sentinel://... or
	// redis-cluster://...); "" keeps them in the state
	// file alone. The -redis flag overrides it; a reload does not change it.
	Redis string `toml:"redis"`
	// RedisFailMode is what to do while Redis is unreachable: "open" (the
	// default: count in the state file) or "pass" (count nothing).
	RedisFailMode string `toml:"redis_fail_mode"`
	// AddressDelimiters separate a subaddress from the mailbox in counting
	// keys (Postfix's recipient_delimiter); "" keeps addresses whole.
	// Default "+".
	AddressDelimiters string `toml:"address_delimiters"`
	// Rules are applied in order; every matching rule counts, the first one
	// over its limit acts.
	Rules []Rule `toml:"rule"`

	// Source is where the policy came from, for messages.
	Source string `toml:"-"`
	// Warnings are findings that did not stop the policy from loading.
	Warnings []string `toml:"-"`
	// Cautions are findings at a place in the file that did not stop the
	// policy from loading: a rule that would reject or tempfail what a
	// local mailbox sends out (see Rule.RefusesLocalOutbound).
	Cautions Errors `toml:"-"`
	// FileMode is the file's mode when Overrides.Mode replaced it; "" when
	// the mode is the file's own.
	FileMode Mode `toml:"-"`

	localNets []netip.Prefix
}

// Rule is one limit.
type Rule struct {
	Name string `toml:"name"`
	// Kinds are the classifier's kinds (bounce, forwarded-ndr, auto-reply,
	// ordinary) or loop-sign or any.
	Kinds []string `toml:"kinds"`
	// Direction selects the recipients the rule looks at.
	Direction Direction `toml:"direction"`
	// Senders and Recipients, when set, restrict the rule to envelope
	// addresses matching one of the patterns (see MatchAddress).
	Senders    []string `toml:"senders"`
	Recipients []string `toml:"recipients"`
	// MinHops restricts the rule to messages with at least that many
	// Received fields.
	MinHops int `toml:"min_hops"`
	// Key is what is counted: components joined by "+", e.g. "sender",
	// "sender+recipient", "original-message".
	Key string `toml:"key"`
	// Limit messages per Window pass; the next and all during the block get
	// Action. A limit of 0 acts on every matching message.
	Limit  int      `toml:"limit"`
	Window Duration `toml:"window"`
	Action Action   `toml:"action"`
	// BlockFor is how long the key stays blocked once over the limit.
	BlockFor Duration `toml:"block_for"`
	// SMTPText replaces the reply text of reject and tempfail.
	SMTPText string `toml:"smtp_text"`
	// Exempt senders, recipients (patterns) and domains are never counted.
	ExemptSenders    []string `toml:"exempt_senders"`
	ExemptRecipients []string `toml:"exempt_recipients"`
	ExemptDomains    []string `toml:"exempt_domains"`
	// AllowBroad accepts a rule that could block ordinary mail.
	AllowBroad bool `toml:"allow_broad"`

	keyParts []string
}

// KeyParts is Key split into its components, "pair" expanded.
func (r *Rule) KeyParts() []string { return r.keyParts }

// Error is a problem at a place in a policy file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and checks the policy file at path.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(path, b)
}

// Parse parses and checks a policy. name is used in error positions. Every
// error is a *Error or Errors with file:line:col, whatever found it: the
// TOML parser (its own position), a value of the wrong type or one a
// field's parser refuses, an unknown key, or check (the key's position,
// from indexKeys).
func Parse(name string, data []byte) (*Policy, error) {
	// The file is decoded key by key (every value a toml.Primitive first),
	// not in one toml.Decode into the struct: the decoder stops at the
	// first bad value, in an order that depends on map iteration, and its
	// errors carry no column and, for a key in an array of tables, the line
	// of the key's last occurrence in the file. Key by key, every bad value
	// is reported, at its own key.
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, syntaxError(name, data, err)
	}
	idx := indexKeys(data)
	var errs Errors
	at := func(path, msg string, args ...any) {
		line, col := idx.find(path)
		errs = append(errs, &Error{File: name, Line: line, Col: col, Msg: fmt.Sprintf(msg, args...)})
	}
	var p Policy
	var rules []toml.Primitive
	rulesOK := true
	for _, k := range sortedKeys(top) {
		if f, ok := fieldByKey(reflect.TypeFor[Policy](), k); ok && f.Name == "Rules" {
			if err := md.PrimitiveDecode(top[k], &rules); err != nil {
				at(k, "%s", decodeMessage(k, err, "an array of tables ([[rule]])"))
				rulesOK = false
			}
			continue
		}
		switch msg, unknown := decodeKey(&md, top[k], k, reflect.ValueOf(&p).Elem()); {
		case unknown:
			at(k, "unknown field %q", k)
		case msg != "":
			at(k, "%s", msg)
		}
	}
	badRule := map[int]bool{}
	if rulesOK {
		p.Rules = make([]Rule, len(rules))
		for i, prim := range rules {
			path := fmt.Sprintf("rule[%d]", i)
			// A non-table decodes into a map as an empty one, without an
			// error: look first.
			var v any
			var fields map[string]toml.Primitive
			if err := md.PrimitiveDecode(prim, &v); err != nil {
				at(path, "%s", decodeMessage(path, err, ""))
				badRule[i] = true
				continue
			} else if _, ok := v.(map[string]any); !ok {
				at(path, "rule %d must be a table, not %s", i+1, valueName(fmt.Sprintf("%T", v)))
				badRule[i] = true
				continue
			}
			if err := md.PrimitiveDecode(prim, &fields); err != nil {
				at(path, "%s", decodeMessage(path, err, ""))
				badRule[i] = true
				continue
			}
			r := &p.Rules[i]
			who := fmt.Sprintf("rule %d", i+1)
			if n, ok := fields["name"]; ok {
				var s string
				if md.PrimitiveDecode(n, &s) == nil && s != "" {
					who = fmt.Sprintf("rule %q", s)
				}
			}
			for _, k := range sortedKeys(fields) {
				switch msg, unknown := decodeKey(&md, fields[k], k, reflect.ValueOf(r).Elem()); {
				case unknown:
					at(path+"."+k, "unknown field %q", "rule."+k)
				case msg != "":
					at(path+"."+k, "%s: %s", who, msg)
					badRule[i] = true
				}
			}
		}
	}
	if _, ok := top["address_delimiters"]; !ok {
		p.AddressDelimiters = "+"
	}
	p.Source = name
	if rulesOK {
		errs = append(errs, p.check(name, idx, badRule)...)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		return nil, errs
	}
	return &p, nil
}

// Rule returns the rule of that name.
func (p *Policy) Rule(name string) (*Rule, bool) {
	for i := range p.Rules {
		if p.Rules[i].Name == name {
			return &p.Rules[i], true
		}
	}
	return nil, false
}
