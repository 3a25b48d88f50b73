package loopdetect

import (
	"strings"
	"unicode"
)

// forwardPrefixes are the subject prefixes mail clients put on a forwarded
// message, lower-cased, without the colon.
var forwardPrefixes = map[string]bool{
	"fw": true, "fwd": true, "wg": true, "tr": true, "rv": true,
}

// replyPrefixes are reply markers that may be stacked with forward prefixes.
var replyPrefixes = map[string]bool{
	"re": true, "aw": true, "sv": true,
}

// ndrPhrases are subject phrases of non-delivery reports, lower-cased.
var ndrPhrases = []string{
	"mail delivery failed",
	"failure notice",
	"there was an error sending your mail",
	"undeliverable",
	"undelivered mail returned to sender",
	"delivery status notification (failure)",
	"returned mail",
}

type subjectInfo struct {
	forwards  int    // forward prefixes seen
	replies   int    // reply prefixes seen
	rest      string // the subject after the prefixes
	ndrPhrase string // the NDR phrase the rest starts with, if any
}

// parseSubject strips the stacked reply/forward prefixes ("FW: RE: Fwd: ...")
// and looks for an NDR phrase at the start of what remains.
func parseSubject(s string) subjectInfo {
	var info subjectInfo
	rest := strings.TrimSpace(s)
	for {
		p, after, ok := cutPrefix(rest)
		if !ok {
			break
		}
		switch {
		case forwardPrefixes[p]:
			info.forwards++
		case replyPrefixes[p]:
			info.replies++
		default:
			goto done
		}
		rest = strings.TrimSpace(after)
	}
done:
	info.rest = rest
	low := strings.ToLower(rest)
	for _, ph := range ndrPhrases {
		if strings.HasPrefix(low, ph) {
			info.ndrPhrase = ph
			break
		}
	}
	return info
}

// cutPrefix splits "Fwd: rest" or "Fwd[2]: rest" into "fwd" and "rest".
func cutPrefix(s string) (prefix, rest string, ok bool) {
	i := strings.IndexAny(s, ":：")
	if i <= 0 || i > 12 {
		return "", "", false
	}
	p := strings.TrimSpace(s[:i])
	if j := strings.IndexByte(p, '['); j > 0 {
		p = p[:j]
	}
	for _, r := range p {
		if !unicode.IsLetter(r) {
			return "", "", false
		}
	}
	_, size := firstRune(s[i:])
	return strings.ToLower(p), s[i+size:], true
}

func firstRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 0
}
