package classify

import "strings"

// mediaType is a leniently parsed Content-Type (RFC 2045 5.1): the
// lower-cased type/subtype and the raw parameter text.
type mediaType struct {
	typ    string
	params string
}

func parseMediaType(v string) mediaType {
	v = strings.TrimSpace(v)
	t, params, _ := strings.Cut(v, ";")
	t = strings.TrimSpace(t)
	if i := strings.IndexAny(t, " \t("); i >= 0 {
		t = t[:i]
	}
	return mediaType{typ: lowerASCII(t), params: params}
}

// param returns the value of a parameter, tolerating the damage seen in the
// wild (missing quotes, spaces around "=", upper-case names). RFC 2231
// continuations are not needed for the parameters read here.
func (m mediaType) param(name string) string {
	s := m.params
	for len(s) > 0 {
		var p string
		p, s = cutParam(s)
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		k = strings.TrimSuffix(k, "*")
		if !strings.EqualFold(k, name) {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' {
			if j := strings.IndexByte(v[1:], '"'); j >= 0 {
				return v[1 : 1+j]
			}
			return v[1:]
		}
		if i := strings.IndexAny(v, " \t"); i >= 0 {
			v = v[:i]
		}
		return v
	}
	return ""
}

// cutParam cuts the next ";"-separated parameter, honouring quotes.
func cutParam(s string) (string, string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ';':
			if !inQuote {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 32
				}
			}
			return string(b)
		}
	}
	return s
}
