package policy

import (
	"net/netip"
	"path"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// IsLocalDomain reports whether domain is one of the local domains (or, for
// an entry with a leading dot, below it).
func (p *Policy) IsLocalDomain(domain string) bool {
	return address.DomainIn(strings.ToLower(domain), p.LocalDomains)
}

// IsLocalAddress reports whether addr's domain is local.
func (p *Policy) IsLocalAddress(addr string) bool {
	return p.IsLocalDomain(address.Domain(address.Normalize(addr)))
}

// IsLocalClient reports whether the client address is in a local network.
func (p *Policy) IsLocalClient(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.localNets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// MatchAddress reports whether a normalized address matches a pattern: an
// exact address, "@domain" or "domain" for a whole domain, "<>" for the null
// sender, or a shell glob ("*-bounces@lists.example").
func MatchAddress(pattern, addr string) bool {
	pattern = strings.ToLower(strings.TrimSpace(pattern))
	switch {
	case pattern == "<>":
		return addr == ""
	case strings.HasPrefix(pattern, "@"):
		return address.Domain(addr) == pattern[1:]
	case !strings.Contains(pattern, "@") && !strings.ContainsAny(pattern, "*?["):
		return address.Domain(addr) == pattern
	}
	ok, err := path.Match(pattern, addr)
	return err == nil && ok
}

func matchAny(patterns []string, addr string) bool {
	for _, p := range patterns {
		if MatchAddress(p, addr) {
			return true
		}
	}
	return false
}

func (r *Rule) exemptDomain(addr string) bool {
	d := address.Domain(addr)
	for _, x := range r.ExemptDomains {
		x = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(x), "@"))
		if d == x || strings.HasSuffix(d, "."+x) {
			return true
		}
	}
	return false
}

// matchesKind reports whether the verdict is of one of the rule's kinds.
func (r *Rule) matchesKind(v *classify.Verdict) bool {
	for _, k := range r.Kinds {
		switch k {
		case KindAny:
			return true
		case KindLoopSign:
			if len(v.LoopSigns) > 0 {
				return true
			}
		default:
			if k == string(v.Kind) {
				return true
			}
		}
	}
	return false
}

// Recipients returns the normalized recipients of env that the rule looks
// at: those in its direction, matching its recipient patterns and not
// exempt. Only the envelope is consulted, so a forged header can neither
// exempt a message nor aim a rule at someone.
func (p *Policy) Recipients(r *Rule, env *classify.Envelope) []string {
	var out []string
	for _, raw := range env.Recipients {
		a := address.Normalize(raw)
		local := p.IsLocalAddress(a)
		switch r.Direction {
		case DirectionOutbound:
			if local {
				continue
			}
		case DirectionInbound:
			if !local {
				continue
			}
		}
		if len(r.Recipients) > 0 && !matchAny(r.Recipients, a) {
			continue
		}
		if matchAny(r.ExemptRecipients, a) || r.exemptDomain(a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Match reports whether the rule applies to the message, and the recipients
// it applies to.
func (p *Policy) Match(r *Rule, msg *classify.Message, v *classify.Verdict) ([]string, bool) {
	if !r.matchesKind(v) {
		return nil, false
	}
	if r.MinHops > 0 && v.Hops < r.MinHops {
		return nil, false
	}
	sender := address.Normalize(msg.Envelope.Sender)
	if len(r.Senders) > 0 && !matchAny(r.Senders, sender) {
		return nil, false
	}
	if matchAny(r.ExemptSenders, sender) || (sender != "" && r.exemptDomain(sender)) {
		return nil, false
	}
	rcpts := p.Recipients(r, &msg.Envelope)
	if len(rcpts) == 0 {
		return nil, false
	}
	return rcpts, true
}

// Keys returns the keys the rule counts the message under: one, or one per
// recipient when the key has a recipient component. A message lacking a
// component (no original Message-ID, no login) is not counted by the rule.
// Addresses in keys are normalized and lose their subaddress.
func (p *Policy) Keys(r *Rule, msg *classify.Message, v *classify.Verdict, rcpts []string) []string {
	base := make([]string, 0, len(r.keyParts))
	perRcpt := false
	for _, part := range r.keyParts {
		var val string
		switch part {
		case KeySender:
			val = address.Key(msg.Envelope.Sender, p.AddressDelimiters)
			if val == "" && v.Kind == classify.KindAutoReply {
				// Auto-replies come from the null sender (RFC 3834
				// 3.3); the responder is in From:. Without it every
				// responder's replies to one recipient would share one
				// count.
				val = address.Key(address.Extract(msg.Header.Get("From")), p.AddressDelimiters)
			}
			if val == "" {
				val = "<>"
			}
		case KeyAuthUser:
			val = strings.ToLower(strings.TrimSpace(msg.Envelope.AuthUser))
		case KeyOriginalMessage:
			val = strings.TrimSpace(v.OriginalMessageID)
		case KeyClientIP:
			val = strings.TrimSpace(msg.Envelope.ClientIP)
		case KeyRecipient:
			perRcpt = true
			val = "\x01" // placeholder, filled per recipient
		}
		if val == "" {
			return nil
		}
		base = append(base, val)
	}
	if !perRcpt {
		return []string{strings.Join(base, " ")}
	}
	keys := make([]string, 0, len(rcpts))
	for _, rc := range rcpts {
		parts := make([]string, len(base))
		for i, b := range base {
			if b == "\x01" {
				b = address.Key(rc, p.AddressDelimiters)
			}
			parts[i] = b
		}
		keys = append(keys, strings.Join(parts, " "))
	}
	return keys
}
