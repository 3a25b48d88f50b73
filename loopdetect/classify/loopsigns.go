package classify

import (
	"strconv"
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// loopSigns adds the signs that a loop is already running.
func (a *analysis) loopSigns(v *Verdict, msg *Message, opts Options) {
	if a.hops >= opts.maxHops() {
		v.LoopSigns = append(v.LoopSigns, Signal{Name: SignalHopCount, Where: "header:Received", Value: strconv.Itoa(a.hops)})
	}
	depth := a.subj.depth
	if depth >= 4 || depth >= 2 && (a.kind == KindForwardedNDR || a.kind == KindBounce) {
		v.LoopSigns = append(v.LoopSigns, Signal{Name: SignalForwardDepth, Where: "header:Subject", Value: strconv.Itoa(depth)})
	}
	if a.ndrCount >= 2 {
		where := "body"
		for _, s := range a.signals {
			if s.Name == SignalEmbeddedNDR {
				where = s.Where
				break
			}
		}
		if where == "body" && a.subj.ndrs >= 2 {
			where = "header:Subject"
		}
		v.LoopSigns = append(v.LoopSigns, Signal{Name: SignalNDROfNDR, Where: where, Value: strconv.Itoa(a.ndrCount) + " reports"})
	}
	if len(msg.Envelope.Recipients) == 0 {
		return
	}
	for i := range a.hdr {
		f := &a.hdr[i]
		var name string
		switch f.key {
		case "X-Loop":
			name = SignalXLoop
		case "Delivered-To":
			name = SignalDeliveredTo
		default:
			continue
		}
		addr := address.Extract(f.value)
		if addr == "" {
			continue
		}
		for _, r := range msg.Envelope.Recipients {
			if strings.EqualFold(address.Path(r), addr) {
				// Procmail's X-Loop and Postfix's Delivered-To name the
				// mailbox that already handled the message (RFC 5321 6.3).
				v.LoopSigns = append(v.LoopSigns, Signal{Name: name, Where: "header:" + f.key, Value: addr})
				break
			}
		}
	}
}
