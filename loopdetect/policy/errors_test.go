package policy

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// twoRules is a valid policy with two rules; the tests break one line of it.
// Line numbers are those of this text.
const twoRules = `local_domains = ["corp.example"]
quarantine_mailbox = "q@corp.example"

[[rule]]
name = "first"
kinds = ["forwarded-ndr"]
direction = "outbound"
key = "sender"
limit = 25
window = "15m"
action = "redirect"
block_for = "1h"

[[rule]]
name = "second"
kinds = ["bounce"]
key = "recipient"
limit = 50
window = "10m"
action = "reject"
allow_broad = false
`

// breakLine replaces line n (1-based) of twoRules.
func breakLine(n int, with string) string {
	lines := strings.Split(twoRules, "\n")
	lines[n-1] = with
	return strings.Join(lines, "\n")
}

var positioned = regexp.MustCompile(`^bad\.toml:[1-9][0-9]*:[1-9][0-9]*: \S`)

// TestEveryErrorHasFileLineCol: whatever finds the problem (the TOML
// parser, the decoder's type checks, a field's own parser, the unknown-key
// check or the policy's validation), every error line is
// "file:line:col: message", at the key (or the parser's place) it is about.
func TestEveryErrorHasFileLineCol(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want are the error lines in order, each the start of its line:
		// the exact "file:line:col: " and the message, or its beginning
		// (or "file:line:" alone for the parser's own messages).
		want []string
	}{
		// Type mismatches, one per kind of destination.
		{"int gets string", breakLine(9, `limit = "ten"`),
			[]string{`bad.toml:9:1: rule "first": limit must be an integer, not a string`}},
		{"int gets float", breakLine(18, `limit = 2.5`),
			[]string{`bad.toml:18:1: rule "second": limit must be an integer, not a float`}},
		{"top-level int gets string", "body_limit = \"big\"\n" + twoRules,
			[]string{`bad.toml:1:1: body_limit must be an integer, not a string`}},
		{"string gets int", breakLine(2, `quarantine_mailbox = 5`),
			[]string{`bad.toml:2:1: quarantine_mailbox must be a string, not an integer`}},
		{"rule string gets bool", breakLine(17, `key = true`),
			[]string{`bad.toml:17:1: rule "second": key must be a string, not a boolean`}},
		{"duration gets int", breakLine(10, `window = 15`),
			[]string{`bad.toml:10:1: rule "first": window: bad duration "15"`}},
		{"duration gets array", breakLine(19, `window = ["10m"]`),
			[]string{`bad.toml:19:1: rule "second": window must be a string, not an array`}},
		{"duration bad text", breakLine(12, `block_for = "an hour"`),
			[]string{`bad.toml:12:1: rule "first": block_for: bad duration "an hour"`}},
		{"bool gets string", breakLine(21, `allow_broad = "no"`),
			[]string{`bad.toml:21:1: rule "second": allow_broad must be a boolean, not a string`}},
		{"array gets string", breakLine(6, `kinds = "forwarded-ndr"`),
			[]string{`bad.toml:6:1: rule "first": kinds must be an array, not a string`}},
		{"array element gets int", breakLine(16, `kinds = ["bounce", 7]`),
			[]string{`bad.toml:16:1: rule "second": kinds must be a string, not an integer`}},
		{"top-level array gets string", breakLine(1, `local_domains = "corp.example"`),
			[]string{`bad.toml:1:1: local_domains must be an array, not a string`}},
		{"rule is an array of integers", "local_domains = []\nrule = [1]\n",
			[]string{`bad.toml:2:1: rule 1 must be a table, not an integer`}},
		{"rule in an inline table", "rule = [{name = \"x\", limit = \"y\"}]\n",
			[]string{`bad.toml:1:1: rule "x": limit must be an integer, not a string`}},
		{"rule is a table", "local_domains = []\n[rule]\nname = \"x\"\n",
			[]string{`bad.toml:2:1: rule must be an array of tables ([[rule]]), not a table`}},
		{"indented key", breakLine(18, `    limit = "fifty"`),
			[]string{`bad.toml:18:5: rule "second": limit must be an integer, not a string`}},
		// Values a field's own parser refuses, in the first of two rules:
		// the decoder alone would place them at the second rule's key.
		{"bad action in first rule", breakLine(11, `action = "bounce-it"`),
			[]string{`bad.toml:11:1: rule "first": action: unknown action "bounce-it"`}},
		{"bad direction", breakLine(7, `direction = "sideways"`),
			[]string{`bad.toml:7:1: rule "first": direction: unknown direction "sideways"`}},
		{"type error in first rule", breakLine(9, `limit = "25"`),
			[]string{`bad.toml:9:1: rule "first": limit must be an integer`}},
		// Unknown keys.
		{"unknown top-level key", breakLine(2, `quarantine_mailbx = "q@corp.example"`),
			[]string{`bad.toml:2:1: unknown field "quarantine_mailbx"`}},
		{"unknown rule key", breakLine(17, `kee = "recipient"`),
			[]string{`bad.toml:14:1: rule "second": unknown key ""`, `bad.toml:17:1: unknown field "rule.kee"`}},
		// Syntax errors: the parser's own position.
		{"unterminated array", breakLine(1, `local_domains = ["corp.example"`),
			[]string{`bad.toml:2:`}},
		{"missing value", breakLine(9, `limit =`),
			[]string{`bad.toml:9:`}},
		{"duplicate key", breakLine(21, `limit = 3`),
			[]string{`bad.toml:21:1: `}},
		{"bad string escape", breakLine(5, `name = "fi\qrst"`),
			[]string{`bad.toml:5:`}},
		// The project's own validation.
		{"unknown kind", breakLine(16, `kinds = ["bounces"]`),
			[]string{`bad.toml:16:1: rule "second": unknown kind "bounces"`}},
		{"negative limit", breakLine(18, `limit = -1`),
			[]string{`bad.toml:18:1: rule "second": limit -1 is negative`}},
		{"missing action", breakLine(20, ``),
			[]string{`bad.toml:14:1: rule "second": action is required`}},
		{"bad redis fail mode", "redis_fail_mode = \"closed\"\n" + twoRules,
			[]string{`bad.toml:1:1: unknown redis_fail_mode "closed"`}},
		// Several problems: all of them, in file order.
		{"several", strings.Replace(strings.Replace(twoRules, `limit = 25`, `limit = "x"`, 1), `action = "reject"`, `action = "bounce"`, 1),
			[]string{`bad.toml:9:1: rule "first": limit must be an integer`, `bad.toml:20:1: rule "second": action: unknown action "bounce"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, l := range lines {
				if !positioned.MatchString(l) {
					t.Errorf("error line %q is not file:line:col: message", l)
				}
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d error lines, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: got %q, want it to start with %q", i+1, lines[i], w)
				}
			}
		})
	}
}

// TestTwoRulesIsValid keeps the base text of the table above honest.
func TestTwoRulesIsValid(t *testing.T) {
	if _, err := Parse("bad.toml", []byte(twoRules)); err != nil {
		t.Fatal(err)
	}
}

// TestKeyByKeyDecodeMatchesDecode: Parse decodes key by key; a valid file
// must come out exactly as one toml.Decode into the struct makes it, every
// field set, the decoder's case-insensitive key match included.
func TestKeyByKeyDecodeMatchesDecode(t *testing.T) {
	full := `local_domains = ["corp.example", ".sub.corp.example"]
local_networks = ["10.0.0.0/8"]
quarantine_mailbox = "q@corp.example"
admin_address = "postmaster@corp.example"
admin_from = "loopbreaker@corp.example"
admin_relay = "127.0.0.1:2525"
admin_mails_per_hour = 3
body_limit = 4096
state_file = "/tmp/x.db"
redis = "redis://127.0.0.1:6379/0"
redis_fail_mode = "pass"
address_delimiters = "+-"

[[rule]]
name = "r1"
kinds = ["bounce", "forwarded-ndr"]
direction = "inbound"
senders = ["*@outside.example"]
recipients = ["@corp.example"]
min_hops = 2
key = "pair"
limit = 7
window = "2d"
action = "tempfail"
block_for = "90m"
smtp_text = "4.7.1 later"
exempt_senders = ["boss@corp.example"]
exempt_recipients = ["list@corp.example"]
exempt_domains = ["partner.example"]

[[rule]]
Name = "r2"
KINDS = ["any"]
key = "client-ip"
limit = 0
action = "tag"
allow_broad = true
`
	for name, src := range map[string]string{"full": full, "default": DefaultText()} {
		got, err := Parse("p.toml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want Policy
		md, err := toml.Decode(src, &want)
		if err != nil {
			t.Fatal(err)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Fatalf("%s: undecoded %v", name, u)
		}
		if !md.IsDefined("address_delimiters") {
			want.AddressDelimiters = "+"
		}
		want.Source = "p.toml"
		if errs := want.check("p.toml", indexKeys([]byte(src)), nil); len(errs) > 0 {
			t.Fatalf("%s: %v", name, errs)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: key by key\n%+v\none Decode\n%+v", name, got, &want)
		}
	}
}
