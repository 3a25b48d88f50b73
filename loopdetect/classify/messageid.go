package classify

import "strings"

// msgIDToken returns the first <...> token of a Message-ID value (RFC 5322
// 3.6.4), or the trimmed value when there is none.
func msgIDToken(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 1 {
			return v[i : i+j+1]
		}
	}
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		v = v[:i]
	}
	return clip(v, 250)
}
