package main

import (
	"regexp"
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/scenario"
)

// TestProgressStepsWording: the demo's progress line counts every message
// the rule forwarded as "messages the rule forwarded N", never "forward
// N" (the tables' "forward" is the first message only).
func TestProgressStepsWording(t *testing.T) {
	got := steps(map[string]int{scenario.StepForward: 50, scenario.StepNDR: 49, scenario.StepAutoReply: 0})
	if want := "(messages the rule forwarded 50, NDRs 49)"; got != want {
		t.Errorf("steps = %q, want %q", got, want)
	}
	if regexp.MustCompile(`\bforward \d`).MatchString(got) {
		t.Errorf("steps counts 'forward N': %q", got)
	}
	if got := steps(map[string]int{scenario.StepAutoReply: 3}); got != "(auto-replies 3)" {
		t.Errorf("steps for auto-replies = %q", got)
	}
	if got := steps(nil); got != "" {
		t.Errorf("steps of nothing = %q, want empty", got)
	}
}
