package classify

import (
	"bytes"
	"io"
	"mime"
	"net/textproto"
	"strings"

	"github.com/emersion/go-message/charset"
	gmtextproto "github.com/emersion/go-message/textproto"
)

// field is one header field, key in canonical MIME form, value unfolded.
type field struct {
	key, value string
}

// fields is a header section in message order (top first).
type fields []field

// fromTextproto copies a go-message header into message order. go-message
// iterates fields top first for headers it read itself.
func fromTextproto(h *gmtextproto.Header) fields {
	fs := make(fields, 0, h.Len())
	it := h.Fields()
	for it.Next() {
		fs = append(fs, field{key: it.Key(), value: it.Value()})
	}
	return fs
}

// get returns the first value of key (canonical form), or "".
func (fs fields) get(key string) string {
	for i := range fs {
		if fs[i].key == key {
			return fs[i].value
		}
	}
	return ""
}

// maxHeaderBytes bounds the header section read by the lenient parser.
const maxHeaderBytes = 256 << 10

// readHeaderLenient reads a header section (RFC 5322 2.2) from br up to the
// empty line. Unlike a strict parser it keeps going over damage seen in
// stored mail: an mbox "From " line at the very top is returned separately,
// blank lines before the header are skipped, a line that is neither a field
// nor a continuation but is followed by more fields is taken as a broken
// fold, any other such line ends the header section and is handed back as
// the start of the body, and bare CR line ends are accepted. It never reads
// more than maxHeaderBytes of header.
func readHeaderLenient(br byteReader) (fs fields, mboxFrom string, rest []byte, err error) {
	lr := lineReader{br: br}
	var cur []byte // the field being unfolded
	flush := func() {
		if cur == nil {
			return
		}
		if k, v, ok := splitField(cur); ok {
			fs = append(fs, field{key: k, value: v})
		}
		cur = nil
	}
	read := 0
	for n := 0; ; n++ {
		line, lerr := lr.next()
		read += len(line)
		if len(line) == 0 && lerr != nil {
			flush()
			if lerr == io.EOF {
				lerr = nil
			}
			return fs, mboxFrom, nil, lerr
		}
		content := trimEOL(line)
		if n == 0 && bytes.HasPrefix(content, []byte("From ")) {
			mboxFrom = string(content[5:])
			continue
		}
		if len(bytes.TrimSpace(content)) == 0 && len(fs) == 0 && cur == nil && n < 8 {
			// Blank lines before anything: skip them when fields follow.
			if lr.fieldsAhead(2) {
				continue
			}
		}
		if len(content) == 0 {
			flush()
			return fs, mboxFrom, lr.drain(nil), nil
		}
		if content[0] == ' ' || content[0] == '\t' {
			if cur != nil {
				cur = append(cur, ' ')
				cur = append(cur, bytes.TrimLeft(content, " \t")...)
			}
			continue
		}
		if !looksLikeField(content) {
			if cur != nil && lr.fieldsAhead(1) {
				// A fold that lost its leading white space.
				cur = append(cur, ' ')
				cur = append(cur, content...)
				continue
			}
			flush()
			return fs, mboxFrom, lr.drain(append([]byte(nil), line...)), nil
		}
		flush()
		cur = append(make([]byte, 0, len(content)+16), content...)
		if read > maxHeaderBytes {
			flush()
			return fs, mboxFrom, lr.drain(nil), nil
		}
	}
}

// byteReader is what the header reader needs: a *bufio.Reader or a
// byteSource over bytes in memory.
type byteReader interface {
	ReadByte() (byte, error)
	Peek(n int) ([]byte, error)
}

// byteSource reads bytes held in memory.
type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) ReadByte() (byte, error) {
	if s.i >= len(s.b) {
		return 0, io.EOF
	}
	c := s.b[s.i]
	s.i++
	return c, nil
}

func (s *byteSource) Peek(n int) ([]byte, error) {
	if s.i+n > len(s.b) {
		return s.b[s.i:], io.EOF
	}
	return s.b[s.i : s.i+n], nil
}

// lineReader reads lines with a little lookahead.
type lineReader struct {
	br      byteReader
	pending [][]byte
	errs    []error
}

func (lr *lineReader) next() ([]byte, error) {
	if len(lr.pending) > 0 {
		l, e := lr.pending[0], lr.errs[0]
		lr.pending, lr.errs = lr.pending[1:], lr.errs[1:]
		return l, e
	}
	return readLineAnyEnding(lr.br)
}

// drain appends the lines read ahead and not yet taken to b: the header
// ended before them, so they begin the body.
func (lr *lineReader) drain(b []byte) []byte {
	for _, l := range lr.pending {
		b = append(b, l...)
	}
	lr.pending, lr.errs = nil, nil
	return b
}

// fieldsAhead reports whether one of the next n lines starts a header field
// (and none before it is empty).
func (lr *lineReader) fieldsAhead(n int) bool {
	for i := 0; i < n; i++ {
		if i >= len(lr.pending) {
			l, e := readLineAnyEnding(lr.br)
			lr.pending = append(lr.pending, l)
			lr.errs = append(lr.errs, e)
		}
		c := trimEOL(lr.pending[i])
		if len(c) == 0 {
			return false
		}
		if looksLikeField(c) || c[0] == ' ' || c[0] == '\t' {
			return true
		}
	}
	return false
}

// readLineAnyEnding returns the next line including its terminator, which
// may be LF, CRLF or a bare CR (old Macintosh files). Lines longer than the
// reader's buffer are returned in pieces.
func readLineAnyEnding(br byteReader) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return out, err
		}
		out = append(out, b)
		switch b {
		case '\n':
			return out, nil
		case '\r':
			nb, err := br.Peek(1)
			if err == nil && nb[0] == '\n' {
				_, _ = br.ReadByte()
				out = append(out, '\n')
			}
			return out, nil
		}
		if len(out) >= 64<<10 {
			return out, nil
		}
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// looksLikeField reports whether line starts with a field name and a colon
// (RFC 5322 2.2: printable ASCII except colon; some senders put spaces
// before the colon).
func looksLikeField(line []byte) bool {
	for i, c := range line {
		switch {
		case c == ':':
			return i > 0
		case c == ' ' || c == '\t':
			// Only white space may follow until the colon.
			rest := bytes.TrimLeft(line[i:], " \t")
			return len(rest) > 0 && rest[0] == ':' && i > 0
		case c < 33 || c > 126:
			return false
		}
		if i > 76 {
			return false
		}
	}
	return false
}

// splitField splits "Key: value" into the canonical key and the trimmed value.
func splitField(kv []byte) (string, string, bool) {
	i := bytes.IndexByte(kv, ':')
	if i <= 0 {
		return "", "", false
	}
	k := bytes.TrimRight(kv[:i], " \t")
	if len(k) == 0 {
		return "", "", false
	}
	v := bytes.TrimSpace(kv[i+1:])
	return textproto.CanonicalMIMEHeaderKey(string(k)), string(v), true
}

// DecodeHeader decodes the RFC 2047 encoded-words of a header field value
// ("=?iso-8859-1?q?Unzustellbar?=") into UTF-8, in any charset
// go-message's charset package knows. Text that holds no encoded-word, or
// that does not decode, is returned as it was. It is the program's one
// encoded-word decoder.
func DecodeHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := dec.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}
