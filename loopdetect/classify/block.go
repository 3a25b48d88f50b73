package classify

import "strings"

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
	daemon    bool  // the From is a report sender
	evaluated uint8 // bit 0: from evaluated, bit 1: subject evaluated
	// ownHits are phrases matched in the block's lines before it was
	// confirmed, counted in the own region until it is.
	ownHits []int16
}

// blockLine handles a line of a header block: a mail client's forwarded
// header or a report's returned one.
func (ts *textScan) blockLine(role lineRole, val string) {
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
			(b.sent || ts.lineNo-ts.sepLine <= 6 || ts.lineNo-ts.ruleLine <= 3 ||
				ts.lineNo-ts.decoLine <= 4 || ts.lineNo-ts.colonLine <= 3) {
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
		case phReturned, phRule, phAuto:
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
			b.daemon = true
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
	if b.confirmed && b.daemon && (b.subject == "" || failureSubject(DecodeHeader(b.subject))) {
		// A report sender's message with no subject (an Exim filter's
		// "fail") or one that names a failure in any of the common
		// languages ("送信エラーのお知らせ", "Message non remis").
		ts.regions[regionEmbedded].daemonFailBlock = true
	}
	*b = blockState{}
}
