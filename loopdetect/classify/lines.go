package classify

import (
	"bytes"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// separatorKind recognizes the lines clients put above a forwarded message
// ("-----Original Message-----", "---------- Forwarded message ---------",
// "Begin forwarded message:", "-------- Forwarded Message --------", in
// their languages) and the lines some MTAs put above a returned one.
func separatorKind(l []byte) sepKind {
	if len(l) > 240 || len(l) < 4 {
		return sepNone
	}
	decorated := isDecoration(l[0])
	colon := l[len(l)-1] == ':' || bytes.HasSuffix(l, []byte("："))
	if !decorated && !colon {
		return sepNone
	}
	core := bytes.TrimFunc(l, func(r rune) bool {
		return r == '-' || r == '_' || r == '=' || r == '*' || r == '~' || r == ' ' || r == '\t' ||
			r == ':' || r == '：' || r == '—' || r == '–' || r == '<' || r == '>' || r == '#' || r == '|'
	})
	if len(core) == 0 || len(core) > 200 {
		return sepNone
	}
	var buf [256]byte
	low := foldInto(buf[:0], core)
	// A line over 80 bytes is only a separator that names the sender
	// (mutt's "----- Forwarded message from A <a@example.org> -----").
	if len(core) <= 80 {
		if k, ok := separators[string(low)]; ok {
			return k
		}
	}
	if decorated {
		for _, p := range forwardSeparatorPrefixes {
			if bytes.HasPrefix(low, []byte(p)) {
				return sepForward
			}
		}
	}
	return sepNone
}

func isDecoration(c byte) bool {
	return c == '-' || c == '_' || c == '=' || c == '*' || c == '~' || c == '#' || c == '|'
}

// isRuleLine reports Outlook's horizontal rule of underscores, which it
// puts above the header block of a forwarded message.
func isRuleLine(l []byte) bool {
	if len(l) < 10 {
		return false
	}
	for _, c := range l {
		if c != '_' {
			return false
		}
	}
	return true
}

// lineKey returns the role of a "Key: value" line and its value.
func lineKey(l []byte) (lineRole, string) {
	lim := len(l)
	if lim > 48 {
		lim = 48
	}
	i := bytes.IndexByte(l[:lim], ':')
	size := 1
	if j := bytes.Index(l[:lim], []byte("：")); j > 0 && (i < 0 || j < i) {
		i, size = j, len("：")
	}
	if i <= 0 {
		return roleNone, ""
	}
	key := bytes.TrimRight(l[:i], " \t\u00a0")
	// Outlook's HTML forward, flattened, may bold the labels: "*From:*".
	key = bytes.TrimLeft(key, "*")
	if len(key) == 0 || bytes.Count(key, []byte(" ")) > 2 {
		return roleNone, ""
	}
	var buf [64]byte
	low := foldInto(buf[:0], key)
	role, ok := lineRoles[string(low)]
	if !ok {
		return roleNone, ""
	}
	val := bytes.TrimSpace(bytes.TrimLeft(l[i+size:], "*"))
	return role, string(val)
}

// keyLine handles one recognized "Key: value" line: a DSN field, or a line
// of a header block.
func (ts *textScan) keyLine(role lineRole, val string) {
	if ts.reg().dsnLine(role, val) {
		return
	}
	ts.blockLine(role, val)
}

// dsnLine records a DSN field line (RFC 3464 2.2, 2.3) in the region and
// reports whether the line was one. A Content-Type line naming a
// delivery-status part is noted and left to the header block.
func (r *region) dsnLine(role lineRole, val string) bool {
	switch role {
	case roleDSNFinalRecipient, roleDSNOriginalRecipient:
		r.dsnKeys |= 1 << role
		if a := address.Extract(val); a != "" {
			if role == roleDSNFinalRecipient && !r.recipFinal {
				r.recipient, r.recipFinal = a, true
			} else if r.recipient == "" {
				r.recipient = a
			}
		}
		return true
	case roleDSNAction:
		if a := parseAction(val); a != 0 {
			r.dsnKeys |= 1 << role
			r.actions |= a
		}
		return true
	case roleDSNStatus:
		if isStatusCode(val) {
			r.dsnKeys |= 1 << role
		}
		return true
	case roleDSNDiagnostic, roleDSNReportingMTA, roleDSNRemoteMTA, roleDSNArrivalDate:
		if strings.Contains(val, ";") {
			r.dsnKeys |= 1 << role
		}
		return true
	case roleDSNOther:
		r.dsnKeys |= 1 << role
		return true
	case roleFailedRecipients:
		r.dsnKeys |= 1 << role
		if r.recipient == "" {
			r.recipient = address.Extract(val)
		}
		return true
	case roleContentType:
		low := strings.ToLower(val)
		if strings.HasPrefix(low, "message/delivery-status") || strings.HasPrefix(low, "message/global-delivery-status") ||
			strings.HasPrefix(low, "multipart/report") && strings.Contains(low, "delivery-status") {
			r.dsnCT = true
		}
	}
	return false
}

// smtpStatus looks for an SMTP reply code followed by an enhanced status
// code of the same class (RFC 5321 4.2, RFC 3463): "550 5.1.1", "452-4.2.2";
// failing that, for a refusing reply code alone ("554 delivery error",
// "550 Unknown user") where SMTP replies are quoted: at the start of the
// line or after "said: ", "returned '", "<<< " and the like, with the words
// of a refusal after it. One pass over the line.
func (ts *textScan) smtpStatus(l []byte) {
	r := ts.reg()
	if r.smtp != "" {
		return
	}
	plain := ""
	// Jump from one '4' or '5' to the next (bytes.IndexByte is vectorized;
	// most lines hold neither).
	n4, n5 := indexFrom(l, 0, '4'), indexFrom(l, 0, '5')
	for {
		i := n4
		if i < 0 || n5 >= 0 && n5 < i {
			i = n5
		}
		if i < 0 || i+4 > len(l) {
			break
		}
		c := l[i]
		if c == '4' {
			n4 = indexFrom(l, i+1, '4')
		} else {
			n5 = indexFrom(l, i+1, '5')
		}
		if !isDigit(l[i+1]) || !isDigit(l[i+2]) || (l[i+3] != ' ' && l[i+3] != '-') ||
			i > 0 && (isDigit(l[i-1]) || l[i-1] == '.') {
			continue
		}
		if i+9 <= len(l) && l[i+4] == c && l[i+5] == '.' && isDigit(l[i+6]) {
			j := i + 7
			for j < len(l) && isDigit(l[j]) {
				j++
			}
			if j < len(l) && l[j] == '.' && j+1 < len(l) && isDigit(l[j+1]) {
				k := j + 1
				for k < len(l) && isDigit(l[k]) {
					k++
				}
				r.smtp = string(l[i:k])
				return
			}
		}
		if plain == "" && (i+4 == len(l) || !isDigit(l[i+4])) &&
			(i == 0 || l[i-1] == '\'' || l[i-1] == ' ' && i >= 2 && (l[i-2] == ':' || l[i-2] == '<')) {
			if code := l[i : i+3]; smtpReplyCodes[string(code)] && smtpReplyWords(l[i+4:]) {
				plain = string(code)
			}
		}
	}
	if plain != "" {
		r.smtp = plain
	}
}

// indexFrom returns the index of the first c in l at or after from, or -1.
func indexFrom(l []byte, from int, c byte) int {
	if from >= len(l) {
		return -1
	}
	if j := bytes.IndexByte(l[from:], c); j >= 0 {
		return from + j
	}
	return -1
}

// smtpReplyCodes are the reply codes of RFC 5321 4.2.2 that refuse or
// defer a message.
var smtpReplyCodes = map[string]bool{
	"421": true, "450": true, "451": true, "452": true, "550": true, "551": true, "552": true, "553": true, "554": true,
}

// smtpReplyWords reports the text of an SMTP refusal after its code.
func smtpReplyWords(rest []byte) bool {
	var buf [96]byte
	n := len(rest)
	if n > len(buf) {
		n = len(buf)
	}
	low := foldInto(buf[:0], rest[:n])
	for _, w := range []string{"user", "mailbox", "recipient", "address", "unknown", "denied", "rejected",
		"not found", "does not exist", "delivery", "relay", "quota", "no such", "unavailable", "refused",
		"blocked", "try again", "not accepted", "invalid"} {
		if bytes.Contains(low, []byte(w)) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isStatusCode reports an RFC 3463 status code ("5.1.1", "4.4.7 (delayed)").
func isStatusCode(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) < 5 || (v[0] != '2' && v[0] != '4' && v[0] != '5') || v[1] != '.' {
		return false
	}
	i := 2
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	return i > 2 && i < len(v)-1 && v[i] == '.' && isDigit(v[i+1])
}

// recipientLine picks up "<user@example.org>: reason" lines (Postfix,
// qmail) as the failed recipient.
func (ts *textScan) recipientLine(l []byte) {
	r := ts.reg()
	if r.recipient != "" {
		return
	}
	end := bytes.Index(l, []byte(">:"))
	if end < 2 || end > 256 {
		return
	}
	r.recipient = address.Extract(string(l[:end+1]))
}
