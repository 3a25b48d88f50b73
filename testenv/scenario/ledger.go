package scenario

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// Fate is where one copy of a message (one message to one recipient) ended.
type Fate string

// The fates a copy can have. Together they cover every copy: a copy
// without one of them is reported as a problem of the ledger.
const (
	// Delivered: in the recipient's mailbox.
	Delivered Fate = "delivered"
	// Quarantined: redirected by loopbreaker to the quarantine mailbox.
	Quarantined Fate = "quarantined"
	// Held: in a Postfix hold queue (postsuper -H releases it).
	Held Fate = "held"
	// Rejected: loopbreaker refused it with a 5xx and a reason; the
	// sender was told (an NDR, unless the message was itself a report).
	Rejected Fate = "rejected"
	// TempFailed: refused for now with a 4xx; the sender keeps it.
	TempFailed Fate = "tempfailed"
	// Discarded: loopbreaker had the MTA drop it (auto-replies), logged.
	Discarded Fate = "discarded"
	// Bounced: the recipient does not exist; the sender got an NDR (or
	// nothing, when the message was itself a report: RFC 5321 4.5.5).
	Bounced Fate = "bounced"
	// Deferred: still in a Postfix queue, to be retried.
	Deferred Fate = "deferred"
	// Expanded: a list turned it into copies to its members, each of
	// which has a fate of its own.
	Expanded Fate = "expanded"
	// Absorbed: after the loop budget was spent, the outside took mail
	// for an unknown user into a catch-all mailbox (the test's brake).
	Absorbed Fate = "absorbed"
)

// Fates lists the fates in the order reports show them.
var Fates = []Fate{Delivered, Quarantined, Held, Rejected, TempFailed, Discarded, Bounced, Deferred, Expanded, Absorbed}

// Copy is one message to one recipient and where it ended.
type Copy struct {
	Kind      string // ordinary, forward, ndr, auto-reply
	MessageID string
	From, To  string
	Fate      Fate
	// Reason is the MTA's or loopbreaker's text for a refusal, a hold or
	// a deferral.
	Reason string
	// Path lists the queue files the copy went through ("hub:3F2A1C0A").
	Path []string
	// QueueID is the last queue file's id (for held and deferred copies:
	// what postsuper takes).
	QueueID string
	// Inst is the MTA of the last queue file ("hub", "outside"), or
	// "submission" for a copy refused when it was submitted.
	Inst string
}

// Ledger accounts for every copy of every message made during a run.
type Ledger struct {
	Copies []Copy
	// Problems lists what the ledger could not account for; empty when
	// nothing was lost.
	Problems []string
	// NDRs counts the NDRs each MTA's bounce daemon made.
	NDRs map[string]int
	// FailedBounces counts NDRs the hub's bounce daemon could not queue
	// because a non-smtpd milter refused them (the original stays
	// deferred with "bounce failed").
	FailedBounces int
}

// Count returns the number of copies of a kind ("" for all) with a fate.
func (l *Ledger) Count(kind string, fate Fate) int {
	n := 0
	for _, c := range l.Copies {
		if (kind == "" || c.Kind == kind) && c.Fate == fate {
			n++
		}
	}
	return n
}

// Made returns the number of copies of a kind ("" for all).
func (l *Ledger) Made(kind string) int {
	n := 0
	for _, c := range l.Copies {
		if kind == "" || c.Kind == kind {
			n++
		}
	}
	return n
}

// Kinds returns the kinds of message in the ledger, in a stable order.
func (l *Ledger) Kinds() []string {
	order := []string{"ordinary", "forward", "forwarded-ndr", "ndr", "auto-reply"}
	seen := map[string]bool{}
	for _, c := range l.Copies {
		seen[c.Kind] = true
	}
	var out []string
	for _, k := range order {
		if seen[k] {
			out = append(out, k)
			delete(seen, k)
		}
	}
	return append(out, sortedKeys(seen)...)
}

// ledgerInput is what a run collected for the ledger.
type ledgerInput struct {
	logs        map[string]*maillog // by instance name
	submissions []Submission
	// queued lists the queue files still in each instance's queues at
	// the end, by instance, queue id -> queue name (hold, deferred, ...).
	queued map[string]map[string]string
	// sinks: the relay port of each mailstore -> its messages.
	sinks map[int]sinkInfo
	// ports: an MTA's smtpd port -> instance name, to follow a message
	// from one MTA to the next.
	ports     map[int]string
	outside   *Directory
	kindOfMsg map[string]string // Message-ID -> kind, from the submissions
}

// entry is what entered a queue file from upstream: the recipients (when
// the queue file's own log does not list them), the path so far and the
// message's kind.
type entry struct {
	rcpts []string
	path  []string
	kind  string
}

type sinkInfo struct {
	name string
	msgs []smtpsink.Message
}

// buildLedger follows every message from where it was made (a submission,
// a bounce daemon) through the MTAs' maillogs to where it ended.
func buildLedger(in ledgerInput) *Ledger {
	l := &Ledger{NDRs: map[string]int{}}
	reached := map[*queueFile]bool{}
	var walk func(qf *queueFile, e entry)
	addCopy := func(c Copy) { l.Copies = append(l.Copies, c) }
	inQueue := func(qf *queueFile) string { return in.queued[qf.inst][qf.qid] }

	walk = func(qf *queueFile, e entry) {
		path := append(slices.Clone(e.path), qf.inst+":"+qf.qid)
		base := Copy{Kind: e.kind, MessageID: qf.msgID, From: qf.from, Path: path, QueueID: qf.qid, Inst: qf.inst}
		if reached[qf] && (qf.queued || qf.milter == "") {
			return // its recipients are accounted for from its own log
		}
		reached[qf] = true
		// A queue file a milter held or discarded logs no recipients:
		// what entered it is what the upstream side handed over, so
		// every arrival counts.
		switch qf.milter {
		case "hold":
			for _, r := range e.rcpts {
				c := base
				c.To, c.Fate, c.Reason = r, Held, "milter-hold: "+qf.milterText
				if inQueue(qf) != "hold" {
					c.Fate, c.Reason = Delivered, "released from hold (not followed)"
				}
				addCopy(c)
			}
			return
		case "discard":
			for _, r := range e.rcpts {
				c := base
				c.To, c.Fate, c.Reason = r, Discarded, qf.milterText
				addCopy(c)
			}
			return
		}
		if !qf.queued {
			for _, r := range e.rcpts {
				c := base
				c.To, c.Fate, c.Reason = r, Deferred, "queue file never reached the queue manager"
				addCopy(c)
			}
			l.Problems = append(l.Problems, fmt.Sprintf("%s:%s (%s) entered but never queued", qf.inst, qf.qid, qf.msgID))
			return
		}
		if q := inQueue(qf); q == "hold" {
			// Held after queueing (e.g. postsuper -h): every recipient.
			for _, r := range qf.rcpts {
				c := base
				c.To, c.Fate, c.Reason = r.to, Held, "in the hold queue"
				addCopy(c)
			}
			if len(qf.rcpts) == 0 {
				for _, r := range e.rcpts {
					c := base
					c.To, c.Fate, c.Reason = r, Held, "in the hold queue"
					addCopy(c)
				}
			}
			return
		}
		if len(qf.rcpts) == 0 {
			for _, r := range e.rcpts {
				c := base
				c.To, c.Fate = r, Deferred
				c.Reason = "queued, not yet delivered"
				if inQueue(qf) == "" {
					l.Problems = append(l.Problems, fmt.Sprintf("%s:%s (%s) left the queue without a delivery status for %s", qf.inst, qf.qid, qf.msgID, r))
				}
				addCopy(c)
			}
			return
		}
		for _, r := range qf.rcpts {
			c := base
			c.To, c.Reason = r.to, r.text
			switch r.status {
			case "sent":
				if r.relay == "local" {
					if f := fwdAsRE.FindStringSubmatch(r.text); f != nil {
						c.Fate = Expanded
						addCopy(c)
						if child := in.logs[qf.inst].files[f[1]]; child != nil {
							walk(child, entry{path: path, kind: e.kind})
						} else {
							l.Problems = append(l.Problems, fmt.Sprintf("%s:%s expanded into %s, which the maillog does not show", qf.inst, qf.qid, f[1]))
						}
						continue
					}
					c.Fate = Delivered
					addCopy(c)
					continue
				}
				port := relayPort(r.relay)
				if next, ok := in.ports[port]; ok {
					id := queuedAs(r.text)
					child := in.logs[next].files[id]
					if child == nil {
						c.Fate = Deferred
						c.Reason = "handed to " + next + " as " + id + ", not in its maillog"
						l.Problems = append(l.Problems, fmt.Sprintf("%s:%s to %s: %s queue file %s not found", qf.inst, qf.qid, r.to, next, id))
						addCopy(c)
						continue
					}
					// The next MTA carries on; what entered it is this
					// recipient (one transaction may carry several).
					walk(child, entry{rcpts: []string{r.to}, path: path, kind: e.kind})
					continue
				}
				if s, ok := in.sinks[port]; ok {
					switch {
					case strings.EqualFold(r.to, Quarantine):
						c.Fate = Quarantined
					case in.outside != nil && s.name == "mailstore."+OutsideDomain && !in.outside.known[localPart(r.to)]:
						c.Fate = Absorbed
					default:
						c.Fate = Delivered
					}
					addCopy(c)
					continue
				}
				c.Fate = Delivered
				c.Reason = "to " + r.relay + " (unknown relay)"
				l.Problems = append(l.Problems, fmt.Sprintf("%s:%s to %s: sent to an unknown relay %s", qf.inst, qf.qid, r.to, r.relay))
				addCopy(c)
			case "bounced", "expired":
				c.Fate = Bounced
				if strings.Contains(r.text, "loopbreaker") {
					c.Fate = Rejected
				}
				if qf.bounceFailed && inQueue(qf) != "" {
					c.Fate = Deferred
					c.Reason = "bounce failed (the NDR was refused by a milter); the original waits in the deferred queue: " + r.text
				}
				addCopy(c)
			default: // deferred
				c.Fate = Deferred
				if inQueue(qf) == "" {
					l.Problems = append(l.Problems, fmt.Sprintf("%s:%s to %s: last status %s but no longer queued", qf.inst, qf.qid, r.to, r.status))
				}
				addCopy(c)
			}
		}
	}

	// Roots 1: what people, rules and responders submitted.
	for _, s := range in.submissions {
		if s.Err != nil {
			fate, reason := Rejected, s.Err.Error()
			var se *smtp.SMTPError
			if errors.As(s.Err, &se) {
				reason = fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
				if se.Code/100 == 4 {
					fate = TempFailed
				} else if !strings.Contains(se.Message, "loopbreaker") {
					fate = Bounced
				}
			}
			for _, to := range s.To {
				addCopy(Copy{Kind: s.Kind, MessageID: s.MessageID, From: s.From, To: to, Fate: fate, Reason: reason, Inst: "submission"})
			}
			continue
		}
		qf := findSubmitted(in.logs[s.Via], s.MessageID, reached)
		if qf == nil {
			l.Problems = append(l.Problems, fmt.Sprintf("submission %s by %s via %s accepted but not in the maillog", s.MessageID, s.By, s.Via))
			continue
		}
		walk(qf, entry{rcpts: s.To, kind: s.Kind})
	}
	// Roots 2: NDRs the bounce daemons made, until none is left to follow
	// (an NDR's copy may bounce again into another NDR).
	for {
		progress := false
		for _, name := range sortedKeys(in.logs) {
			for _, qf := range in.logs[name].order {
				if qf.parentNDR == "" || reached[qf] {
					continue
				}
				parent := in.logs[name].files[qf.parentNDR]
				if parent == nil || !reached[parent] {
					continue
				}
				rcpt := []string{}
				if parent.from != "" {
					rcpt = append(rcpt, parent.from)
				}
				walk(qf, entry{rcpts: rcpt, kind: "ndr"})
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	for _, name := range sortedKeys(in.logs) {
		for _, qf := range in.logs[name].order {
			if qf.parentNDR != "" {
				l.NDRs[name]++
			}
			if reached[qf] {
				continue
			}
			switch {
			case qf.milter == "reject":
				// A refusal: the sender side of the ledger counts it
				// (a submission's error, or "bounced (host said...)").
				if qf.client == "" && qf.parentNDR == "" && qf.forwardedFrom == "" {
					l.FailedBounces++
				}
			case qf.msgID == "" && !qf.queued:
				// An attempt that never got as far as a message (e.g. a
				// bounce refused at RCPT by a non-smtpd milter).
				if qf.client == "" {
					l.FailedBounces++
				}
			default:
				l.Problems = append(l.Problems, fmt.Sprintf("%s:%s (message-id %s, from <%s>) is not accounted for", name, qf.qid, qf.msgID, qf.from))
			}
		}
	}
	// The mailboxes must hold exactly what the ledger says was delivered.
	for port, s := range in.sinks {
		want := 0
		for _, m := range s.msgs {
			want += len(m.To)
		}
		got := countSinkCopies(l, in, port)
		if got != want {
			l.Problems = append(l.Problems, fmt.Sprintf("mailstore %s holds %d copies, the maillogs deliver %d to it", s.name, want, got))
		}
	}
	return l
}

// countSinkCopies counts the ledger's copies that a mailstore received:
// those whose last hop was the store at port.
func countSinkCopies(l *Ledger, in ledgerInput, port int) int {
	n := 0
	for _, c := range l.Copies {
		if c.Fate != Delivered && c.Fate != Quarantined && c.Fate != Absorbed {
			continue
		}
		ml := in.logs[c.Inst]
		if ml == nil {
			continue
		}
		qf := ml.files[c.QueueID]
		if qf == nil {
			continue
		}
		if r := qf.rcptIdx[c.To]; r != nil && r.status == "sent" && relayPort(r.relay) == port {
			n++
		}
	}
	return n
}

// findSubmitted finds the queue file a submission made: the first one not
// yet accounted for with its Message-ID that came in over SMTP from
// 127.0.0.1.
func findSubmitted(ml *maillog, msgID string, reached map[*queueFile]bool) *queueFile {
	if ml == nil {
		return nil
	}
	for _, qf := range ml.order {
		if qf.msgID == msgID && qf.client == "127.0.0.1" && !reached[qf] && qf.milter != "reject" {
			return qf
		}
	}
	return nil
}

// relayPort returns the port of a logged relay "host[addr]:port", or 0.
func relayPort(relay string) int {
	i := strings.LastIndex(relay, "]:")
	if i < 0 {
		return 0
	}
	p, _ := strconv.Atoi(relay[i+2:])
	return p
}

func localPart(addr string) string {
	l, _, _ := strings.Cut(strings.ToLower(addr), "@")
	return l
}

// since formats d as seconds with one decimal.
func since(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
