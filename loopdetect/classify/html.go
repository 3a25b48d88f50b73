package classify

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxHTMLLine bounds a line of text flattened from HTML.
const maxHTMLLine = 8 << 10

// htmlFlattener turns HTML into lines of text for the scanner: tags become
// nothing or a line break (block elements), the content of style and script
// elements is dropped, and the common character references are decoded.
type htmlFlattener struct {
	ts      *textScan
	line    []byte
	inTag   bool
	tag     [16]byte
	tagLen  int
	tagDone bool
	skip    bool // inside <style> or <script>
	ent     [12]byte
	entLen  int
	inEnt   bool
}

func (f *htmlFlattener) reset(ts *textScan) {
	f.ts = ts
	f.line = f.line[:0]
	f.inTag, f.tagLen, f.tagDone, f.skip, f.inEnt, f.entLen = false, 0, false, false, false, 0
}

func (f *htmlFlattener) write(p []byte) {
	for _, c := range p {
		if f.inTag {
			switch {
			case c == '>':
				f.inTag = false
				f.endTag()
			case !f.tagDone && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || (c == '/' && f.tagLen > 0)):
				f.tagDone = true
			case !f.tagDone && f.tagLen < len(f.tag):
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				f.tag[f.tagLen] = c
				f.tagLen++
			}
			continue
		}
		if c == '<' {
			f.flushEnt()
			f.inTag, f.tagLen, f.tagDone = true, 0, false
			continue
		}
		if f.skip {
			continue
		}
		if f.inEnt {
			if c == ';' {
				f.decodeEnt()
				continue
			}
			if f.entLen < len(f.ent) && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '#') {
				f.ent[f.entLen] = c
				f.entLen++
				continue
			}
			f.flushEnt()
		}
		if c == '&' {
			f.inEnt, f.entLen = true, 0
			continue
		}
		if c == '\n' || c == '\r' {
			c = ' '
		}
		f.line = append(f.line, c)
		if len(f.line) >= maxHTMLLine {
			f.flush()
		}
	}
}

func (f *htmlFlattener) endTag() {
	name := string(f.tag[:f.tagLen])
	switch name {
	case "style", "script", "head":
		f.skip = true
		return
	case "/style", "/script", "/head":
		f.skip = false
		return
	}
	if f.skip {
		return
	}
	switch strings.TrimPrefix(name, "/") {
	case "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "blockquote",
		"pre", "ul", "ol", "dt", "dd", "title", "body", "html":
		f.flush()
	case "td", "th":
		f.line = append(f.line, ' ')
	}
}

func (f *htmlFlattener) flushEnt() {
	if f.inEnt {
		f.line = append(f.line, '&')
		f.line = append(f.line, f.ent[:f.entLen]...)
		f.inEnt = false
	}
}

func (f *htmlFlattener) decodeEnt() {
	f.inEnt = false
	e := string(f.ent[:f.entLen])
	switch e {
	case "nbsp", "#160", "ensp", "emsp", "thinsp":
		f.line = append(f.line, ' ')
	case "amp", "#38":
		f.line = append(f.line, '&')
	case "lt", "#60":
		f.line = append(f.line, '<')
	case "gt", "#62":
		f.line = append(f.line, '>')
	case "quot", "#34":
		f.line = append(f.line, '"')
	case "apos", "#39", "#x27", "rsquo", "lsquo", "#8217":
		f.line = append(f.line, '\'')
	default:
		if strings.HasPrefix(e, "#") {
			var n uint64
			var err error
			if strings.HasPrefix(e, "#x") || strings.HasPrefix(e, "#X") {
				n, err = strconv.ParseUint(e[2:], 16, 32)
			} else {
				n, err = strconv.ParseUint(e[1:], 10, 32)
			}
			if err == nil && n > 0 && n < 0x110000 {
				f.line = utf8.AppendRune(f.line, rune(n))
				return
			}
		}
		f.line = append(f.line, ' ')
	}
}

func (f *htmlFlattener) flush() {
	f.flushEnt()
	if len(f.line) > 0 {
		f.ts.line(f.line)
		f.line = f.line[:0]
	} else {
		f.ts.line(nil)
	}
}
