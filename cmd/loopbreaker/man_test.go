package main

import (
	"bytes"
	"flag"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// TestManPages: loopbreaker man 8 and man 5 render with groff without a
// warning, and the pages hold every command, every flag and every setting.
func TestManPages(t *testing.T) {
	pages := map[string]string{}
	for _, sec := range []string{"8", "5"} {
		out, errOut, rc := runCLI("man", sec)
		if rc != 0 || errOut != "" || !strings.HasPrefix(out, `.\"`) {
			t.Fatalf("man %s: exit %d %q", sec, rc, errOut)
		}
		pages[sec] = out
	}
	for _, c := range commands {
		if c.hidden {
			continue
		}
		if !strings.Contains(pages["8"], ".SS \""+strings.TrimPrefix(c.synopsis(), "loopbreaker ")) {
			t.Errorf("loopbreaker(8) lacks the command %s", c.name)
		}
		fs, _ := c.flagSet()
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(pages["8"], "\\-"+f.Name+" ") && !strings.Contains(pages["8"], "\\-"+f.Name+"\n") {
				t.Errorf("loopbreaker(8) lacks %s -%s", c.name, f.Name)
			}
		})
	}
	for _, b := range parsePolicyBlocks(policy.DefaultText()) {
		for _, s := range b.settings {
			key, _, _ := strings.Cut(strings.TrimPrefix(s, "# "), " = ")
			if !strings.Contains(pages["5"], key) {
				t.Errorf("loopbreaker.toml(5) lacks %s", key)
			}
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff (groff-base) to render the pages")
	}
	for sec, page := range pages {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil || errb.Len() > 0 {
			t.Errorf("groff on section %s: %v\n%s", sec, err, errb.String())
		}
	}
}

// TestMan5CoversEverySetting: every key of policy.Policy and policy.Rule is
// described, by the built-in policy's comments or by the page's own list,
// and the lists name no key the policy does not have.
func TestMan5CoversEverySetting(t *testing.T) {
	documented := map[string]bool{}
	for _, b := range parsePolicyBlocks(policy.DefaultText()) {
		if b.rule {
			continue
		}
		for _, s := range b.settings {
			key, _, _ := strings.Cut(strings.TrimPrefix(s, "# "), " = ")
			documented[key] = true
		}
	}
	for _, s := range extraSettingsDoc {
		documented[s[0]] = true
	}
	keys := tomlKeys(policy.Policy{})
	for _, k := range keys {
		if !documented[k] && k != "rule" {
			t.Errorf("policy setting %s is not in loopbreaker.toml(5): describe it in extraSettingsDoc", k)
		}
	}
	for k := range documented {
		if !slices.Contains(keys, k) {
			t.Errorf("loopbreaker.toml(5) describes %s, which the policy does not have", k)
		}
	}
	ruleKeys := tomlKeys(policy.Rule{})
	var fields []string
	for _, f := range ruleFieldsDoc {
		fields = append(fields, f[0])
	}
	slices.Sort(ruleKeys)
	slices.Sort(fields)
	if !slices.Equal(ruleKeys, fields) {
		t.Errorf("rule fields %q, described in loopbreaker.toml(5): %q", ruleKeys, fields)
	}
}
