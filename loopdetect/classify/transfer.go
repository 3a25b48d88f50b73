package classify

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// utf8Charset reports a charset that needs no conversion for matching.
func utf8Charset(cs string) bool {
	switch strings.ToLower(strings.Trim(cs, ` "'`)) {
	case "", "us-ascii", "ascii", "utf-8", "utf8", "ansi_x3.4-1968":
		return true
	}
	return false
}

// readAllInto appends what r yields, at most limit bytes, to dst.
func readAllInto(dst []byte, r io.Reader, limit int) []byte {
	if limit <= 0 {
		return dst
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := cap(dst) - len(dst)
		if room > limit {
			room = limit
		}
		n, err := r.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		limit -= n
		if err != nil || limit <= 0 {
			return dst
		}
	}
}

// decodeQP undoes quoted-printable (RFC 2045 6.7), leniently: a "=" that
// starts no escape is kept as it is.
func decodeQP(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '=' {
			dst = append(dst, c)
			continue
		}
		j := i + 1
		for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
			j++
		}
		switch {
		case j >= len(src):
			i = j
			continue
		case src[j] == '\n':
			i = j // soft line break
			continue
		case src[j] == '\r' && j+1 < len(src) && src[j+1] == '\n':
			i = j + 1
			continue
		}
		if i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]) {
			dst = append(dst, unhex(src[i+1])<<4|unhex(src[i+2]))
			i += 2
			continue
		}
		dst = append(dst, '=')
	}
	return dst
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// decodeBase64 decodes base64 (RFC 2045 6.8), ignoring characters outside
// the alphabet and stopping at the first damage.
func decodeBase64(dst, src []byte) []byte {
	start := len(dst)
	// Filter into the tail of dst, then decode in place: decoding never
	// writes past what it has read.
	for _, c := range src {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			dst = append(dst, c)
		}
	}
	enc := dst[start:]
	// Stop at padding: what follows is another encoding run or junk.
	if i := bytes.IndexByte(enc, '='); i >= 0 {
		enc = enc[:i]
	}
	enc = enc[:len(enc)/4*4+min(len(enc)%4, 3)]
	if len(enc)%4 == 1 {
		enc = enc[:len(enc)-1]
	}
	n, _ := base64.RawStdEncoding.Decode(dst[start:], enc)
	return dst[:start+n]
}
