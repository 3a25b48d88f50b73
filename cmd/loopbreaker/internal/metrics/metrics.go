// Package metrics exposes loopbreaker's Prometheus metrics, all named
// loopbreaker_*: messages by kind, actions by rule, active blocks, tracked
// keys, decision and state store latency, policy reloads and errors.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/state"
)

// Metrics implements engine.Observer and serves /metrics.
type Metrics struct {
	reg      *prometheus.Registry
	messages *prometheus.CounterVec
	actions  *prometheus.CounterVec
	would    *prometheus.CounterVec
	decision prometheus.Histogram
	store    prometheus.Histogram
	reloads  *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

var _ engine.Observer = (*Metrics)(nil)

// New registers the metrics; the gauges read st when scraped.
func New(st state.Backend) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopbreaker_messages_total", Help: "Messages decided, by the classifier's kind.",
		}, []string{"kind"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopbreaker_actions_total", Help: "Messages acted on, by action and rule (action=\"none\" for untouched mail).",
		}, []string{"action", "rule"}),
		would: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopbreaker_would_actions_total", Help: "Monitor mode: messages enforce mode would have acted on, by the action it would have taken and rule. Nothing was done to them (loopbreaker_actions_total counts them as action=\"none\").",
		}, []string{"action", "rule"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "loopbreaker_decision_seconds", Help: "Time to classify, count and decide one message.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}),
		store: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "loopbreaker_state_seconds", Help: "Time of one state store count (including the commit of a new block).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopbreaker_policy_reloads_total", Help: "Policy reloads, by result (ok, refused).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopbreaker_errors_total", Help: "Errors, by where they happened: state and policy errors and failed milter decisions let the message through; a modification the MTA refused (where=\"milter\") falls back to a safer action.",
		}, []string{"where"}),
	}
	m.reg.MustRegister(m.messages, m.actions, m.would, m.decision, m.store, m.reloads, m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "loopbreaker_active_blocks", Help: "Blocks in force.",
		}, func() float64 { return float64(len(st.Blocks())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "loopbreaker_tracked_keys", Help: "Keys with a count in a window.",
		}, func() float64 { return float64(st.Stats().Windows) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "loopbreaker_state_degraded", Help: "1 while the state is degraded: Redis unreachable (the daemon counts in its local state file meanwhile), or the state file taking no writes.",
		}, func() float64 {
			if st.BackendStatus().Degraded {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loopbreaker_state_outages_total", Help: "Times the shared state (Redis) became unreachable.",
		}, func() float64 { return float64(st.BackendStatus().Outages) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loopbreaker_state_fallbacks_total", Help: "Counts taken locally (or skipped, fail mode pass) while the shared state was unreachable.",
		}, func() float64 { return float64(st.BackendStatus().Fallbacks) }),
	)
	if h, ok := st.(interface{ Health() state.Health }); ok {
		// The bbolt file (state/health.go): failed writes (full disk,
		// read-only file system); loopbreaker_state_degraded says whether
		// the last write failed.
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loopbreaker_state_write_errors_total", Help: "Writes to the state file that failed (counts and new blocks then stay in memory).",
		}, func() float64 { return float64(h.Health().WriteErrors) }))
	}
	for _, r := range []string{"ok", "refused"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// WatchMode registers loopbreaker_monitor_mode, 1 while monitoring says
// the daemon runs in monitor mode; call it once, before serving.
func (m *Metrics) WatchMode(monitoring func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "loopbreaker_monitor_mode", Help: "1 while the daemon runs in monitor mode (rules count and blocks start, but no message is acted on; see loopbreaker_would_actions_total), 0 in enforce mode.",
	}, func() float64 {
		if monitoring() {
			return 1
		}
		return 0
	}))
}

// Decided counts a decision. loopbreaker_actions_total counts what was
// done: a decision of monitor mode is action="none" there (as untouched
// mail) and counted in loopbreaker_would_actions_total by what enforce
// mode would have done.
func (m *Metrics) Decided(d *engine.Decision, took time.Duration) {
	m.messages.WithLabelValues(string(d.Verdict.Kind)).Inc()
	action, rule := string(d.Action), d.Rule
	if d.WouldAction != "" {
		m.would.WithLabelValues(string(d.WouldAction), d.Rule).Inc()
		rule = ""
	}
	if action == "" {
		action = "none"
	}
	m.actions.WithLabelValues(action, rule).Inc()
	m.decision.Observe(took.Seconds())
}

// Counted times a store call and counts its errors.
func (m *Metrics) Counted(took time.Duration, err error) {
	m.store.Observe(took.Seconds())
	if err != nil {
		m.errors.WithLabelValues("state").Inc()
	}
}

// Failed counts an error elsewhere.
func (m *Metrics) Failed(where string) { m.errors.WithLabelValues(where).Inc() }

// Reloaded counts a policy reload.
func (m *Metrics) Reloaded(err error) {
	if err != nil {
		m.reloads.WithLabelValues("refused").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
