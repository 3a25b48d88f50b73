package classify

import (
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
	gmtextproto "github.com/emersion/go-message/textproto"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// Limits of the MIME walk (RFC 2046 5.1 lets multiparts nest without bound;
// the walk does not follow them all).
const (
	// DefaultMaxDepth is how deep multiparts and attached messages are
	// followed when Options.MaxDepth is zero. An NDR loop nests one
	// report (two levels: multipart/report, message/rfc822) per round;
	// following 24 rounds down to the first message lets the
	// ndrs-per-original rule count the loop by it. The body limit still
	// bounds the bytes read, whatever the depth.
	DefaultMaxDepth = 48
	// maxParts bounds the body parts visited in one message, all levels.
	maxParts = 128
	// maxEmbedded bounds the attached messages analyzed per message (one
	// per round of an NDR loop, see DefaultMaxDepth).
	maxEmbedded = 24
)

// walker holds the bounds shared by one Classify call. It is created per
// call and never shared.
type walker struct {
	budget   int // decoded bytes still allowed to be read
	parts    int
	maxDepth int
	// Scratch buffers for leaf parts, which are read one at a time: the
	// raw part, its transfer-decoded form, its charset-converted form.
	buf, dec, conv []byte
	html           htmlFlattener
}

// partHeader is what the walk needs from a part's header section.
type partHeader struct {
	ct         mediaType
	cte        string
	attachment bool
	filename   string
}

func partHeaderOf(h *gmtextproto.Header, defaultType string) partHeader {
	ph := partHeader{ct: parseMediaType(h.Get("Content-Type")), cte: h.Get("Content-Transfer-Encoding")}
	if ph.ct.typ == "" {
		ph.ct.typ = defaultType
	}
	if d := h.Get("Content-Disposition"); d != "" {
		dm := parseMediaType(d)
		ph.attachment = dm.typ == "attachment"
		ph.filename = dm.param("filename")
	}
	if ph.filename == "" {
		ph.filename = ph.ct.param("name")
	}
	return ph
}

// leaf returns the content of a leaf part with its transfer encoding
// (RFC 2045 6) undone and, for text, its charset converted to UTF-8 with
// go-message's charset tables; unknown encodings and charsets are read as
// they are. The bytes are read from raw when it is given, else from r. With
// keep, the result is a fresh slice the caller may hold; otherwise it lives
// in the walker's scratch buffers until the next call. Text counts against
// the budget.
func (w *walker) leaf(h partHeader, r io.Reader, raw []byte, keep bool) []byte {
	data := raw
	if data == nil {
		lim := w.budget
		if keep {
			data = readAllInto(nil, r, lim)
		} else {
			w.buf = readAllInto(w.buf[:0], r, lim)
			data = w.buf
		}
	}
	var dst *[]byte
	if !keep {
		dst = &w.dec
	} else {
		dst = new([]byte)
	}
	switch strings.ToLower(strings.TrimSpace(h.cte)) {
	case "base64":
		*dst = decodeBase64((*dst)[:0], data)
		data = *dst
	case "quoted-printable":
		*dst = decodeQP((*dst)[:0], data)
		data = *dst
	}
	if strings.HasPrefix(h.ct.typ, "text/") {
		if len(data) > w.budget {
			data = data[:w.budget]
		}
		w.budget -= len(data)
		if cs := h.ct.param("charset"); !utf8Charset(cs) {
			if cr, err := charset.Reader(cs, bytes.NewReader(data)); err == nil {
				conv := readAllInto(w.conv[:0], cr, 2*len(data)+64)
				if !keep {
					w.conv = conv
				}
				data = conv
			}
		}
	}
	return data
}

// body walks the body of msg, whose header the analysis has read.
func (w *walker) body(a *analysis, raw []byte, r io.Reader, depth int) {
	h := partHeader{ct: a.ct, cte: a.hdr.get("Content-Transfer-Encoding")}
	if h.ct.typ == "" {
		h.ct.typ = "text/plain" // RFC 2045 5.2
	}
	if r == nil {
		r = bytes.NewReader(raw)
	}
	w.entity(a, h, r, raw, depth, nil)
}

// entity dispatches one body part on its media type.
func (w *walker) entity(a *analysis, h partHeader, r io.Reader, raw []byte, depth int, path []int) {
	if depth > w.maxDepth || w.budget <= 0 {
		return
	}
	t := h.ct.typ
	switch {
	case strings.HasPrefix(t, "multipart/"):
		if t == "multipart/report" {
			a.noteReportType(h.ct.param("report-type"), depth)
		}
		w.multipart(a, h, r, raw, depth, path)
	case t == "message/rfc822" || t == "message/global" || t == "message/x-rfc822" ||
		(t == "application/octet-stream" || t == "application/x-eml" || t == "text/plain") && h.attachment &&
			strings.HasSuffix(strings.ToLower(h.filename), ".eml"):
		// RFC 2046 5.2.1, RFC 6532 3.7; clients also attach .eml files.
		w.embedded(a, h, r, depth, path, false)
	case t == "text/rfc822-headers" || t == "message/rfc822-headers" || t == "text/rfc822-header":
		// RFC 6522 (formerly RFC 3462) section 4: the returned header only.
		w.embedded(a, h, r, depth, path, true)
	case t == "message/delivery-status" || t == "message/global-delivery-status" ||
		t == "message/xdelivery-status" || t == "text/delivery-status":
		// RFC 3464 2.1, RFC 6533 6.
		w.deliveryStatus(a, h, r, path)
	case t == "message/disposition-notification" || t == "message/global-disposition-notification":
		a.mdn = true // RFC 8098 3.1
	case t == "message/feedback-report":
		a.arf = true // RFC 5965 2
	case t == "text/plain" || t == "text/html" || t == "text/enriched" || t == "text/richtext" || t == "text/x-aol":
		if h.attachment && h.filename != "" {
			// An attached text file is not what this message says.
			a.text.forced = true
			defer func() { a.text.forced = false }()
		}
		w.text(a, h, r, raw)
	}
}

// multipart walks the parts of a multipart entity (RFC 2046 5.1).
func (w *walker) multipart(a *analysis, h partHeader, r io.Reader, raw []byte, depth int, path []int) {
	boundary := h.ct.param("boundary")
	if boundary == "" {
		w.fallback(a, r, raw)
		return
	}
	mr := gmtextproto.NewMultipartReader(r, boundary)
	alt := h.ct.typ == "multipart/alternative"
	defType := "text/plain"
	if h.ct.typ == "multipart/digest" {
		defType = "message/rfc822" // RFC 2046 5.1.5
	}
	var (
		altDone  bool
		htmlRaw  []byte
		htmlHdr  partHeader
		htmlPath []int
	)
	n := 0
	for w.parts < maxParts && w.budget > 0 {
		p, err := mr.NextPart()
		if err != nil {
			if n == 0 && err != io.EOF {
				if raw != nil {
					w.fallback(a, nil, raw)
				}
			}
			break
		}
		n++
		w.parts++
		ph := partHeaderOf(&p.Header, defType)
		pp := append(path[:len(path):len(path)], n)
		if alt && !ph.attachment {
			// RFC 2046 5.1.4: the parts say the same thing. Read one:
			// the plain text, or the first richer form when it comes
			// first, or the HTML when there is nothing else.
			if altDone {
				continue
			}
			if ph.ct.typ == "text/html" {
				if htmlRaw == nil {
					htmlRaw = readAllInto(nil, p, w.budget)
					htmlHdr, htmlPath = ph, pp
				}
				continue
			}
			if ph.ct.typ != "text/plain" && !strings.HasPrefix(ph.ct.typ, "multipart/") {
				continue
			}
			altDone = true
		}
		w.entity(a, ph, p, nil, depth+1, pp)
	}
	if alt && !altDone && htmlRaw != nil {
		w.entity(a, htmlHdr, bytes.NewReader(htmlRaw), nil, depth+1, htmlPath)
	}
}

// fallback scans a body whose MIME structure is broken as plain text, so
// that what it says is still heard.
func (w *walker) fallback(a *analysis, r io.Reader, raw []byte) {
	w.text(a, partHeader{ct: mediaType{typ: "text/plain"}}, r, raw)
}

// text scans one text part, flattening HTML.
func (w *walker) text(a *analysis, h partHeader, r io.Reader, raw []byte) {
	data := w.leaf(h, r, raw, false)
	if h.ct.typ == "text/html" {
		w.html.reset(&a.text)
		w.html.write(data)
		w.html.flush()
		a.text.endPart()
		return
	}
	a.text.scanBytes(data)
}

// embedded analyzes an attached message (message/rfc822) or returned
// header section (text/rfc822-headers) as a message of its own.
func (w *walker) embedded(a *analysis, h partHeader, r io.Reader, depth int, path []int, headersOnly bool) {
	if len(a.children) >= maxEmbedded || depth+1 > w.maxDepth {
		return
	}
	// Held in memory (within the budget) so that a broken MIME structure
	// inside can fall back to text, as at the top.
	data := w.leaf(partHeader{ct: mediaType{typ: "message/rfc822"}, cte: h.cte}, r, nil, true)
	src := &byteSource{b: data}
	fs, _, rest, err := readHeaderLenient(src)
	if err != nil && len(fs) == 0 {
		return
	}
	child := newAnalysis(fs, senderFromReturnPath(fs), depth+1)
	if !headersOnly {
		body := src.b[src.i:]
		if len(rest) > 0 {
			body = append(rest, body...)
		}
		w.body(child, body, nil, depth+1)
	}
	child.conclude()
	if child.weakAttachedReport() {
		child.kind = KindBounce
		child.facts(nil)
	}
	child.reason = child.summary()
	a.children = append(a.children, child)
	a.childPaths = append(a.childPaths, path)
}

// deliveryStatus reads the fields of a message/delivery-status part
// (RFC 3464 2.2 per-message and 2.3 per-recipient fields).
func (w *walker) deliveryStatus(a *analysis, h partHeader, r io.Reader, path []int) {
	a.dsnParts++
	if a.dsnPath == nil {
		a.dsnPath = path
	}
	if a.text.fwdSep || a.text.cur == regionEmbedded {
		a.dsnInForward = true
	}
	data := w.leaf(partHeader{ct: mediaType{typ: "text/plain"}, cte: h.cte}, r, nil, false)
	n := 0
	for line := range bytes.Lines(data) {
		if n++; n > 4096 {
			break
		}
		if l := bytes.TrimSpace(line); len(l) > 0 {
			role, val := lineKey(l)
			switch role {
			case roleDSNFinalRecipient:
				if ad := address.Extract(val); ad != "" && !a.dsnRecipFinal {
					a.dsnRecipient, a.dsnRecipFinal = ad, true
				}
			case roleDSNOriginalRecipient:
				if ad := address.Extract(val); ad != "" && a.dsnRecipient == "" {
					a.dsnRecipient = ad
				}
			case roleDSNAction:
				a.dsnActions |= parseAction(val)
			case roleDSNDiagnostic:
				if strings.Contains(strings.ToLower(val), "x-boxbe-notice") {
					// Boxbe writes its challenge as a DSN: "Sender not
					// pre-approved". Delivery has not failed.
					a.challenge = "Diagnostic-Code: " + val
				}
			}
		}
	}
}

// pathString renders a MIME part path as "part:1.2".
func pathString(path []int) string {
	if len(path) == 0 {
		return "body"
	}
	var b strings.Builder
	b.WriteString("part:")
	for i, n := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}
