package e2e

import (
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/scenario"
)

// TestRedirectStorm: alice's rule resends every message unchanged to the
// mistyped nobody@outside.example (issue 14), with her address and
// Resent-* fields, with an SRS envelope, or with the null envelope. Without
// loopbreaker the loop runs to the budget; with the built-in policy it
// ends at a limit with an absorbing action: nothing is rejected (which
// would make alice's mailbox server write an NDR to her, for her rule to
// resend), the storm from the limit on is redirected or held, every copy
// is accounted for and alice's ordinary mail is delivered.
func TestRedirectStorm(t *testing.T) {
	requirePostfix(t)
	t.Parallel()
	runs := []incidentRun{{
		name: "without loopbreaker",
		opts: scenario.Options{Scenario: scenario.RedirectStorm, Variant: scenario.RedirectResent},
		check: func(t *testing.T, r *scenario.Result) {
			checkLoopRan(t, r)
		},
	}}
	for _, v := range scenario.RedirectVariants {
		runs = append(runs, incidentRun{
			name: "with loopbreaker, " + string(v),
			opts: scenario.Options{Scenario: scenario.RedirectStorm, Variant: v, DaemonBin: daemonBin},
			check: func(t *testing.T, r *scenario.Result) {
				checkBlocks(t, r,
					blockWant{"forward-storm", "redirect", nil},
					blockWant{"ndrs-per-original-outbound", "redirect", nil},
					blockWant{"bounces-leaving", "redirect", nil},
					blockWant{"hop-ceiling", "quarantine", nil})
				for _, c := range r.Ledger.Copies {
					if c.Fate == scenario.Rejected || c.Fate == scenario.TempFailed {
						t.Errorf("%s copy %s to %s %s (%s): want nothing refused", c.Kind, c.MessageID, c.To, c.Fate, c.Reason)
					}
				}
				if n := r.Spent[scenario.StepServerNDR]; n != 0 {
					t.Errorf("alice's mailbox server wrote %d NDRs for refused copies, want none", n)
				}
				absorbed := r.Ledger.Count("forwarded-ndr", scenario.Quarantined) + r.Ledger.Count("forwarded-ndr", scenario.Held) +
					r.Ledger.Count("forward", scenario.Quarantined) + r.Ledger.Count("forward", scenario.Held)
				if absorbed < 1 {
					t.Errorf("no resent copy redirected or held")
				}
				if n := r.LoopMessages(); n > loopCap/2+10 {
					t.Errorf("%d loop messages, want the loop stopped well before the budget", n)
				}
				t.Logf("variant %s: %d loop messages, blocks %+v", r.Variant, r.LoopMessages(), r.Blocks)
			},
		})
	}
	runIncidents(t, runs...)
}
