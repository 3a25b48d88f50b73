package classify

import (
	"bytes"

	"golang.org/x/net/html"
)

// maxHTMLLine bounds a line of text flattened from HTML.
const maxHTMLLine = 8 << 10

// htmlFlattener turns HTML into lines of text for the scanner, with
// golang.org/x/net/html's tokenizer (the HTML5 tokenization rules: comments,
// raw-text elements, attributes holding ">", every named and numeric
// character reference): tags become nothing or a line break (block
// elements), the content of style, script and head elements is dropped, and
// character references are decoded, so that "&eacute;" is "é" and French
// and German report wording in HTML is matched as in plain text.
type htmlFlattener struct {
	ts   *textScan
	line []byte
	skip int // depth inside <style>, <script> or <head>
	r    bytes.Reader
}

func (f *htmlFlattener) reset(ts *textScan) {
	f.ts = ts
	f.line = f.line[:0]
	f.skip = 0
}

func (f *htmlFlattener) write(p []byte) {
	f.r.Reset(p)
	z := html.NewTokenizer(&f.r)
	for {
		switch z.Next() {
		case html.ErrorToken:
			return
		case html.TextToken:
			if f.skip > 0 {
				continue
			}
			for _, c := range z.Text() {
				if c == '\n' || c == '\r' {
					c = ' '
				}
				f.line = append(f.line, c)
				if len(f.line) >= maxHTMLLine {
					f.flush()
				}
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			f.tag(name, false)
		case html.EndTagToken:
			name, _ := z.TagName()
			f.tag(name, true)
		}
	}
}

func (f *htmlFlattener) tag(name []byte, end bool) {
	switch string(name) {
	case "style", "script", "head":
		if end {
			if f.skip > 0 {
				f.skip--
			}
		} else {
			f.skip++
		}
		return
	}
	if string(name) == "body" && !end {
		f.skip = 0 // a <head> left open ends here
	}
	if f.skip > 0 {
		return
	}
	switch string(name) {
	case "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "blockquote",
		"pre", "ul", "ol", "dt", "dd", "title", "body", "html":
		f.flush()
	case "td", "th":
		f.line = append(f.line, ' ')
	}
}

func (f *htmlFlattener) flush() {
	if len(f.line) > 0 {
		// Indentation means nothing in HTML (table cells, nbsp):
		// the line starts at its first character.
		f.ts.line(bytes.TrimLeft(f.line, " \t"))
		f.line = f.line[:0]
	} else {
		f.ts.line(nil)
	}
}
