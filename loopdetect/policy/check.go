package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// check validates values, normalizes them and fills defaults.
// Rules in skip did not decode; they are not checked (their fields would
// look missing).
func (p *Policy) check(file string, idx *keyIndex, skip map[int]bool) Errors {
	var errs Errors
	at := func(path, msg string, args ...any) {
		line, col := idx.find(path)
		errs = append(errs, &Error{File: file, Line: line, Col: col, Msg: fmt.Sprintf(msg, args...)})
	}
	for i, d := range p.LocalDomains {
		p.LocalDomains[i] = strings.ToLower(strings.TrimSpace(d))
		if p.LocalDomains[i] == "" || strings.ContainsAny(d, "@ ") {
			at("local_domains", "bad local domain %q", d)
		}
	}
	for _, n := range p.LocalNetworks {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			at("local_networks", "bad network %q: %v", n, err)
			continue
		}
		p.localNets = append(p.localNets, pfx.Masked())
	}
	p.QuarantineMailbox = strings.TrimSpace(p.QuarantineMailbox)
	if p.QuarantineMailbox != "" && !strings.Contains(p.QuarantineMailbox, "@") {
		at("quarantine_mailbox", "quarantine_mailbox %q is not an address", p.QuarantineMailbox)
	}
	if p.Mode == "" {
		p.Mode = ModeEnforce
	}
	if p.BodyLimit < 0 {
		at("body_limit", "body_limit must not be negative")
	}
	if p.BodyLimit == 0 {
		p.BodyLimit = classify.DefaultBodyLimit
	}
	if p.AdminAddress != "" && !strings.Contains(p.AdminAddress, "@") {
		at("admin_address", "admin_address %q is not an address", p.AdminAddress)
	}
	if p.AdminRelay == "" {
		p.AdminRelay = "127.0.0.1:25"
	}
	if p.AdminMailsPerHour < 0 {
		at("admin_mails_per_hour", "admin_mails_per_hour must not be negative")
	}
	if p.AdminMailsPerHour == 0 {
		p.AdminMailsPerHour = 10
	}
	p.Redis = strings.TrimSpace(p.Redis)
	if p.Redis != "" && !hasRedisScheme(p.Redis) {
		at("redis", "redis %q is not a redis://HOST:PORT/DB, redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB] or redis-cluster://HOST:PORT[,HOST:PORT...] URL", p.Redis)
	}
	if m := p.RedisFailMode; m != "" && m != "open" && m != "pass" {
		at("redis_fail_mode", "unknown redis_fail_mode %q (want open or pass)", m)
	}
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if skip[i] {
			seen[r.Name] = true
			continue
		}
		pre := fmt.Sprintf("rule[%d].", i)
		ruleAt := func(field, msg string, args ...any) {
			path := pre + field
			if _, ok := idx.exact[path]; !ok {
				path = fmt.Sprintf("rule[%d]", i)
			}
			at(path, msg, args...)
		}
		switch {
		case r.Name == "":
			ruleAt("name", "rule %d has no name", i+1)
		case strings.ContainsAny(r.Name, "\x00 \t"):
			ruleAt("name", "rule name %q must not contain spaces", r.Name)
		case seen[r.Name]:
			ruleAt("name", "rule name %q used twice", r.Name)
		}
		seen[r.Name] = true
		if len(r.Kinds) == 0 {
			ruleAt("kinds", "rule %q: kinds is required (%s)", r.Name, strings.Join(validKinds(), ", "))
		}
		for _, k := range r.Kinds {
			if !slices.Contains(validKinds(), k) {
				ruleAt("kinds", "rule %q: unknown kind %q (want %s)", r.Name, k, strings.Join(validKinds(), ", "))
			}
		}
		if r.Direction == "" {
			r.Direction = DirectionAny
		}
		r.keyParts = nil
		for _, part := range strings.Split(r.Key, "+") {
			part = strings.TrimSpace(part)
			switch {
			case part == KeyPair:
				r.keyParts = append(r.keyParts, KeySender, KeyRecipient)
			case slices.Contains(keyComponents, part):
				r.keyParts = append(r.keyParts, part)
			default:
				ruleAt("key", "rule %q: unknown key %q (want %s, joined with +)", r.Name, part, strings.Join(keyComponents, ", "))
			}
		}
		if r.Action == ActionNone {
			ruleAt("action", "rule %q: action is required (%s)", r.Name, orList(actions))
		}
		if r.Limit < 0 {
			ruleAt("limit", "rule %q: limit %d is negative", r.Name, r.Limit)
		}
		if r.Limit > 0 && r.Window.D() <= 0 {
			ruleAt("window", "rule %q: a limit of %d needs a window longer than zero", r.Name, r.Limit)
		}
		if r.Limit > 1_000_000 {
			ruleAt("limit", "rule %q: limit %d is too large (at most 1000000)", r.Name, r.Limit)
		}
		if r.BlockFor.D() < 0 {
			ruleAt("block_for", "rule %q: block_for is negative", r.Name)
		}
		if r.MinHops < 0 {
			ruleAt("min_hops", "rule %q: min_hops is negative", r.Name)
		}
		if r.RefusesLocalOutbound(p) {
			line, col := idx.find(pre + "action")
			p.Cautions = append(p.Cautions, &Error{File: file, Line: line, Col: col, Msg: fmt.Sprintf(
				"rule %q would %s reports that leave the site, also those a local mailbox's rule sent on: "+
					"the local server then writes a new NDR to that mailbox, its rule sends it on again, and the loop "+
					"runs inside the site one round per refusal; use an absorbing action (redirect, quarantine, discard), "+
					"direction = \"inbound\", or senders patterns that exclude local senders", r.Name, r.Action)})
		}
		if msg := r.broad(); msg != "" {
			if r.AllowBroad {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: rule %q %s (allowed by allow_broad)", file, r.Name, msg))
			} else {
				ruleAt("kinds", "rule %q %s; set allow_broad = true if that is meant", r.Name, msg)
			}
		}
	}
	return errs
}

func validKinds() []string {
	ks := []string{KindAny, KindLoopSign}
	for _, k := range classify.Kinds {
		ks = append(ks, string(k))
	}
	return ks
}

// broad says why a rule could act on ordinary mail, or "".
func (r *Rule) broad() string {
	if r.Action == ActionMonitor || r.Action == ActionTag || r.MinHops > 0 {
		return ""
	}
	for _, k := range r.Kinds {
		if k == KindAny || k == string(classify.KindOrdinary) {
			return fmt.Sprintf("matches ordinary mail (kind %q) and would %s it", k, r.Action)
		}
	}
	return ""
}

// hasRedisScheme reports whether url names one of the Redis URL schemes the
// daemon connects to. The rest of the URL is checked by the state backend
// when it connects (redisstore.CheckURL); the policy stays free of it.
func hasRedisScheme(url string) bool {
	for _, scheme := range []string{"redis://", "rediss://", "unix://", "redis-sentinel://", "redis-cluster://"} {
		if strings.HasPrefix(url, scheme) {
			return true
		}
	}
	return false
}
