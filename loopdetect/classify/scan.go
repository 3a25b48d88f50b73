package classify

import (
	"bytes"
	"encoding/binary"
	"unicode"
	"unicode/utf8"
)

// textScan is the single-pass scanner over the decoded text of one message
// (all its text parts in order). It folds case and collapses white space on
// the fly and feeds the phrase automaton, while a small line state machine
// finds separators, header blocks and DSN fields.
type textScan struct {
	regions   [2]region
	cur       int
	stateA    uint16 // state of asciiMatcher
	stateU    uint16 // state of uniMatcher
	lastSpace bool
	lineNo    int
	sepLine   int // line of the last forward separator
	ruleLine  int // line of the last underscore rule (Outlook)
	decoLine  int // line of the last unrecognized decorated line ("----- x -----")
	colonLine int // line of the last short line ending in a colon ("Begin forwarded message:")
	fwdSep    bool
	// fwdSubject: the message's subject is a forward ("Fwd: x"), so
	// quoted lines are what it forwards (set before the body is read).
	fwdSubject bool
	// attribDaemon is the last attribution line that names a report
	// sender; the quoted text below it is that sender's message.
	attribDaemon string
	sawText      bool
	pending      bool // switch to the embedded region after this line
	blk          blockState
	forced       bool // scanning an attachment: everything is embedded
	finnish      bool // a header block with Finnish labels
	ownLines     int  // lines of the message's own text (not quoted, not header-like)
}

func newTextScan() textScan {
	return textScan{regions: [2]region{newRegion(), newRegion()}, sepLine: -100, ruleLine: -100, decoLine: -100, colonLine: -100}
}

// scanBytes scans a whole text held in memory, line by line.
func (ts *textScan) scanBytes(b []byte) {
	for line := range bytes.Lines(b) {
		ts.line(bytes.TrimSuffix(line, []byte("\n")))
	}
	ts.endPart()
}

// endPart closes the state that must not run across parts.
func (ts *textScan) endPart() {
	ts.endBlock()
	ts.space()
}

func (ts *textScan) reg() *region {
	if ts.forced {
		return &ts.regions[regionEmbedded]
	}
	return &ts.regions[ts.cur]
}

// line processes one line of text (without its LF; a CR is trimmed).
func (ts *textScan) line(raw []byte) {
	ts.lineNo++
	l := bytes.TrimSpace(raw)
	if len(l) == 0 {
		ts.space()
		return
	}
	ts.sawText = true
	if l[0] == '>' && !bytes.HasPrefix(l, []byte(">>> ")) {
		if !ts.fwdSep && !ts.fwdSubject {
			// Quoted by a person replying (RFC 3676 4.5): not evidence
			// of anything this message is.
			ts.space()
			return
		}
		// Below a forward separator, or in a message whose subject is a
		// forward, a client that quotes what it forwards (Mutt's
		// forward_quote, Evolution's "Forward quoted", a reply turned
		// into a forward): the forwarded message itself.
		if ts.cur == regionOwn && !ts.forced {
			ts.endBlock()
			ts.cur = regionEmbedded
			if r := &ts.regions[regionEmbedded]; ts.attribDaemon != "" && ts.lineNo-ts.colonLine <= 2 && r.daemonFrom == "" {
				r.daemonFrom = ts.attribDaemon
			}
		}
		l = bytes.TrimLeft(l, "> \t")
		if len(l) == 0 {
			ts.space()
			return
		}
		raw = l
	}
	if k := separatorKind(l); k != sepNone {
		ts.endBlock()
		if k == sepForward {
			if ts.cur == regionOwn && !ts.forced {
				ts.fwdSep = true
			}
			ts.sepLine = ts.lineNo
		} else {
			ts.reg().returnedSep = true
		}
		ts.cur = regionEmbedded
		ts.space()
		return
	}
	if isRuleLine(l) {
		ts.ruleLine = ts.lineNo
		ts.space()
		return
	}
	indented := raw[0] == ' ' || raw[0] == '\t'
	if role, val := lineKey(l); role != roleNone && (!indented || role >= roleDSNFinalRecipient) {
		// Clients print a forwarded header block flush left; reports
		// that quote the original's To/Subject indent them.
		ts.keyLine(role, val)
	} else {
		// A separator in a language or wording the tables lack is told
		// by its shape: a decorated line, or a short one ending in a
		// colon, right above a header block (see blockLine).
		if len(l) >= 8 && len(l) <= 120 && isDecoration(l[0]) && isDecoration(l[1]) && isDecoration(l[2]) {
			ts.decoLine = ts.lineNo
		} else if len(l) <= 200 && (l[len(l)-1] == ':' || bytes.HasSuffix(l, []byte("："))) {
			ts.colonLine = ts.lineNo
			if isDaemonAddress(string(l)) {
				// An attribution line naming a report sender ("On
				// <date>, Mail Delivery System <MAILER-DAEMON@x>
				// wrote:") above what a forward quotes.
				ts.attribDaemon = string(l)
			}
		} else if ts.cur == regionOwn && !ts.forced && ts.nearSeparator() {
			ts.unknownLabelLine(l)
		}
		if ts.blk.active && ts.lineNo-ts.blk.last > 2 {
			ts.endBlock()
		}
		if ts.cur == regionOwn && !ts.forced {
			ts.ownLines++
		}
	}
	ts.smtpStatus(l)
	if l[0] == '<' {
		ts.recipientLine(l)
	}
	ts.feed(l)
	ts.space()
	if ts.pending {
		ts.pending = false
		ts.cur = regionEmbedded
	}
}

// space feeds one collapsed white space to the automata.
func (ts *textScan) space() {
	if !ts.lastSpace {
		ts.lastSpace = true
		ts.stepA(' ')
		if ts.stateU != 0 {
			ts.stepU(' ')
		}
	}
}

func (ts *textScan) stepA(b byte) {
	ts.stateA = asciiMatcher.step(ts.stateA, b)
	if ts.stateA&acceptFlag != 0 {
		ts.acceptA()
	}
}

func (ts *textScan) stepU(b byte) {
	ts.stateU = uniMatcher.step(ts.stateU, b)
	if ts.stateU&acceptFlag != 0 {
		ts.acceptU()
	}
}

// acceptA and acceptU record the patterns that end in the current state.
func (ts *textScan) acceptA() {
	m := asciiMatcher
	for e := m.out[ts.stateA&^acceptFlag]; e >= 0; e = m.outList[e].next {
		ts.hit(asciiIndex[m.outList[e].pattern])
	}
}

func (ts *textScan) acceptU() {
	m := uniMatcher
	for e := m.out[ts.stateU&^acceptFlag]; e >= 0; e = m.outList[e].next {
		ts.hit(uniIndex[m.outList[e].pattern])
	}
}

func (ts *textScan) hit(p int) {
	r := ts.reg()
	if r.hits[p/64]&(1<<(p%64)) != 0 {
		return
	}
	if ts.blk.active && !ts.blk.confirmed && r == &ts.regions[regionOwn] {
		ts.blk.ownHits = append(ts.blk.ownHits, int16(p))
	}
	r.count(p)
	if bodyPhrases[p].kind == phReturned {
		ts.pending = true
	}
}

// feed folds the line to lower case with single spaces and runs it through
// the phrase automata. Letters of the Latin, Greek and Cyrillic scripts are
// folded; typographic apostrophes become ASCII ones; backslashes (JSON and
// quoted-string escapes) are skipped.
func (ts *textScan) feed(l []byte) {
	if ts.stateU == 0 && isASCII(l) {
		ts.feedASCII(l)
		return
	}
	for i := 0; i < len(l); {
		c := l[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
				ts.space()
				continue
			case c == '\\':
				continue
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			}
			ts.lastSpace = false
			ts.stepA(c)
			ts.stepU(c)
			continue
		}
		r, size := utf8.DecodeRune(l[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			ts.lastSpace = false
			ts.stepA(c)
			ts.stepU(c)
			continue
		case r == 0xA0 || r == 0x2007 || r == 0x202F || unicode.IsSpace(r):
			ts.space()
			continue
		case r == 0x2019 || r == 0x2018:
			ts.lastSpace = false
			ts.stepA('\'')
			ts.stepU('\'')
			continue
		}
		if lr := unicode.ToLower(r); utf8.RuneLen(lr) == size {
			r = lr
		}
		ts.lastSpace = false
		ts.stepA(0x80) // not in any ASCII phrase
		var buf [4]byte
		n := utf8.EncodeRune(buf[:], r)
		for j := 0; j < n; j++ {
			ts.stepU(buf[j])
		}
	}
}

// feedASCII is feed for a line of ASCII, with only the ASCII phrases to
// look for: the hot loop of the classifier.
func (ts *textScan) feedASCII(l []byte) {
	m := asciiMatcher
	next, class, nclass := m.next, &m.class, m.nclass
	spaceClass := int(class[' '])
	st, last := ts.stateA, ts.lastSpace
	for _, c := range l {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			if last {
				continue
			}
			last = true
			st = next[int(st&^acceptFlag)*nclass+spaceClass]
		case c == '\\':
			continue
		default:
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			last = false
			st = next[int(st&^acceptFlag)*nclass+int(class[c])]
		}
		if st&acceptFlag != 0 {
			ts.stateA = st
			ts.acceptA()
		}
	}
	ts.stateA, ts.lastSpace = st, last
}

// isASCII reports whether b holds only ASCII bytes, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// foldInto appends the lower-case form of b to dst (ASCII fast path).
func foldInto(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == 0xA0 {
			dst = append(dst, ' ')
		} else {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		i += size
	}
	return dst
}

// nearSeparator reports a line at most six lines below a separator, known
// or told by its shape.
func (ts *textScan) nearSeparator() bool {
	last := ts.sepLine
	for _, n := range [...]int{ts.decoLine, ts.colonLine, ts.ruleLine} {
		if n > last {
			last = n
		}
	}
	return ts.lineNo-last <= 6
}

// unknownLabelLine looks at a "Label: value" line whose label the tables
// lack, right below a separator: when the value names a report sender it
// is the From line of a forwarded report's header block in a language the
// tables do not know, and what follows is the forwarded report.
func (ts *textScan) unknownLabelLine(l []byte) {
	i := bytes.IndexByte(l, ':')
	if i <= 0 || i > 40 || bytes.Count(l[:i], []byte(" ")) > 2 {
		return
	}
	val := bytes.TrimSpace(l[i+1:])
	if len(val) == 0 || len(val) > 200 || !isDaemonAddress(string(val)) {
		return
	}
	ts.endBlock()
	ts.fwdSep = true
	ts.cur = regionEmbedded
	r := &ts.regions[regionEmbedded]
	if r.daemonFrom == "" {
		r.daemonFrom = string(val)
	}
	r.blocks++
	r.ndrBlocks++
	// No subject is known; weigh it as a report sender's block whose
	// subject is not known to name a failure (see forwardEvidence).
}
