package classify

import "strings"

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
	// daemonFailBlock: a header block from a report sender whose Subject
	// is missing or names a failure (failureSubject).
	daemonFailBlock bool
	rule            bool // "Auto forwarded by a Rule"
	dsnCT           bool // a "Content-Type: message/delivery-status" line (broken MIME)
	blocks          int  // header blocks seen
	ndrBlocks       int  // header blocks that show a report
	returnedSep     bool
	ses             bool  // an Amazon SES JSON notification of a bounce or delivery
	autoPts         int   // auto-responder wording (phAuto phrases' weights)
	autoFirst       int16 // the heaviest of them, -1 for none
}

func newRegion() region { return region{firstPhrase: -1, autoFirst: -1} }

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
	case phAuto:
		r.autoPts += int(ph.weight)
		if r.autoFirst < 0 || bodyPhrases[r.autoFirst].weight < ph.weight {
			r.autoFirst = int16(p)
		}
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
