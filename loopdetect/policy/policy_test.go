package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

func TestDefaultPolicyParses(t *testing.T) {
	p := Default()
	r, ok := p.Rule("forward-storm")
	if !ok {
		t.Fatal("no forward-storm rule")
	}
	if r.Limit != 25 || r.Window.D().Minutes() != 15 || r.Action != ActionRedirect || r.BlockFor.D().Minutes() != 60 || r.Direction != DirectionOutbound {
		t.Fatalf("forward-storm = %+v", r)
	}
	for _, name := range []string{"bounces-to-recipient", "ndrs-per-original", "autoreply-pingpong", "hop-ceiling"} {
		if _, ok := p.Rule(name); !ok {
			t.Errorf("default policy lacks %s", name)
		}
	}
}

func TestParseErrorsHavePositions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // substring, including file:line:col
	}{
		{"syntax", "local_domains = [\"a\"\nquarantine_mailbox = \"x\"\n", "p.toml:2:"},
		{"unknown top-level field", "local_domains = []\nquarantine_mailbx = \"q@x\"\n", `p.toml:2:1: unknown field "quarantine_mailbx"`},
		{"unknown rule field", rule("limt = 3"), `p.toml:8:1: unknown field "rule.limt"`},
		{"bad duration", strings.Replace(rule(""), `window = "15m"`, `window = "15 minutes"`, 1), "p.toml:5:"},
		{"bad action", strings.Replace(rule(""), `action = "redirect"`, `action = "bounce-it"`, 1), `unknown action "bounce-it"`},
		{"bad kind", strings.Replace(rule(""), `kinds = ["forwarded-ndr"]`, `kinds = ["fwd"]`, 1), `p.toml:3:1: rule "r": unknown kind "fwd"`},
		{"bad key", strings.Replace(rule(""), `key = "sender"`, `key = "sender+subject"`, 1), `p.toml:6:1: rule "r": unknown key "subject"`},
		{"negative limit", strings.Replace(rule(""), `limit = 3`, `limit = -1`, 1), `p.toml:4:1: rule "r": limit -1 is negative`},
		{"limit without window", strings.Replace(rule(""), `window = "15m"`, `window = "0s"`, 1), "needs a window"},
		{"broad rule", strings.Replace(rule(""), `kinds = ["forwarded-ndr"]`, `kinds = ["any"]`, 1), "allow_broad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			var pe *Error
			var pes Errors
			if !errors.As(err, &pe) && !errors.As(err, &pes) {
				t.Fatalf("error type %T", err)
			}
		})
	}
}

func rule(extra string) string {
	return "local_domains = [\"corp.example\"]\n[[rule]]\nkinds = [\"forwarded-ndr\"]\nlimit = 3\nwindow = \"15m\"\nkey = \"sender\"\naction = \"redirect\"\n" + extra + "\nname = \"r\"\n"
}

func TestBroadRuleAllowedWithOverride(t *testing.T) {
	src := strings.Replace(rule("allow_broad = true"), `kinds = ["forwarded-ndr"]`, `kinds = ["any"]`, 1)
	p, err := Parse("p.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes()) == 0 || !strings.Contains(strings.Join(p.Notes(), "\n"), "allow_broad") {
		t.Fatalf("no warning: %v", p.Notes())
	}
}

func TestMatchAndKeys(t *testing.T) {
	p := Default()
	p.Apply(Overrides{LocalDomains: []string{"Corp.Example"}, QuarantineMailbox: "q@corp.example"})
	fwd, _ := p.Rule("forward-storm")
	pair, _ := p.Rule("autoreply-pingpong")
	msg := &classify.Message{Envelope: classify.Envelope{
		Sender:     "Alice@Corp.Example",
		Recipients: []string{"typo@Outside.example", "bob@corp.example"},
	}}
	v := &classify.Verdict{Kind: classify.KindForwardedNDR}
	rcpts, ok := p.Match(fwd, msg, v)
	if !ok || len(rcpts) != 1 || rcpts[0] != "typo@outside.example" {
		t.Fatalf("outbound recipients = %v %v", rcpts, ok)
	}
	if keys := p.Keys(fwd, msg, v, rcpts); len(keys) != 1 || keys[0] != "alice@corp.example" {
		t.Fatalf("keys = %q", keys)
	}
	// Ordinary mail never matches the storm rule.
	if _, ok := p.Match(fwd, msg, &classify.Verdict{Kind: classify.KindOrdinary}); ok {
		t.Fatal("ordinary mail matched forward-storm")
	}
	// Only local recipients: not outbound.
	local := &classify.Message{Envelope: classify.Envelope{Sender: "alice@corp.example", Recipients: []string{"bob@corp.example"}}}
	if _, ok := p.Match(fwd, local, v); ok {
		t.Fatal("local-only forward matched an outbound rule")
	}
	ar := &classify.Verdict{Kind: classify.KindAutoReply}
	rcpts, _ = p.Match(pair, msg, ar)
	if keys := p.Keys(pair, msg, ar, rcpts); len(keys) != 2 || keys[0] != "alice@corp.example typo@outside.example" {
		t.Fatalf("pair keys = %q", keys)
	}
	// No original Message-ID: the per-original rule does not count it.
	orig, _ := p.Rule("ndrs-per-original")
	if keys := p.Keys(orig, msg, v, rcpts); keys != nil {
		t.Fatalf("keys without original = %q", keys)
	}
}

func TestMatchAddress(t *testing.T) {
	tests := []struct {
		pattern, addr string
		want          bool
	}{
		{"helpdesk@corp.example", "helpdesk@corp.example", true},
		{"@corp.example", "x@corp.example", true},
		{"corp.example", "x@corp.example", true},
		{"corp.example", "x@sub.corp.example", false},
		{"*-bounces@lists.example", "dev-bounces@lists.example", true},
		{"<>", "", true},
		{"<>", "a@b", false},
	}
	for _, tt := range tests {
		if got := MatchAddress(tt.pattern, tt.addr); got != tt.want {
			t.Errorf("MatchAddress(%q, %q) = %v", tt.pattern, tt.addr, got)
		}
	}
}

func TestKeysAreNormalized(t *testing.T) {
	p := Default()
	fwd, _ := p.Rule("forward-storm")
	v := &classify.Verdict{Kind: classify.KindForwardedNDR}
	key := func(sender string) string {
		msg := &classify.Message{Envelope: classify.Envelope{Sender: sender, Recipients: []string{"x@outside.example"}}}
		rcpts, _ := p.Match(fwd, msg, v)
		return p.Keys(fwd, msg, v, rcpts)[0]
	}
	same := []string{"alice@bücher.example", "Alice@BÜCHER.example", "<alice+storm@xn--bcher-kva.example>", "alice+x@bücher.example.", " alice@Bücher.Example "}
	for _, s := range same {
		if got := key(s); got != "alice@xn--bcher-kva.example" {
			t.Errorf("key(%q) = %q", s, got)
		}
	}
	// Distinct mailboxes stay distinct.
	for _, s := range []string{"alice.b@bücher.example", "alicea@bücher.example", "alice@bucher.example", "+alice@bücher.example"} {
		if got := key(s); got == "alice@xn--bcher-kva.example" {
			t.Errorf("key(%q) merged with alice", s)
		}
	}
	// With no delimiter configured, tags stay.
	q, err := Parse("p.toml", []byte("address_delimiters = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := address.Key("a+b@x.example", q.AddressDelimiters); got != "a+b@x.example" {
		t.Errorf("got %q", got)
	}
}

// TestAutoReplyFromNullSenderIsKeyedByFrom: auto-replies come from the
// null sender, so the ping-pong pair key takes the responder from From:;
// two responders answering one user are two pairs, not one.
func TestAutoReplyFromNullSenderIsKeyedByFrom(t *testing.T) {
	p := Default()
	r, ok := p.Rule("autoreply-pingpong")
	if !ok || !slices.Equal(r.KeyParts(), []string{KeySender, KeyRecipient}) {
		t.Fatalf("default policy has no autoreply-pingpong rule keyed by sender+recipient: %+v", r)
	}
	v := &classify.Verdict{Kind: classify.KindAutoReply}
	tests := []struct {
		sender, from, want string
	}{
		{"", "Helpdesk <helpdesk+ack@Outside.example>", "helpdesk@outside.example bob@corp.example"},
		{"", `"Out. of office" <ooo@other.example>`, "ooo@other.example bob@corp.example"},
		{"", "", "<> bob@corp.example"},
		{"", "not an address", "<> bob@corp.example"},
		{"responder@outside.example", "Someone <else@outside.example>", "responder@outside.example bob@corp.example"},
	}
	for _, tt := range tests {
		msg := &classify.Message{Envelope: classify.Envelope{Sender: tt.sender, Recipients: []string{"bob@corp.example"}}}
		if tt.from != "" {
			msg.Header.Set("From", tt.from)
		}
		rcpts, ok := p.Match(r, msg, v)
		if !ok {
			t.Fatalf("rule %s does not match an auto-reply to bob", r.Name)
		}
		if got := p.Keys(r, msg, v, rcpts); len(got) != 1 || got[0] != tt.want {
			t.Errorf("sender %q From %q: keys %q, want %q", tt.sender, tt.from, got, tt.want)
		}
	}
}

func TestRedisURLSchemes(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379/0", true},
		{"rediss://redis.corp.example:6380/1", true},
		{"unix:///run/redis/redis.sock", true},
		{"redis-sentinel://10.0.0.5:26379,10.0.0.6:26379/mymaster/0", true},
		{"redis-cluster://10.0.0.5:7000,10.0.0.6:7000", true},
		{"http://10.0.0.5:6379", false},
		{"10.0.0.5:6379", false},
	} {
		src := "redis = \"" + tc.url + "\"\n"
		_, err := Parse("p.toml", []byte(src))
		if (err == nil) != tc.ok {
			t.Errorf("redis = %q: err %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

// TestDefaultAbsorbsLocalOutbound: the built-in policy stops every loop
// whose sender is a local mailbox with an absorbing action: no rule rejects
// or tempfails outbound reports, so check-policy has no caution for it,
// with local domains or without.
func TestDefaultAbsorbsLocalOutbound(t *testing.T) {
	p := Default()
	if len(p.Cautions) != 0 {
		t.Errorf("built-in policy cautions: %v", p.Cautions)
	}
	p.Apply(Overrides{LocalDomains: []string{"corp.example"}})
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.RefusesLocalOutbound(p) {
			t.Errorf("built-in rule %q refuses outbound mail of local senders", r.Name)
		}
	}
	for _, name := range []string{"ndrs-per-original-outbound", "bounces-leaving"} {
		r, ok := p.Rule(name)
		if !ok {
			t.Fatalf("no built-in rule %q", name)
		}
		if r.Direction != DirectionOutbound || r.Action != ActionRedirect {
			t.Errorf("rule %q: direction %s action %s, want outbound redirect", name, r.Direction, r.Action)
		}
	}
	if r, _ := p.Rule("ndrs-per-original"); r.Direction != DirectionInbound || r.Action != ActionReject {
		t.Errorf("ndrs-per-original: direction %s action %s, want inbound reject", r.Direction, r.Action)
	}
}
