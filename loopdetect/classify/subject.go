package classify

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

type prefixKind uint8

const (
	pfxNone prefixKind = iota
	pfxForward
	pfxReply
	pfxAuto
)

type subjectInfo struct {
	forwards    int        // forward prefixes before the first NDR phrase
	replies     int        // reply prefixes before the first NDR phrase
	outer       prefixKind // the first prefix of the subject
	rest        string     // the subject after the leading prefixes and tags
	ndrPhrase   string     // the NDR phrase the rest starts with, if any
	ndrKind     phraseKind // failure, delay or success
	ndrContains string     // an NDR phrase found later in an unprefixed subject
	ndrs        int        // NDR phrases along the whole chain ("Undeliverable: FW: Undeliverable: x" is 2)
	depth       int        // forward prefixes along the whole chain
	innerFwdNDR bool       // the NDR phrase is followed by a forwarded NDR
	outerVS     bool       // the first prefix is "VS", a forward in Danish and Norwegian, a reply in Finnish
	autoReply   string     // an auto-reply marker
	autoWeak    bool       // that marker is one people write too (autoReplyWeak)
	autoColon   bool       // that marker is followed by a colon
	autoPrefix  bool       // "Auto:" (RFC 3834 3.1.5 suggests it; weak on its own)
}

// plainNDR reports a report subject: an NDR phrase with no reply or
// forward prefix before it.
func (s *subjectInfo) plainNDR() bool {
	return s.ndrPhrase != "" && s.forwards == 0 && s.replies == 0
}

// forwardedNDR reports "FW: Undeliverable: ..." shapes: a forward prefix
// first, an NDR phrase after the stacked prefixes.
func (s *subjectInfo) forwardedNDR() bool {
	return s.ndrPhrase != "" && s.outer == pfxForward
}

// parseSubject strips the stacked reply/forward prefixes ("FW: RE: Fwd: ...")
// and [tags], looks for an NDR phrase at the start of what remains, and
// follows the chain of nested reports for the loop signs.
func parseSubject(s string) subjectInfo {
	var info subjectInfo
	rest := strings.TrimSpace(s)
	low := strings.ToLower(rest)
	first := true
	for i := 0; i < 64; i++ {
		// Auto-reply phrases sit where prefixes do.
		if first || info.outer == pfxAuto {
			if ph := matchAutoReply(low); ph != "" && info.forwards == 0 && info.replies == 0 {
				info.autoReply = ph
				after := strings.TrimLeft(low[len(ph):], " \t\u00a0")
				info.autoColon = strings.HasPrefix(after, ":") || strings.HasPrefix(after, "：")
			}
		}
		if p, after, ok := cutTag(rest); ok {
			lp := strings.ToLower(p)
			if info.forwards == 0 && info.replies == 0 {
				if ph := matchAutoReply(lp); ph != "" {
					info.autoReply = ph
				}
			}
			rest = strings.TrimSpace(after)
			low = strings.ToLower(rest)
			continue
		}
		p, after, ok := cutPrefix(rest)
		if !ok {
			break
		}
		var k prefixKind
		switch {
		case forwardPrefixes[p]:
			k = pfxForward
			info.forwards++
		case replyPrefixes[p]:
			k = pfxReply
			info.replies++
		case p == "auto":
			k = pfxAuto
			info.autoPrefix = true
		default:
			k = pfxNone
		}
		if k == pfxNone {
			break
		}
		if first {
			info.outer = k
			info.outerVS = p == "vs"
		}
		first = false
		rest = strings.TrimSpace(after)
		low = strings.ToLower(rest)
	}
	// "Out of Office: <the subject answered>" is Outlook's responder;
	// "Out of office" alone or "Out of office - back Monday" a person.
	info.autoWeak = autoReplyWeak[info.autoReply] && !(info.autoColon && oofColon[info.autoReply])
	info.rest = rest
	info.depth = info.forwards
	if ph, kind, n := matchPrefixPhrase(low, ndrSubjects); n > 0 {
		info.ndrPhrase, info.ndrKind = ph, kind
		info.ndrs = 1
		// Lower-casing may change byte lengths: follow the chain in the
		// lower-cased text, where n counts.
		info.followChain(low[n:])
	} else if info.forwards == 0 && info.replies == 0 {
		for _, p := range ndrSubjectContains {
			if strings.Contains(low, p.text) {
				info.ndrContains, info.ndrKind = p.text, p.kind
				break
			}
		}
	}
	if info.autoReply == "" && info.forwards == 0 && info.replies <= 1 {
		for _, sfx := range autoReplySuffixes {
			if strings.Contains(low, sfx) {
				if sfx[0] != '(' && info.replies > 0 {
					continue // "Re: X is out of the office" is a person answering.
				}
				info.autoReply = sfx
				break
			}
		}
	}
	return info
}

// followChain walks the rest of a report subject, lower-cased, for nested
// forwards and reports ("undeliverable: fw: undeliverable: x").
func (info *subjectInfo) followChain(rest string) {
	for guard := 0; guard < 32; guard++ {
		// A nested report follows the report phrase after a colon
		// ("Undeliverable: FW: Undeliverable: x"); "Mail System Error -
		// Returned Mail" is one report's subject.
		rest = strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, "：") {
			return
		}
		rest = strings.TrimLeft(rest, " \t:：")
		sawForward := false
		for i := 0; i < 64; i++ {
			if _, after, ok := cutTag(rest); ok {
				rest = strings.TrimSpace(after)
				continue
			}
			p, after, ok := cutPrefix(rest)
			if !ok || !(forwardPrefixes[p] || replyPrefixes[p]) {
				break
			}
			if forwardPrefixes[p] {
				info.depth++
				sawForward = true
			}
			rest = strings.TrimSpace(after)
		}
		_, _, n := matchPrefixPhrase(rest, ndrSubjects)
		if n == 0 {
			return
		}
		info.ndrs++
		if sawForward {
			info.innerFwdNDR = true
		}
		rest = rest[n:]
	}
}

// matchPrefixPhrase returns the longest phrase that low starts with at a
// word boundary, and the byte length it covers in low.
func matchPrefixPhrase(low string, table []phrase) (string, phraseKind, int) {
	best, kind, n := "", phFailure, 0
	for _, p := range table {
		if len(p.text) > n && strings.HasPrefix(low, p.text) && boundaryAt(low, len(p.text)) {
			best, kind, n = p.text, p.kind, len(p.text)
		}
	}
	return best, kind, n
}

// matchAutoReply returns the auto-reply phrase low starts with, when it is
// followed by a delimiter (a colon, a dash, a parenthesis or the end).
func matchAutoReply(low string) string {
	best := ""
	for _, p := range autoReplySubjects {
		if len(p) <= len(best) || !strings.HasPrefix(low, p) {
			continue
		}
		after := strings.TrimLeft(low[len(p):], " \t\u00a0")
		if after == "" || strings.HasPrefix(after, ":") || strings.HasPrefix(after, "：") ||
			strings.HasPrefix(after, "-") || strings.HasPrefix(after, "(") || strings.HasPrefix(after, "[") ||
			strings.HasPrefix(after, "]") || strings.HasPrefix(after, "/") {
			best = p
		}
	}
	return best
}

// boundaryAt reports whether position i of s is not inside a word.
func boundaryAt(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	prev, _ := utf8.DecodeLastRuneInString(s[:i])
	if !isWordRune(prev) {
		return true // the phrase ended in punctuation
	}
	return !isWordRune(r) || isCJK(r)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

// cutTag splits "[tag] rest", "*** SPAM *** rest" or "{Spam?} rest".
func cutTag(s string) (tag, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	var closer string
	switch {
	case s[0] == '[':
		closer = "]"
	case s[0] == '{':
		closer = "}"
	case strings.HasPrefix(s, "***"):
		i := strings.Index(s[3:], "***")
		if i < 0 {
			return "", "", false
		}
		return strings.Trim(s[3:3+i], " *"), s[3+i+3:], true
	default:
		return "", "", false
	}
	i := strings.Index(s, closer)
	if i < 0 || i > 80 {
		return "", "", false
	}
	return strings.TrimSpace(s[1:i]), s[i+1:], true
}

// cutPrefix splits "Fwd: rest", "Fwd[2]: rest", "Re(2): rest" or "RE^2: rest"
// into "fwd" and "rest".
func cutPrefix(s string) (prefix, rest string, ok bool) {
	i := strings.IndexAny(s, ":：")
	if i <= 0 || i > 24 {
		return "", "", false
	}
	p := strings.TrimSpace(s[:i])
	if j := strings.IndexAny(p, "[(^"); j > 0 {
		p = strings.TrimSpace(p[:j])
	}
	if p == "" {
		return "", "", false
	}
	for _, r := range p {
		if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
			return "", "", false
		}
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	return strings.ToLower(p), s[i+size:], true
}

// failureSubject reports a subject that names a failure (failureWords).
func failureSubject(s string) bool {
	low := strings.ToLower(s)
	for _, w := range failureWords {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}
