// Package monitoring_test keeps the Grafana dashboard and the Prometheus
// alerting rules of this directory in step with the daemon: the rules pass
// promtool, the dashboard imports with its data source as a variable, and
// every metric any of their PromQL expressions names is in a scrape of a
// real daemon that has decided ordinary mail and stopped a storm.
package monitoring_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/miltertest"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

const (
	rulesFile     = "loopbreaker.rules.yml"
	rulesTestFile = "loopbreaker.rules.test.yml"
	dashboardFile = "loopbreaker.dashboard.json"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; scripts/deps.sh installs it)")
	}
	return p
}

// TestAlertRulesCheck: promtool check rules (syntax, PromQL, templates).
func TestAlertRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestAlertRulesUnit: promtool test rules, which runs the alerts on
// synthetic series (a block starting and ending, Redis going away, a
// refused reload, the daemon down) and compares the alerts and their text.
func TestAlertRulesUnit(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", rulesTestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

type dashboard struct {
	Inputs []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasource     `json:"datasource"`
	Targets    []target        `json:"targets"`
	GridPos    map[string]int  `json:"gridPos"`
	Panels     json.RawMessage `json:"panels"`
}

type datasource struct{ Type, UID string }

type target struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

// TestDashboardImports checks what Grafana's import needs: the data source
// is the input DS_PROMETHEUS and every panel and query uses it through
// ${DS_PROMETHEUS}; ids are unique; every query has an expression.
func TestDashboardImports(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want the one data source input DS_PROMETHEUS", d.Inputs)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("no uid or title")
	}
	// Every Prometheus data source anywhere (panels, queries, template
	// variables) is the import's variable, never a uid of one installation.
	var all any
	json.Unmarshal(b, &all)
	walkJSON("", all, func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if key == "datasource" && v["type"] == "prometheus" && v["uid"] != "${DS_PROMETHEUS}" {
				t.Errorf("data source %v", v)
			}
		case string:
			if key == "datasource" {
				t.Errorf("data source given by name %q", v)
			}
		}
	})
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.GridPos) == 0 {
			t.Errorf("panel %q has no gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" {
				t.Errorf("panel %q: query %+v", p.Title, q)
			}
			if q.Datasource == nil || q.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: query datasource %+v", p.Title, q.Datasource)
			}
		}
	}
	if queries < 15 {
		t.Errorf("only %d queries", queries)
	}
}

// walkJSON calls visit with every value in v (decoded JSON) and the key it
// stands under: an object's members under their own keys, an array's
// elements under the array's key.
func walkJSON(key string, v any, visit func(key string, v any)) {
	visit(key, v)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			walkJSON(k, x, visit)
		}
	case []any:
		for _, x := range v {
			walkJSON(key, x, visit)
		}
	}
}

// exprs returns every PromQL expression of the dashboard (panel queries and
// the template variables' label_values queries) and of the alerting rules.
func exprs(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	walkJSON("", v, func(key string, v any) {
		if v, ok := v.(string); ok && (key == "expr" || key == "query" || key == "definition") {
			out[dashboardFile] = append(out[dashboardFile], v)
		}
	})
	// The rules file is YAML; without a YAML parser in the module, the test
	// reads its expr: lines and requires each expression on its line (a
	// folded or multi-line expr would be missed, so it is refused).
	f, err := os.Open(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		e, ok := strings.CutPrefix(line, "expr:")
		if !ok {
			continue
		}
		e = strings.TrimSpace(e)
		if e == "" || e[0] == '>' || e[0] == '|' {
			t.Fatalf("%s:%d: write the expression on the expr: line", rulesFile, n)
		}
		out[rulesFile] = append(out[rulesFile], e)
	}
	if len(out[dashboardFile]) == 0 || len(out[rulesFile]) == 0 {
		t.Fatalf("no expressions found: %v", out)
	}
	return out
}

// metricName finds the names of the daemon's metrics in PromQL. Not a
// PromQL parser (github.com/prometheus/prometheus/promql/parser is too
// heavy a dependency for this): identifiers with the prefixes the daemon
// exports, loopbreaker_ and those of the Go and process collectors. No
// function, keyword or label of these expressions has those prefixes, and
// label values are skipped (quoted strings are removed first). The names
// are kept whole, _bucket, _sum and _count included: the text format has a
// sample line under each of those names, so they are looked up as such.
var (
	metricName = regexp.MustCompile(`\b(?:loopbreaker|process|go)_[a-z_]+\b`)
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	selector   = regexp.MustCompile(`\b((?:loopbreaker|process|go)_[a-z_]+)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// onlyAfterAFault are metrics the daemon registers but that a scrape shows
// only once a fault has happened: client_golang writes a labelled counter
// (a CounterVec), its # HELP and # TYPE lines included, only when it has a
// child, and loopbreaker_errors_total gets one only when counting fails or
// a decision panics (engine.Failed, metrics.Counted with an error), which
// no message provokes on a healthy daemon. For these the test requires the
// name in the daemon's binary instead, which catches a misspelling.
//
// loopbreaker_would_actions_total is in the same case for another reason:
// it gets a child only in monitor mode, and the daemon here enforces.
var onlyAfterAFault = []string{"loopbreaker_errors_total", "loopbreaker_would_actions_total"}

// TestMetricsExistInRealDaemon builds and runs the daemon with -metrics,
// sends ordinary mail and a forward storm that crosses the built-in
// forward-storm limit (25 in 15 minutes) through the milter protocol, so
// that every labelled counter has a child, scrapes /metrics and requires
// every metric name of the dashboard and the rules in the scrape, and each
// label the expressions match on on that metric.
func TestMetricsExistInRealDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := testenv.Build(ctx, dir, "./cmd/loopbreaker", false)
	if err != nil {
		t.Fatal(err)
	}
	port, err := testproc.FreePort(ctx, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d := testenv.MustStartDaemon(t, bin,
		"-metrics", metricsAddr, "-admin", filepath.Join(dir, "admin.sock"),
		"-local-domains", "corp.example", "-quarantine-mailbox", "quarantine@corp.example")

	for i := range 3 {
		send(t, d.Addr, "bob@corp.example", "carol@outside.example",
			[][2]string{{"From", "Bob <bob@corp.example>"}, {"Subject", fmt.Sprintf("minutes %d", i)}}, "see you\r\n")
	}
	storm := [][2]string{{"From", "Alice <alice@corp.example>"}, {"Subject", "FW: Mail delivery failed: returning message to sender"}}
	redirected := 0
	for range 30 {
		if mods := send(t, d.Addr, "alice@corp.example", "typo@outside.example", storm, "forwarded\r\n"); len(mods) > 0 {
			redirected++
		}
	}
	if redirected != 5 {
		t.Fatalf("%d of 30 storm messages redirected, want the 5 over the limit of 25", redirected)
	}

	scraped := scrape(t, "http://"+metricsAddr+"/metrics")
	if v := scraped.value(`loopbreaker_active_blocks`); v != "1" {
		t.Errorf("loopbreaker_active_blocks = %q after the storm, want 1", v)
	}
	if v := scraped.value(`loopbreaker_actions_total{action="redirect",rule="forward-storm"}`); v != "5" {
		t.Errorf(`loopbreaker_actions_total{action="redirect",rule="forward-storm"} = %q, want 5`, v)
	}

	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for file, es := range exprs(t) {
		for _, e := range es {
			unquoted := quoted.ReplaceAllString(e, `""`)
			for _, name := range metricName.FindAllString(unquoted, -1) {
				checked[name] = true
				if _, ok := scraped.labels[name]; ok {
					continue
				}
				if slices.Contains(onlyAfterAFault, name) {
					if !bytes.Contains(binary, []byte(`"`+name+`"`)) && !bytes.Contains(binary, []byte(name)) {
						t.Errorf("%s: %s is not registered by the daemon (not in its binary)", file, name)
					}
					continue
				}
				t.Errorf("%s: %s is not in the daemon's /metrics (expression %s)", file, name, e)
			}
			for _, m := range selector.FindAllStringSubmatch(e, -1) {
				name, labels := m[1], scraped.labels[m[1]]
				if labels == nil {
					continue // reported above, or only after a fault
				}
				for _, part := range splitMatchers(m[2]) {
					l := matcher.FindStringSubmatch(part)
					if l == nil {
						if strings.TrimSpace(part) != "" {
							t.Errorf("%s: cannot read matcher %q in %s", file, part, e)
						}
						continue
					}
					// job and instance are Prometheus's target labels.
					if l[1] != "job" && l[1] != "instance" && !labels[l[1]] {
						t.Errorf("%s: %s has no label %q (expression %s)", file, name, l[1], e)
					}
				}
			}
		}
	}
	names := make([]string, 0, len(checked))
	for n := range checked {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("checked %d metric names: %s", len(names), strings.Join(names, " "))
	for _, want := range []string{"loopbreaker_messages_total", "loopbreaker_actions_total", "loopbreaker_active_blocks",
		"loopbreaker_tracked_keys", "loopbreaker_decision_seconds_bucket", "loopbreaker_state_seconds_bucket",
		"loopbreaker_state_degraded", "loopbreaker_state_outages_total", "loopbreaker_state_fallbacks_total",
		"loopbreaker_policy_reloads_total", "loopbreaker_errors_total"} {
		if !checked[want] {
			t.Errorf("neither the dashboard nor the rules use %s", want)
		}
	}
}

// splitMatchers splits the inside of {...} at the commas outside quotes.
func splitMatchers(s string) []string {
	var parts []string
	start, inStr := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case inStr && s[i] == '\\':
			i++
		case s[i] == '"':
			inStr = !inStr
		case !inStr && s[i] == ',':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// exposition is a scrape in the Prometheus text format: the label names
// seen on each sample name, and each sample's value by its line.
type exposition struct {
	labels map[string]map[string]bool
	values map[string]string
}

func (x *exposition) value(series string) string { return x.values[series] }

var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

func scrape(t *testing.T, url string) *exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %v %s", url, err, resp.Status)
	}
	x := &exposition{labels: map[string]map[string]bool{}, values: map[string]string{}}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			t.Fatalf("scrape line %q", line)
		}
		name, rest, _ := strings.Cut(series, "{")
		if x.labels[name] == nil {
			x.labels[name] = map[string]bool{}
		}
		for _, m := range labelName.FindAllStringSubmatch(rest, -1) {
			x.labels[name][m[1]] = true
		}
		x.values[series] = value
	}
	return x
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// send runs one message through a milter session as Postfix's smtpd does
// and returns the message modifications the daemon asked for.
func send(t *testing.T, addr, from, rcpt string, headers [][2]string, body string) []gomilter.ModifyAction {
	t.Helper()
	r, err := miltertest.MTA{}.Send(addr, miltertest.Message{From: from, Rcpts: []string{rcpt}, Headers: headers, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if r.Early != "" || r.Action.Type != gomilter.ActionAccept {
		t.Fatalf("action %v (early: %q)", r.Action, r.Early)
	}
	return r.Mods
}
