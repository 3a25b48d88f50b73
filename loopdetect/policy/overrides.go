package policy

import "strings"

// Overrides are the command line's say over the file.
type Overrides struct {
	LocalDomains      []string
	QuarantineMailbox string
	// Mode, when set, replaces the policy's mode (serve -mode).
	Mode Mode
}

// Apply sets what the overrides give.
func (p *Policy) Apply(o Overrides) {
	if len(o.LocalDomains) > 0 {
		p.LocalDomains = nil
		for _, d := range o.LocalDomains {
			if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
				p.LocalDomains = append(p.LocalDomains, d)
			}
		}
	}
	if o.QuarantineMailbox != "" {
		p.QuarantineMailbox = strings.TrimSpace(o.QuarantineMailbox)
	}
	if o.Mode != "" {
		if o.Mode != p.CurrentMode() {
			p.FileMode = p.CurrentMode()
		}
		p.Mode = o.Mode
	}
}

// CurrentMode is ModeMonitor when the policy runs in monitor mode, else
// ModeEnforce (a Policy built without Parse has no mode: enforce).
func (p *Policy) CurrentMode() Mode {
	if p.Mode == ModeMonitor {
		return ModeMonitor
	}
	return ModeEnforce
}
