package classify

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// Text regions. Everything a message says before the first forward or
// returned-message separator (or inline header block) is its own text; what
// follows is embedded: the forwarded report, or the original message a
// report returns.
const (
	regionOwn = iota
	regionEmbedded
)

const maxPhrases = 512

// region collects the evidence found in one region of a message's text.
type region struct {
	score       int    // phrase points, each distinct phrase counted once
	kindPts     [5]int // points per phraseKind
	hits        [maxPhrases / 64]uint64
	firstPhrase int16  // index into bodyPhrases, -1 for none
	dsnKeys     uint32 // bit per DSN line role seen
	actions     actionSet
	smtp        string // first SMTP reply with an enhanced status code seen
	recipient   string
	recipFinal  bool // recipient came from a Final-Recipient field
	messageID   string
	daemonFrom  string // a daemon From: line in a header block
	ndrSubject  string // a report Subject: line in a header block
	fwdNDR      bool   // that subject is itself a forwarded report
	rule        bool   // "Auto forwarded by a Rule"
	dsnCT       bool   // a "Content-Type: message/delivery-status" line (broken MIME)
	blocks      int    // header blocks seen
	ndrBlocks   int    // header blocks that show a report
	returnedSep bool
	ses         bool // an Amazon SES JSON notification of a bounce or delivery
}

func newRegion() region { return region{firstPhrase: -1} }

// actionSet holds RFC 3464 2.3.3 action values seen.
type actionSet uint8

const (
	actFailed actionSet = 1 << iota
	actDelayed
	actDelivered
)

func (s actionSet) String() string {
	switch {
	case s&actFailed != 0:
		return DSNFailed
	case s&actDelayed != 0:
		return DSNDelayed
	case s&actDelivered != 0:
		return DSNDelivered
	}
	return ""
}

func parseAction(v string) actionSet {
	v = strings.ToLower(strings.TrimSpace(v))
	if i := strings.IndexAny(v, " \t;("); i >= 0 {
		v = v[:i]
	}
	switch v {
	case "failed", "failure":
		return actFailed
	case "delayed":
		return actDelayed
	case "delivered", "relayed", "expanded":
		return actDelivered
	}
	return 0
}

// dsnFieldCount returns how many distinct DSN fields the region holds.
func (r *region) dsnFieldCount() int {
	n := 0
	for b := r.dsnKeys; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// textPoints sums a region's evidence that it is (or holds) a report.
func (r *region) textPoints() int {
	p := r.score
	if p > 4 {
		p = 4
	}
	switch n := r.dsnFieldCount(); {
	case n >= 3:
		p += 3
	case n == 2:
		p += 2
	}
	if r.smtp != "" {
		p++
	}
	if r.dsnCT {
		p += 2
	}
	if r.returnedSep {
		p++
	}
	return p
}

// blockState tracks a run of "Key: value" lines that may be the header block
// a mail client prints above a forwarded message, or the returned header
// section inside a report.
type blockState struct {
	active    bool
	confirmed bool
	last      int
	roles     uint32
	from      string
	subject   string
	messageID string
	sent      bool
	ndr       bool
	evaluated uint8 // bit 0: from evaluated, bit 1: subject evaluated
	// ownHits are phrases matched in the block's lines before it was
	// confirmed, counted in the own region until it is.
	ownHits []int16
}

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
	fwdSep    bool
	sawText   bool
	pending   bool // switch to the embedded region after this line
	blk       blockState
	forced    bool // scanning an attachment: everything is embedded
	finnish   bool // a header block with Finnish labels
	ownLines  int  // lines of the message's own text (not quoted, not header-like)
}

func newTextScan() textScan {
	return textScan{regions: [2]region{newRegion(), newRegion()}, sepLine: -100, ruleLine: -100}
}

// scanBytes scans a whole text held in memory, line by line.
func (ts *textScan) scanBytes(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		ts.line(line)
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
		// Quoted by a person replying (RFC 3676 4.5): not evidence of
		// anything this message is.
		ts.space()
		return
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

// count records phrase p in the region.
func (r *region) count(p int) {
	r.hits[p/64] |= 1 << (p % 64)
	ph := &bodyPhrases[p]
	switch ph.kind {
	case phReturned:
		r.returnedSep = true
		return
	case phRule:
		r.rule = true
		return
	}
	if ph.text[0] == '"' {
		r.ses = true
	}
	r.score += int(ph.weight)
	r.kindPts[ph.kind] += int(ph.weight)
	if r.firstPhrase < 0 || bodyPhrases[r.firstPhrase].weight < ph.weight {
		r.firstPhrase = int16(p)
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

// separatorKind recognizes the lines clients put above a forwarded message
// ("-----Original Message-----", "---------- Forwarded message ---------",
// "Begin forwarded message:", "-------- Forwarded Message --------", in
// their languages) and the lines some MTAs put above a returned one.
func separatorKind(l []byte) sepKind {
	if len(l) > 120 || len(l) < 4 {
		return sepNone
	}
	decorated := isDecoration(l[0])
	colon := l[len(l)-1] == ':' || bytes.HasSuffix(l, []byte("："))
	if !decorated && !colon {
		return sepNone
	}
	core := bytes.TrimFunc(l, func(r rune) bool {
		return r == '-' || r == '_' || r == '=' || r == '*' || r == '~' || r == ' ' || r == '\t' ||
			r == ':' || r == '：' || r == '—' || r == '–' || r == '<' || r == '>' || r == '#' || r == '|'
	})
	if len(core) == 0 || len(core) > 80 {
		return sepNone
	}
	var buf [128]byte
	low := foldInto(buf[:0], core)
	if k, ok := separators[string(low)]; ok {
		return k
	}
	if decorated {
		for _, p := range forwardSeparatorPrefixes {
			if bytes.HasPrefix(low, []byte(p)) {
				return sepForward
			}
		}
	}
	return sepNone
}

func isDecoration(c byte) bool {
	return c == '-' || c == '_' || c == '=' || c == '*' || c == '~' || c == '#' || c == '|'
}

// isRuleLine reports Outlook's horizontal rule of underscores, which it
// puts above the header block of a forwarded message.
func isRuleLine(l []byte) bool {
	if len(l) < 10 {
		return false
	}
	for _, c := range l {
		if c != '_' {
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

// lineKey returns the role of a "Key: value" line and its value.
func lineKey(l []byte) (lineRole, string) {
	lim := len(l)
	if lim > 48 {
		lim = 48
	}
	i := bytes.IndexByte(l[:lim], ':')
	size := 1
	if j := bytes.Index(l[:lim], []byte("：")); j > 0 && (i < 0 || j < i) {
		i, size = j, len("：")
	}
	if i <= 0 {
		return roleNone, ""
	}
	key := bytes.TrimRight(l[:i], " \t\u00a0")
	// Outlook's HTML forward, flattened, may bold the labels: "*From:*".
	key = bytes.TrimLeft(key, "*")
	if len(key) == 0 || bytes.Count(key, []byte(" ")) > 2 {
		return roleNone, ""
	}
	var buf [64]byte
	low := foldInto(buf[:0], key)
	role, ok := lineRoles[string(low)]
	if !ok {
		return roleNone, ""
	}
	val := bytes.TrimSpace(bytes.TrimLeft(l[i+size:], "*"))
	return role, string(val)
}

// keyLine handles one recognized "Key: value" line.
func (ts *textScan) keyLine(role lineRole, val string) {
	r := ts.reg()
	switch role {
	case roleDSNFinalRecipient, roleDSNOriginalRecipient:
		r.dsnKeys |= 1 << role
		if a := address.Extract(val); a != "" {
			if role == roleDSNFinalRecipient && !r.recipFinal {
				r.recipient, r.recipFinal = a, true
			} else if r.recipient == "" {
				r.recipient = a
			}
		}
		return
	case roleDSNAction:
		if a := parseAction(val); a != 0 {
			r.dsnKeys |= 1 << role
			r.actions |= a
		}
		return
	case roleDSNStatus:
		if isStatusCode(val) {
			r.dsnKeys |= 1 << role
		}
		return
	case roleDSNDiagnostic, roleDSNReportingMTA, roleDSNRemoteMTA, roleDSNArrivalDate:
		if strings.Contains(val, ";") {
			r.dsnKeys |= 1 << role
		}
		return
	case roleDSNOther:
		r.dsnKeys |= 1 << role
		return
	case roleFailedRecipients:
		r.dsnKeys |= 1 << role
		if r.recipient == "" {
			r.recipient = address.Extract(val)
		}
		return
	case roleContentType:
		low := strings.ToLower(val)
		if strings.HasPrefix(low, "message/delivery-status") || strings.HasPrefix(low, "message/global-delivery-status") ||
			strings.HasPrefix(low, "multipart/report") && strings.Contains(low, "delivery-status") {
			r.dsnCT = true
		}
	}
	// Header-block roles.
	if role == roleFromFinnish {
		ts.finnish = true
		role = roleFrom
	}
	b := &ts.blk
	if !b.active || ts.lineNo-b.last > 3 {
		ts.endBlock()
		b.active = true
	}
	b.last = ts.lineNo
	b.roles |= 1 << role
	switch role {
	case roleFrom:
		if b.from == "" {
			b.from = val
		}
	case roleSubject:
		if b.subject == "" {
			b.subject = val
		}
	case roleMessageID:
		if b.messageID == "" {
			b.messageID = val
		}
	case roleSent:
		b.sent = true
	}
	if !b.confirmed && b.roleCount() >= 2 && b.roles&(1<<roleFrom|1<<roleSubject) != 0 {
		b.confirmed = true
		if ts.cur == regionOwn && !ts.forced {
			ts.moveHits(b.ownHits)
		}
		if ts.cur == regionOwn && !ts.forced &&
			(b.sent || ts.lineNo-ts.sepLine <= 6 || ts.lineNo-ts.ruleLine <= 3) {
			ts.fwdSep = true
		}
		ts.cur = regionEmbedded
		ts.regions[regionEmbedded].blocks++
	}
	if b.confirmed {
		ts.evaluateBlock()
	}
}

// moveHits moves phrases matched in a header block's first lines from the
// own region to the embedded one, once the block is known to introduce an
// embedded message.
func (ts *textScan) moveHits(ps []int16) {
	own, emb := &ts.regions[regionOwn], &ts.regions[regionEmbedded]
	for _, p16 := range ps {
		p := int(p16)
		if own.hits[p/64]&(1<<(p%64)) == 0 {
			continue
		}
		own.hits[p/64] &^= 1 << (p % 64)
		ph := &bodyPhrases[p]
		switch ph.kind {
		case phReturned, phRule:
		default:
			own.score -= int(ph.weight)
			own.kindPts[ph.kind] -= int(ph.weight)
			if int(own.firstPhrase) == p {
				own.firstPhrase = -1
				for q := range bodyPhrases {
					if own.hits[q/64]&(1<<(q%64)) != 0 && (own.firstPhrase < 0 || bodyPhrases[own.firstPhrase].weight < bodyPhrases[q].weight) {
						own.firstPhrase = int16(q)
					}
				}
			}
		}
		if emb.hits[p/64]&(1<<(p%64)) == 0 {
			emb.count(p)
		}
	}
}

func (b *blockState) roleCount() int {
	n := 0
	for x := b.roles; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// evaluateBlock looks at the From and Subject of a confirmed header block.
func (ts *textScan) evaluateBlock() {
	b := &ts.blk
	r := &ts.regions[regionEmbedded]
	if b.roles&(1<<roleFrom) != 0 && b.evaluated&1 == 0 {
		b.evaluated |= 1
		if from := strings.TrimSpace(DecodeHeader(b.from)); isDaemonAddress(from) || strings.HasSuffix(from, "<>") || from == "" || from == `""` {
			// Clients show a report's empty From as "<>" or nothing.
			b.ndr = true
			if r.daemonFrom == "" {
				r.daemonFrom = b.from
				if r.daemonFrom == "" {
					r.daemonFrom = "<>"
				}
			}
		}
	}
	if b.subject != "" && b.evaluated&2 == 0 {
		b.evaluated |= 2
		si := parseSubject(DecodeHeader(b.subject))
		if si.ndrPhrase != "" && si.outer != pfxReply {
			b.ndr = true
			if r.ndrSubject == "" {
				r.ndrSubject = b.subject
			}
			if si.forwardedNDR() || si.innerFwdNDR {
				r.fwdNDR = true
			}
		}
	}
}

func (ts *textScan) endBlock() {
	b := &ts.blk
	if !b.active {
		return
	}
	if b.messageID != "" {
		r := ts.reg()
		if b.confirmed {
			r = &ts.regions[regionEmbedded]
		}
		if r.messageID == "" {
			r.messageID = msgIDToken(b.messageID)
		}
	}
	if b.confirmed && b.ndr {
		ts.regions[regionEmbedded].ndrBlocks++
	}
	*b = blockState{}
}

// smtpStatus looks for an SMTP reply code followed by an enhanced status
// code of the same class (RFC 5321 4.2, RFC 3463): "550 5.1.1", "452-4.2.2".
func (ts *textScan) smtpStatus(l []byte) {
	r := ts.reg()
	if r.smtp != "" {
		return
	}
	for i := 0; i+8 < len(l)+1; i++ {
		c := l[i]
		if c != '4' && c != '5' {
			continue
		}
		if i > 0 && (isDigit(l[i-1]) || l[i-1] == '.') {
			continue
		}
		if i+9 > len(l) {
			return
		}
		if !isDigit(l[i+1]) || !isDigit(l[i+2]) || (l[i+3] != ' ' && l[i+3] != '-') || l[i+4] != c || l[i+5] != '.' || !isDigit(l[i+6]) {
			continue
		}
		j := i + 7
		for j < len(l) && isDigit(l[j]) {
			j++
		}
		if j >= len(l) || l[j] != '.' || j+1 >= len(l) || !isDigit(l[j+1]) {
			continue
		}
		k := j + 1
		for k < len(l) && isDigit(l[k]) {
			k++
		}
		r.smtp = string(l[i:k])
		return
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isStatusCode reports an RFC 3463 status code ("5.1.1", "4.4.7 (delayed)").
func isStatusCode(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) < 5 || (v[0] != '2' && v[0] != '4' && v[0] != '5') || v[1] != '.' {
		return false
	}
	i := 2
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	return i > 2 && i < len(v)-1 && v[i] == '.' && isDigit(v[i+1])
}

// recipientLine picks up "<user@example.org>: reason" lines (Postfix,
// qmail) as the failed recipient.
func (ts *textScan) recipientLine(l []byte) {
	r := ts.reg()
	if r.recipient != "" {
		return
	}
	end := bytes.Index(l, []byte(">:"))
	if end < 2 || end > 256 {
		return
	}
	r.recipient = address.Extract(string(l[:end+1]))
}

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
