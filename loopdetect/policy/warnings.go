package policy

import (
	"fmt"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// RefusesLocalOutbound reports whether the rule would reject or tempfail
// outbound mail of local senders: its direction is outbound or any, its
// kinds include bounce, forwarded-ndr, any or loop-sign, its action is
// reject or tempfail, and its senders patterns (when it has any) may match
// a local sender. Refusing such a message does not end a loop that a local
// mailbox rule drives: the local server answers the refusal with an NDR to
// the mailbox, whose rule sends it on again.
func (r *Rule) RefusesLocalOutbound(p *Policy) bool {
	if r.Action != ActionReject && r.Action != ActionTempfail {
		return false
	}
	if r.Direction == DirectionInbound {
		return false
	}
	kind := false
	for _, k := range r.Kinds {
		switch k {
		case string(classify.KindBounce), string(classify.KindForwardedNDR), KindAny, KindLoopSign:
			kind = true
		}
	}
	if !kind {
		return false
	}
	if len(r.Senders) == 0 {
		return true
	}
	for _, pat := range r.Senders {
		if p.mayMatchLocalSender(pat) {
			return true
		}
	}
	return false
}

// mayMatchLocalSender reports whether a senders pattern may match a local
// mailbox or the null sender (which a local rule keeps when it redirects a
// report): "<>", a pattern whose domain is local, or a glob in the domain.
func (p *Policy) mayMatchLocalSender(pattern string) bool {
	pattern = strings.ToLower(strings.TrimSpace(pattern))
	if pattern == "<>" || pattern == "" {
		return true
	}
	domain := pattern
	if i := strings.LastIndex(pattern, "@"); i >= 0 {
		domain = pattern[i+1:]
	}
	if strings.ContainsAny(domain, "*?[") {
		return true
	}
	return p.IsLocalDomain(domain)
}

// Notes are the warnings about the policy as it stands (after Apply): what
// will work differently from what a reader of the file may expect.
func (p *Policy) Notes() []string {
	notes := append([]string(nil), p.Warnings...)
	for _, c := range p.Cautions {
		notes = append(notes, c.Error())
	}
	return append(notes, p.settingNotes()...)
}

// OtherNotes are the Notes but the Cautions (which have a place in the file).
func (p *Policy) OtherNotes() []string {
	return append(append([]string(nil), p.Warnings...), p.settingNotes()...)
}

func (p *Policy) settingNotes() []string {
	var notes []string
	if p.FileMode != "" {
		notes = append(notes, fmt.Sprintf("mode %s is set on the command line (serve -mode); it overrides the policy file's mode %s, also across reloads", p.Mode, p.FileMode))
	}
	if p.CurrentMode() == ModeMonitor {
		notes = append(notes, "monitor mode: every rule counts and blocks start and end, but no message is acted on; the log, events, blocks, metrics and admin mail say what would have been done")
	}
	if len(p.LocalDomains) == 0 {
		notes = append(notes, "local_domains is empty: every recipient counts as outside and inbound rules match nothing")
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action == ActionRedirect && p.QuarantineMailbox == "" {
			notes = append(notes, fmt.Sprintf("rule %q redirects but quarantine_mailbox is not set: it quarantines to the hold queue instead", r.Name))
		}
	}
	return notes
}
