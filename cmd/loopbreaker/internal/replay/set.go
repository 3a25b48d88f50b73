package replay

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// Set is one -set RULE.FIELD=VALUE[,VALUE...]: a rule's setting to try at
// one or more values.
type Set struct {
	Rule, Field string
	Values      []string
}

func (s Set) String() string {
	return s.Rule + "." + s.Field + "=" + strings.Join(s.Values, ",")
}

// Fields are the rule settings -set can change.
var Fields = []string{"limit", "window", "block_for", "action"}

// ParseSet reads "forward-storm.limit=10,25,50".
func ParseSet(s string) (Set, error) {
	lhs, rhs, ok := strings.Cut(s, "=")
	if !ok {
		return Set{}, fmt.Errorf("-set %q: want RULE.FIELD=VALUE[,VALUE...]", s)
	}
	i := strings.LastIndexByte(lhs, '.')
	if i <= 0 || i == len(lhs)-1 {
		return Set{}, fmt.Errorf("-set %q: want RULE.FIELD=VALUE[,VALUE...]", s)
	}
	set := Set{Rule: strings.TrimSpace(lhs[:i]), Field: strings.ReplaceAll(strings.ToLower(strings.TrimSpace(lhs[i+1:])), "-", "_")}
	if !slices.Contains(Fields, set.Field) {
		return Set{}, fmt.Errorf("-set %q: unknown field %q (want %s)", s, set.Field, strings.Join(Fields, ", "))
	}
	for _, v := range strings.Split(rhs, ",") {
		if v = strings.TrimSpace(v); v != "" {
			set.Values = append(set.Values, v)
		}
	}
	if len(set.Values) == 0 {
		return Set{}, fmt.Errorf("-set %q: no value", s)
	}
	return set, nil
}

// change is one field of one rule at one value.
type change struct{ rule, field, value string }

func (c change) String() string { return c.rule + "." + c.field + "=" + c.value }

// apply returns a copy of p with the changes made, checked as the policy
// file's own values are.
func apply(p *policy.Policy, cs []change) (*policy.Policy, error) {
	q := *p
	q.Rules = slices.Clone(p.Rules)
	for _, c := range cs {
		r, ok := q.Rule(c.rule)
		if !ok {
			names := make([]string, len(q.Rules))
			for i := range q.Rules {
				names[i] = q.Rules[i].Name
			}
			return nil, fmt.Errorf("-set %s: no rule %q in the policy (it has %s)", c, c.rule, strings.Join(names, ", "))
		}
		var err error
		switch c.field {
		case "limit":
			var n int
			n, err = strconv.Atoi(c.value)
			if err == nil && (n < 0 || n > 1_000_000) {
				err = fmt.Errorf("limit %d out of range (0 to 1000000)", n)
			}
			r.Limit = n
		case "window":
			err = r.Window.UnmarshalText([]byte(c.value))
		case "block_for":
			err = r.BlockFor.UnmarshalText([]byte(c.value))
		case "action":
			err = r.Action.UnmarshalText([]byte(c.value))
		}
		if err != nil {
			return nil, fmt.Errorf("-set %s: %v", c, err)
		}
		if r.Limit > 0 && r.Window.D() <= 0 {
			return nil, fmt.Errorf("-set %s: a limit of %d needs a window longer than zero", c, r.Limit)
		}
		if r.BlockFor.D() < 0 || r.Window.D() < 0 {
			return nil, fmt.Errorf("-set %s: negative duration", c)
		}
	}
	return &q, nil
}

// variants expands the sets: the single-valued ones change the base
// policy; the several-valued ones give one variant per combination of
// their values (at most maxVariants).
func variants(sets []Set) (base []change, combos [][]change, err error) {
	combos = [][]change{nil}
	multi := false
	for _, s := range sets {
		if len(s.Values) == 1 {
			base = append(base, change{s.Rule, s.Field, s.Values[0]})
			continue
		}
		multi = true
		var next [][]change
		for _, c := range combos {
			for _, v := range s.Values {
				next = append(next, append(slices.Clone(c), change{s.Rule, s.Field, v}))
			}
		}
		combos = next
		if len(combos) > maxVariants {
			return nil, nil, fmt.Errorf("-set: %d combinations; at most %d in one pass", len(combos), maxVariants)
		}
	}
	if !multi {
		combos = nil
	}
	return base, combos, nil
}

const maxVariants = 32
