// Package admin is loopbreaker's administration API: HTTP with JSON bodies
// on a unix socket beside the state file (mode 0660, so access is file
// permissions), and the client the CLI uses to talk to it.
//
//	GET  /v1/status           daemon, policy and state summary
//	GET  /v1/blocks           blocks in force
//	POST /v1/release          {"rule":..., "key":...}: lift blocks
//	GET  /v1/events?n=N       the most recent acted-on decisions
//	GET  /v1/explain?key=K    per rule: the count and block of key K
//	GET  /v1/top?n=N          the keys with the highest counts
//	POST /v1/reload           reload the policy file
//	GET  /v1/timeline         messages per minute by kind, last 6 hours, and block spans
//	GET  /                    the admin page (embedded static files)
//
// The same API can also listen on TCP (ServeTCP), where every API request
// needs "Authorization: Bearer TOKEN".
package admin

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// Status is the daemon's summary.
type Status struct {
	Version string `json:"version"`
	// Name is the daemon's name in the fleet's audit trail (serve -name).
	Name      string    `json:"name,omitempty"`
	Started   time.Time `json:"started"`
	Listen    string    `json:"listen"`
	StateFile string    `json:"state_file"`
	Policy    string    `json:"policy"`
	// Mode is enforce or monitor (rules count and blocks start, but no
	// message is acted on).
	Mode          string   `json:"mode"`
	Rules         []string `json:"rules"`
	LocalDomains  []string `json:"local_domains"`
	Quarantine    string   `json:"quarantine_mailbox,omitempty"`
	TrackedKeys   int      `json:"tracked_keys"`
	ActiveBlocks  int      `json:"active_blocks"`
	PolicyNotes   []string `json:"policy_notes,omitempty"`
	LastReloadErr string   `json:"last_reload_error,omitempty"`
	// Backend is where counts and blocks live: bbolt, or Redis (and
	// whether it is unreachable, the daemon counting locally meanwhile).
	Backend state.BackendStatus `json:"backend"`
}

// Explained is one rule's view of a key.
type Explained struct {
	Rule   string       `json:"rule"`
	Key    string       `json:"key"`
	Count  int          `json:"count"`
	Limit  int          `json:"limit"`
	Window string       `json:"window"`
	Block  *state.Block `json:"block,omitempty"`
}

// BlockView is a block in force as /v1/blocks shows it: what it does to
// each further message under the policy in force.
type BlockView struct {
	state.Block
	// Action is what the block does: its rule's action (a fallback known
	// in advance included); "none" in monitor mode, where WouldAction says
	// what it would do. "" when the policy no longer has the rule.
	Action string `json:"action,omitempty"`
	// WouldAction is, in monitor mode, the action enforce mode would take.
	WouldAction string `json:"would_action,omitempty"`
}

// ReleaseRequest names what to lift: a key, a rule, or both.
type ReleaseRequest struct {
	Rule string `json:"rule,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Server serves the API.
type Server struct {
	Store  state.Backend
	Engine *engine.Engine
	// Reload reloads the policy file; nil when there is none to reload.
	Reload func() error
	// Info fills the static part of Status.
	Info func() Status
	Log  *slog.Logger
	// Timeline, when set, answers GET /v1/timeline (the page's chart); the
	// daemon makes it one of the engine's observers.
	Timeline *Timeline

	mu      sync.Mutex
	servers []*http.Server
	topAt   time.Time
	topN    int
	top     []state.KeyCount
}

//go:embed static
var static embed.FS

// Listen opens the unix socket at path (removing a stale one) with mode 0660.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another daemon is serving on it", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Serve answers on the unix socket ln until Shutdown. Access is the socket
// file's permissions.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, s.handler()) }

// ServeTCP answers on a TCP listener; every API request must carry the
// bearer token (the page's static files are public, they hold no data).
func (s *Server) ServeTCP(ln net.Listener, token string) error {
	if len(token) < 16 {
		return errors.New("admin API on TCP needs a bearer token of 16 characters or more")
	}
	h := s.handler()
	return s.serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				fail(w, http.StatusUnauthorized, "a bearer token is required")
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
}

func (s *Server) serve(ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /v1/top", s.topKeys)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/blocks", func(w http.ResponseWriter, r *http.Request) {
		bs := []BlockView{} // a JSON list, also when empty
		for _, b := range s.Store.Blocks() {
			v := BlockView{Block: b}
			if a, mode, ok := s.Engine.BlockAction(b.Rule); ok {
				v.Action = string(a)
				if mode == policy.ModeMonitor {
					v.Action, v.WouldAction = "none", string(a)
				}
			}
			bs = append(bs, v)
		}
		reply(w, bs)
	})
	mux.HandleFunc("POST /v1/release", s.release)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/explain", s.explain)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("GET /v1/timeline", s.timeline)
	return mux
}

// Shutdown stops the listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// topKeys answers the top keys, computed at most every few seconds: it
// walks every tracked key under the state's lock.
func (s *Server) topKeys(w http.ResponseWriter, r *http.Request) {
	n := 20
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > 1000 {
			fail(w, http.StatusBadRequest, "bad n %q", v)
			return
		}
	}
	s.mu.Lock()
	if time.Since(s.topAt) > topCacheFor || s.topN < n {
		s.topN = max(n, 100)
		s.top, s.topAt = s.Store.Top(s.topN), time.Now()
	}
	top := s.top[:min(n, len(s.top))]
	s.mu.Unlock()
	reply(w, top)
}

// topCacheFor bounds how often the top keys are recomputed.
const topCacheFor = 2 * time.Second

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.Info()
	p := s.Engine.Policy()
	st.Policy = p.Source
	st.Mode = string(p.CurrentMode())
	st.Rules = nil
	for _, r := range p.Rules {
		st.Rules = append(st.Rules, r.Name)
	}
	st.LocalDomains = p.LocalDomains
	st.Quarantine = p.QuarantineMailbox
	st.PolicyNotes = p.Notes()
	stats := s.Store.Stats()
	st.TrackedKeys, st.ActiveBlocks = stats.Windows, len(s.Store.Blocks())
	st.Backend = s.Store.BackendStatus()
	reply(w, st)
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var req ReleaseRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "bad request: %v", err)
		return
	}
	if req.Rule == "" && req.Key == "" {
		fail(w, http.StatusBadRequest, "release needs a key, a rule, or both")
		return
	}
	if req.Rule != "" {
		if _, ok := s.Engine.Policy().Rule(req.Rule); !ok {
			fail(w, http.StatusNotFound, "no rule %q in the policy", req.Rule)
			return
		}
	}
	lifted, err := s.Store.Release(r.Context(), req.Rule, req.Key)
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	for _, b := range lifted {
		s.Store.Record(state.Event{Rule: b.Rule, Key: b.Key, Action: "release", Count: b.Count})
		s.Log.Info("block released by the admin", "rule", b.Rule, "key", b.Key, "acted_on", b.Count)
	}
	if lifted == nil {
		lifted = []state.Block{}
	}
	reply(w, lifted)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	n := 50
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			fail(w, http.StatusBadRequest, "bad n %q", v)
			return
		}
	}
	reply(w, s.Store.Events(n))
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		fail(w, http.StatusBadRequest, "explain needs ?key=")
		return
	}
	var out []Explained
	for _, rule := range s.Engine.Policy().Rules {
		e := Explained{Rule: rule.Name, Key: key, Count: s.Store.Count(rule.Name, key), Limit: rule.Limit, Window: rule.Window.D().String()}
		if b, ok := s.Store.Blocked(rule.Name, key); ok {
			e.Block = &b
		}
		out = append(out, e)
	}
	reply(w, out)
}

func (s *Server) reload(w http.ResponseWriter, _ *http.Request) {
	if s.Reload == nil {
		fail(w, http.StatusConflict, "the daemon runs the built-in policy: there is no file to reload")
		return
	}
	if err := s.Reload(); err != nil {
		fail(w, http.StatusUnprocessableEntity, "policy reload refused; the running policy stays:\n%v", err)
		return
	}
	reply(w, map[string]string{"policy": s.Engine.Policy().Source, "result": "reloaded"})
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiError{Error: fmt.Sprintf(format, args...)})
}
