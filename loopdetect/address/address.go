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

// Envelope rewriting forms that Unwrap recognizes.
const (
	FormSRS0  = "srs0"  // Sender Rewriting Scheme, first forwarder (SRS0=hash=tt=domain=local@forwarder)
	FormSRS1  = "srs1"  // SRS, a later forwarder (SRS1=hash=forwarder==hash=tt=domain=local@forwarder2)
	FormBATV  = "batv"  // Bounce Address Tag Validation (prvs=tag=local@domain, msprvs1=, btv1==)
	FormGmail = "gmail" // Gmail/Workspace auto-forwarding (local+caf_=target=domain@gmail.com)
)

// Unwrap returns the mailbox an envelope sender that a forwarder or a
// signing MTA rewrote stands for, and the form of the rewriting (one of the
// Form* constants); "" and "" for an address in none of these forms.
//
//   - SRS0=HHH=TT=example.org=alice@forwarder.example gives alice@example.org
//     (the Sender Rewriting Scheme of libsrs2, postsrsd and Exim; the
//     separator after SRS0 may also be "+" or "-");
//   - SRS1=HHH=forwarder.example==HHH=TT=example.org=alice@fwd2.example gives
//     alice@example.org;
//   - prvs=1234abcdef=alice@example.org (BATV, draft-levine-smtp-batv 4.1;
//     the older local-first order prvs=alice=1234abcdef is read too),
//     msprvs1=tag=alice@example.org (Microsoft 365) and
//     btv1==tag==alice@example.org (Barracuda) give alice@example.org;
//   - bounces+SRS=HHH=TT=example.org=alice@fwd.example (Exchange Online's
//     SRS) gives alice@example.org;
//   - alice+caf_=bob=example.net@gmail.com (Gmail and Workspace
//     auto-forwarding) gives alice@gmail.com.
//
// The result is lower-cased; a form that does not decode gives the address
// itself, lower-cased, with the form.
func Unwrap(a string) (orig, form string) {
	a = strings.ToLower(strings.TrimSpace(a))
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return "", ""
	}
	local, domain := a[:at], a[at+1:]
	switch {
	case len(local) > 5 && strings.HasPrefix(local, "srs0") && isSRSSep(local[4]):
		f := strings.SplitN(local[5:], "=", 4) // hash, tt, domain, local
		if len(f) == 4 && f[2] != "" && f[3] != "" {
			return f[3] + "@" + f[2], FormSRS0
		}
		return a, FormSRS0
	case len(local) > 5 && strings.HasPrefix(local, "srs1") && isSRSSep(local[4]):
		// SRS1=hash=forwarder==hash=tt=domain=local: the opaque part
		// after "==" is an SRS0 address without its "SRS0".
		if i := strings.Index(local, "=="); i >= 0 {
			f := strings.SplitN(local[i+2:], "=", 4)
			if len(f) == 4 && f[2] != "" && f[3] != "" {
				return f[3] + "@" + f[2], FormSRS1
			}
		}
		return a, FormSRS1
	case strings.HasPrefix(local, "prvs=") || strings.HasPrefix(local, "msprvs1="):
		rest := local[strings.IndexByte(local, '=')+1:]
		tag, user, ok := strings.Cut(rest, "=")
		if !ok || user == "" || tag == "" {
			return a, FormBATV
		}
		if !batvTag(tag) && batvTag(user) {
			tag, user = user, tag // prvs=alice=1234abcdef
		}
		return user + "@" + domain, FormBATV
	case strings.HasPrefix(local, "btv1=="):
		if i := strings.Index(local[6:], "=="); i >= 0 && local[6+i+2:] != "" {
			return local[6+i+2:] + "@" + domain, FormBATV
		}
		return a, FormBATV
	}
	if i := strings.Index(local, "+srs="); i > 0 {
		// Exchange Online's SRS: bounces+SRS=hash=tt=domain=local@fwd.
		f := strings.SplitN(local[i+5:], "=", 4)
		if len(f) == 4 && f[2] != "" && f[3] != "" {
			return f[3] + "@" + f[2], FormSRS0
		}
		return a, FormSRS0
	}
	if i := strings.Index(local, "+caf_="); i > 0 {
		return local[:i] + "@" + domain, FormGmail
	}
	return "", ""
}

func isSRSSep(c byte) bool { return c == '=' || c == '+' || c == '-' }

// batvTag reports a BATV tag-val: a key digit, three day digits and six hex
// digits (draft-levine-smtp-batv 4.1), or the longer hex tags some
// implementations write.
func batvTag(s string) bool {
	if len(s) < 10 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// InDomains reports whether the domain of addr is one of domains, or below
// an entry with a leading dot (".example.org" holds a.example.org and
// example.org itself), as the policy reads its local_domains: the address
// is Normalized (lower case, A-label domain, no trailing dot) and the
// entries are compared lower-cased.
func InDomains(addr string, domains []string) bool {
	if len(domains) == 0 {
		return false
	}
	d := Domain(Normalize(addr))
	return d != "" && DomainIn(d, domains)
}

// DomainIn reports whether domain, in lower case, is one of domains, or
// below an entry with a leading dot (".example.org" holds a.example.org and
// example.org itself). The entries are compared lower-cased and trimmed.
func DomainIn(domain string, domains []string) bool {
	for _, e := range domains {
		e = strings.ToLower(strings.TrimSpace(e))
		if strings.HasPrefix(e, ".") {
			if strings.HasSuffix(domain, e) || domain == e[1:] {
				return true
			}
		} else if domain == e {
			return true
		}
	}
	return false
}

// IsListRole reports a mailing-list manager's administrative address: the
// owner, bounce and request addresses of Mailman (-owner, -bounces,
// -request, and -admin of Mailman 2.0), Majordomo and SmartList (owner-x,
// x-request), Sympa (-owner, -request) and ezmlm (-return-, -owner). Such an
// address sends reports on as part of the list's bounce handling.
func IsListRole(addr string) bool {
	l := strings.ToLower(addr)
	if i := strings.LastIndexByte(l, '@'); i >= 0 {
		l = l[:i]
	}
	if j := strings.IndexByte(l, '+'); j > 0 {
		l = l[:j]
	}
	return strings.HasSuffix(l, "-owner") || strings.HasSuffix(l, "-bounces") || strings.HasSuffix(l, "-bounce") ||
		strings.HasSuffix(l, "-request") || strings.HasSuffix(l, "-admin") || strings.HasPrefix(l, "owner-") ||
		strings.Contains(l, "-return-") || strings.HasPrefix(l, "bounce") || l == "mailman" || l == "majordomo" ||
		l == "listserv" || l == "sympa"
}
