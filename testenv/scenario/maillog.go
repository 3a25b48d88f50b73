package scenario

import (
	"regexp"
	"strings"
	"time"
)

// queueFile is what a Postfix maillog says about one queue file.
type queueFile struct {
	inst    string // "hub" or "outside"
	qid     string
	created time.Time
	msgID   string
	from    string // envelope sender ("" for <>), from qmgr
	queued  bool   // qmgr saw it (it entered the active queue)
	client  string // smtpd client address, "" when not from smtpd
	// milter is what a milter did at cleanup: "reject", "discard" or
	// "hold"; milterText is Postfix's log text for it.
	milter     string
	milterText string
	// parentNDR is the queue file whose bounce made this one (an NDR).
	parentNDR string
	// ndr is the NDR this queue file's bounces made.
	ndr string
	// forwardedFrom is the queue file local(8) expanded into this one.
	forwardedFrom string
	rcpts         []*rcptStatus
	rcptIdx       map[string]*rcptStatus
	bounceFailed  bool // qmgr: status=deferred (bounce failed)
	removed       bool
}

// rcptStatus is the last delivery status of one recipient of a queue file.
type rcptStatus struct {
	to     string
	relay  string // as logged: "127.0.0.1[127.0.0.1]:2525", "local", "none"
	status string // sent, bounced, deferred, expired
	text   string // the parenthesized text
	when   time.Time
}

// maillog is a parsed Postfix maillog.
type maillog struct {
	inst    string
	files   map[string]*queueFile
	order   []*queueFile
	noqueue []noqueueReject
}

// noqueueReject is smtpd refusing a recipient before a queue file exists.
type noqueueReject struct {
	when     time.Time
	from, to string
	text     string
}

var (
	logLineRE  = regexp.MustCompile(`^(\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ postfix-[^/]+/([\w-]+)\[\d+\]: (.*)$`)
	qidRE      = regexp.MustCompile(`^([0-9A-F]{6,}): (.*)$`) // short queue ids
	deliveryRE = regexp.MustCompile(`^to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^,]+), .*?status=(\w+) \((.*)\)$`)
	qmgrFromRE = regexp.MustCompile(`^from=<([^>]*)>, size=\d+, nrcpt=\d+`)
	noqueueRE  = regexp.MustCompile(`^NOQUEUE: reject: RCPT from [^:]+: (.*); from=<([^>]*)> to=<([^>]*)>`)
	queuedAsRE = regexp.MustCompile(`queued as ([0-9A-Za-z]+)\)?$`)
	fwdAsRE    = regexp.MustCompile(`^forwarded as ([0-9A-Za-z]+)$`)
	clientRE   = regexp.MustCompile(`^client=[^\[]*\[([^\]]+)\]`)
	milterRE   = regexp.MustCompile(`^milter-(reject|discard|hold): (.*)$`)
	ndrRE      = regexp.MustCompile(`^(?:sender|postmaster) non-delivery notification: ([0-9A-Za-z]+)$`)
)

// parseMaillog reads a maillog written by a private instance named inst.
func parseMaillog(inst, text string, now time.Time) *maillog {
	ml := &maillog{inst: inst, files: map[string]*queueFile{}}
	get := func(qid string, t time.Time) *queueFile {
		qf := ml.files[qid]
		if qf == nil {
			qf = &queueFile{inst: inst, qid: qid, created: t, rcptIdx: map[string]*rcptStatus{}}
			ml.files[qid] = qf
			ml.order = append(ml.order, qf)
		}
		return qf
	}
	for _, line := range strings.Split(text, "\n") {
		m := logLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t := parseSyslogTime(m[1], now)
		prog, rest := m[2], m[3]
		if strings.HasPrefix(rest, "NOQUEUE: reject: RCPT") {
			if n := noqueueRE.FindStringSubmatch(rest); n != nil {
				ml.noqueue = append(ml.noqueue, noqueueReject{when: t, text: n[1], from: n[2], to: n[3]})
			}
			continue
		}
		q := qidRE.FindStringSubmatch(rest)
		if q == nil {
			continue
		}
		qid, ev := q[1], q[2]
		switch {
		case prog == "smtpd" && strings.HasPrefix(ev, "client="):
			qf := get(qid, t)
			if c := clientRE.FindStringSubmatch(ev); c != nil {
				qf.client = c[1]
			}
		case prog == "cleanup" && strings.HasPrefix(ev, "message-id="):
			get(qid, t).msgID = strings.TrimPrefix(ev, "message-id=")
		case prog == "cleanup" && milterRE.MatchString(ev):
			mm := milterRE.FindStringSubmatch(ev)
			qf := get(qid, t)
			if qf.milter == "" || mm[1] == "reject" {
				qf.milter, qf.milterText = mm[1], mm[2]
			}
		case prog == "qmgr" && strings.HasPrefix(ev, "from="):
			qf := get(qid, t)
			qf.queued = true
			if f := qmgrFromRE.FindStringSubmatch(ev); f != nil {
				qf.from = f[1]
			}
		case prog == "qmgr" && ev == "removed":
			get(qid, t).removed = true
		case prog == "qmgr" && strings.HasPrefix(ev, "status=deferred (bounce failed)"):
			get(qid, t).bounceFailed = true
		case prog == "bounce" && ndrRE.MatchString(ev):
			child := ndrRE.FindStringSubmatch(ev)[1]
			get(qid, t).ndr = child
			get(child, t).parentNDR = qid
		case deliveryRE.MatchString(ev):
			d := deliveryRE.FindStringSubmatch(ev)
			qf := get(qid, t)
			rs := qf.rcptIdx[d[1]]
			if rs == nil {
				rs = &rcptStatus{to: d[1]}
				qf.rcptIdx[d[1]] = rs
				qf.rcpts = append(qf.rcpts, rs)
			}
			rs.relay, rs.status, rs.text, rs.when = d[2], d[3], d[4], t
			if d[2] == "local" {
				if f := fwdAsRE.FindStringSubmatch(d[4]); f != nil {
					get(f[1], t).forwardedFrom = qid
				}
			}
		}
	}
	return ml
}

// parseSyslogTime reads "Nov 23 01:24:38" (local time, no year) as the
// moment closest to now.
func parseSyslogTime(s string, now time.Time) time.Time {
	t, err := time.ParseInLocation("Jan _2 15:04:05", s, time.Local)
	if err != nil {
		return time.Time{}
	}
	t = t.AddDate(now.Year(), 0, 0)
	if t.After(now.Add(48 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t
}

// queuedAs returns the remote queue id in a "250 ... queued as ID" reply.
func queuedAs(text string) string {
	if m := queuedAsRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}
