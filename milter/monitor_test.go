package milter

import (
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// startMonitor is startWithPolicy with serve -mode monitor's override,
// logging into the returned buffer.
func startMonitor(t *testing.T, src string) (string, *testproc.Buffer) {
	t.Helper()
	p := parsePolicy(t, src)
	p.Apply(policy.Overrides{Mode: policy.ModeMonitor})
	var logs testproc.Buffer
	addr, _ := serveTB(t, p, &logs, Options{}, nil)
	return addr, &logs
}

// TestMonitorModeAppliesNothing: in monitor mode no action modifies or
// refuses the message over the limit, whatever the rule's action; the
// decision log says what enforce would have done.
func TestMonitorModeAppliesNothing(t *testing.T) {
	for _, action := range []string{"reject", "tempfail", "discard", "quarantine", "redirect", "tag"} {
		t.Run(action, func(t *testing.T) {
			addr, logs := startMonitor(t, fwPolicy(action, fwLimit1))
			for i := range 3 {
				r := sendFW(t, addr)
				if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
					t.Fatalf("message %d: %+v %+v, want accepted untouched", i+1, r.act, r.mods)
				}
			}
			out := logs.String()
			for _, want := range []string{
				`msg="block started (monitor mode: nothing done)"`, `msg="would have acted (monitor mode: nothing done)"`,
				"mode=monitor action=none would_action=" + action + " rule=fw",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestMonitorModeNeverRefusesAtRCPT: a bounce to a recipient a rejecting
// rule has blocked is refused at RCPT TO in enforce mode (see
// TestNonSMTPBounceIsHeldNotRefused); in monitor mode RCPT continues and
// end of message accepts it untouched.
func TestMonitorModeNeverRefusesAtRCPTOverTheProtocol(t *testing.T) {
	addr, logs := startMonitor(t, bounceRejectPolicy("1"))
	for i := range 3 {
		macros := gomilter.NewMacroBag()
		macros.Set(gomilter.MacroClientAddr, "192.0.2.1")
		macros.Set(macroClientPort, "49152")
		// sendMacros fails unless RCPT answers continue.
		r := sendMacros(t, addr, macros, "", []string{"list@corp.example"}, bounceHeader, "b\r\n")
		if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
			t.Fatalf("bounce %d at end of message: %+v %+v", i+1, r.act, r.mods)
		}
	}
	if out := logs.String(); !strings.Contains(out, "would_action=reject") || strings.Contains(out, "refused at RCPT") {
		t.Errorf("log:\n%s", out)
	}
}
