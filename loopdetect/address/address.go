// Package address is the program's one lenient parser of mail addresses:
// it takes the address out of an SMTP path, a header field value or a DSN
// recipient field, and puts it in the one form addresses are compared and
// counted in.
//
// It is pure code with no dependency on the rest of the program. It is
// lenient on purpose: mail in the wild carries display names that net/mail
// refuses (unquoted dots, 8-bit text, stray brackets), and a loop breaker
// must still find the address in them. It never fails: what holds no
// address gives "".
package address

import (
	"strings"

	"golang.org/x/net/idna"
)

// maxAddress is the longest address Extract accepts: RFC 5321 4.5.3.1.3
// bounds a path to 256 octets, angle brackets included.
const maxAddress = 254

// Path returns the mailbox of an SMTP reverse-path or forward-path
// (RFC 5321 4.1.2), or of a Return-Path field that records one (RFC 5321
// 4.4): the text inside the first angle brackets, or the trimmed value when
// it has none. Stray brackets are dropped. The null reverse-path "<>" is "".
// Case is kept: Path only unwraps.
func Path(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	} else {
		s = strings.TrimSuffix(s, ">")
	}
	return strings.TrimSpace(s)
}

// Extract returns the first address in a header field or envelope value,
// lower-cased, or "" when there is none. It accepts
//
//   - a bare address or an SMTP path: "user@example.org", "<user@example.org>";
//   - an RFC 5322 3.4 mailbox with a display name, including those net/mail
//     refuses: "Dr. A. Smith <a@example.org>", "a@example.org (A. Smith)";
//   - an address list, of which the first address is taken
//     (X-Failed-Recipients: "a@example.org, b@example.org");
//   - an RFC 3464 2.3.2 recipient field value with its address-type:
//     "rfc822; a@example.org".
//
// The local part is not unquoted and the domain is not converted; see
// Normalize for the form used in keys.
func Extract(v string) string {
	v = strings.TrimSpace(v)
	v = stripAddressType(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			// The first bracketed part that holds an address; a
			// display name may itself hold brackets ("a <b> <c@d>").
			inner := v[i+1 : i+j]
			for rest := v[i+j:]; !strings.Contains(inner, "@"); {
				k := strings.IndexByte(rest, '<')
				if k < 0 {
					break
				}
				l := strings.IndexByte(rest[k:], '>')
				if l < 0 {
					break
				}
				inner, rest = rest[k+1:k+l], rest[k+l:]
			}
			v = inner
		}
	}
	if i := strings.IndexAny(v, ", \t"); i >= 0 {
		v = v[:i]
	}
	v = strings.Trim(v, `<>"'`)
	if !strings.Contains(v, "@") || len(v) > maxAddress {
		return ""
	}
	return strings.ToLower(v)
}

// stripAddressType drops the address-type of an RFC 3464 2.3.2
// Original-Recipient or Final-Recipient value ("rfc822; a@example.org"):
// a word and a semicolon before the address. Reports misspell the word
// ("rfc/822"), so any word without address punctuation counts. A value
// without one is returned as it is.
func stripAddressType(v string) string {
	i := strings.IndexByte(v, ';')
	if i <= 0 {
		return v
	}
	typ := strings.TrimRight(v[:i], " \t")
	if typ == "" || strings.ContainsAny(typ, "@<>\"(),; \t") {
		return v
	}
	return strings.TrimSpace(v[i+1:])
}

// Normalize returns the form an address is compared in: without angle
// brackets and surrounding space, lower-cased, and the domain in its ASCII
// (A-label) form (RFC 5890 2.3.2.1) without a trailing dot, so that
// "Alice@BÜCHER.example." and "alice@xn--bcher-kva.example" are one
// address. The null reverse-path "<>" is "". A domain that is not a valid
// IDNA name is kept lower-cased as it is.
func Normalize(a string) string {
	a = strings.ToLower(strings.TrimSpace(strings.Trim(strings.TrimSpace(a), "<>")))
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return a
	}
	local, domain := a[:at], strings.TrimSuffix(a[at+1:], ".")
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = ascii
	}
	return local + "@" + domain
}

// Domain returns the domain of an address (what follows its last "@"), or
// "" when it has none. It does not normalize; give it a Normalized address
// to compare domains.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// Key returns the form an address takes in a counting key: Normalized, and
// without the subaddress that follows the first of the delimiters in its
// local part (RFC 5233: "alice+tag@example.org" is "alice@example.org" for
// delims "+"). With no delimiters it is Normalize. A local part that starts
// with a delimiter is kept whole.
func Key(a, delims string) string {
	a = Normalize(a)
	if delims == "" {
		return a
	}
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return a
	}
	local := a[:at]
	if i := strings.IndexAny(local, delims); i > 0 {
		local = local[:i]
	}
	return local + a[at:]
}

// LocalParts returns the local part (RFC 5322 3.4.1) before every "@" in v,
// in order, however the value is dressed: "Mail Delivery System
// [mailto:MAILER-DAEMON@example.org]" gives "MAILER-DAEMON". A local part
// is taken to be the letters, digits and "-_.+=\" right before the "@", with
// trailing backslashes (escaped quotes) dropped; it may be empty.
func LocalParts(v string) []string {
	var out []string
	for i := 0; i < len(v); i++ {
		if v[i] != '@' {
			continue
		}
		j := i
		for j > 0 && isLocalPartByte(v[j-1]) {
			j--
		}
		out = append(out, strings.TrimRight(v[j:i], `\`))
	}
	return out
}

func isLocalPartByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '+' || c == '=' || c == '\\'
}

// DisplayName returns the display name of a mailbox (RFC 5322 3.4), read
// leniently: the text before the address in angle brackets, or before a
// bracketed "[mailto:...]" or a "(comment)", without surrounding quotes and
// space. For a bare address or word it is the whole trimmed value: the
// display name of "MAILER-DAEMON" is "MAILER-DAEMON". RFC 2047
// encoded-words are not decoded.
func DisplayName(v string) string {
	if i := strings.IndexAny(v, "<[("); i >= 0 {
		v = v[:i]
	}
	return strings.Trim(strings.TrimSpace(v), `"' `)
}
