package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/scenario"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

type store struct {
	mtas    map[string]string // name -> host:port
	corp    *smtpsink.Sink
	outside *smtpsink.Sink
	mu      sync.Mutex
	run     *run
	runSeq  int
}

// run is one storm started through the API.
type run struct {
	ID       int       `json:"id"`
	Scenario string    `json:"scenario"`
	Via      string    `json:"via"`
	User     string    `json:"user"`
	Target   string    `json:"target"`
	Cap      int       `json:"cap"`
	Start    time.Time `json:"start"`

	budget *scenario.Budget
	agents *scenario.Agents
	mu     sync.Mutex
	subs   []submission
	dlv    []delivery
}

func mailstoreCmd(args []string) error {
	fs := flag.NewFlagSet("mailstore", flag.ExitOnError)
	corpAddr := fs.String("corp", ":25", "SMTP address for the corp.example mailboxes")
	outsideAddr := fs.String("outside", ":2525", "SMTP address for the outside.example mailboxes")
	control := fs.String("control", "127.0.0.1:8025", "HTTP API address")
	mtas := fs.String("mta", "hub1=hub1:25,hub2=hub2:25,sendmail=sendmail:25,outside=outside:25", "the MTAs agents submit through, NAME=HOST:PORT,...")
	fs.Parse(args)
	s := &store{mtas: map[string]string{}}
	for _, kv := range strings.Split(*mtas, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("-mta %q: want NAME=HOST:PORT", kv)
		}
		s.mtas[name] = addr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if s.corp, err = smtpsink.Start(ctx, "mailstore.corp.example", smtpsink.Listen(*corpAddr), smtpsink.OnMessage(s.deliver("corp"))); err != nil {
		return err
	}
	defer s.corp.Close()
	if s.outside, err = smtpsink.Start(ctx, "mailstore.outside.example", smtpsink.Listen(*outsideAddr), smtpsink.OnMessage(s.deliver("outside"))); err != nil {
		return err
	}
	defer s.outside.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /run", s.startRun)
	mux.HandleFunc("GET /run", s.getRun)
	mux.HandleFunc("GET /ready", s.ready)
	srv := &http.Server{Addr: *control, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Printf("mailstore: corp.example on %s, outside.example on %s, API on %s", s.corp.Addr(), s.outside.Addr(), *control)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.mu.Lock()
	if s.run != nil {
		s.run.agents.Stop()
	}
	s.mu.Unlock()
	return nil
}

func (s *store) deliver(name string) func(smtpsink.Message) {
	return func(m smtpsink.Message) {
		s.mu.Lock()
		r := s.run
		s.mu.Unlock()
		if r == nil {
			return
		}
		d := delivery{Time: m.Received, Store: name, From: m.From, To: m.To, Subject: m.Subject}
		if m.Header != nil {
			d.MessageID = m.Header.Get("Message-Id")
			d.Loopbreaker = m.Header.Get("X-Loopbreaker")
			d.OrigRcpts = m.Header.Get("X-Loopbreaker-Original-Recipients")
		}
		r.mu.Lock()
		r.dlv = append(r.dlv, d)
		r.mu.Unlock()
		r.agents.Deliver(m)
	}
}

func (s *store) submit(r *run) scenario.SubmitFunc {
	return func(ctx context.Context, by, via, kind, from string, to []string, msg []byte) error {
		addr, ok := s.mtas[via]
		if !ok {
			return fmt.Errorf("no MTA %q", via)
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		err := testenv.SendMail(sctx, addr, from, to, msg)
		sub := submission{Time: time.Now(), By: by, Kind: kind, To: to}
		if h, perr := readHeader(msg); perr == nil {
			sub.MessageID, sub.Subject = h.Get("Message-Id"), h.Get("Subject")
		}
		if err != nil {
			sub.Err = err.Error()
		}
		r.mu.Lock()
		r.subs = append(r.subs, sub)
		r.mu.Unlock()
		return err
	}
}

func (s *store) ready(w http.ResponseWriter, req *http.Request) {
	var missing []string
	for name, addr := range s.mtas {
		if err := greets(req.Context(), addr); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s): %v", name, addr, err))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		http.Error(w, strings.Join(missing, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// greets checks that an SMTP server answers 220.
func greets(ctx context.Context, addr string) error {
	line, err := testproc.Banner(ctx, addr)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

func (s *store) startRun(w http.ResponseWriter, req *http.Request) {
	var rr runRequest
	if err := json.NewDecoder(req.Body).Decode(&rr); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rr.Scenario != scenario.ForwardStorm {
		http.Error(w, "only forward-storm runs in the containers", http.StatusBadRequest)
		return
	}
	if _, ok := s.mtas[rr.Via]; !ok {
		http.Error(w, fmt.Sprintf("unknown MTA %q", rr.Via), http.StatusBadRequest)
		return
	}
	if rr.Cap <= 0 {
		rr.Cap = 100
	}
	s.mu.Lock()
	if s.run != nil {
		s.run.agents.Stop()
	}
	s.runSeq++
	r := &run{ID: s.runSeq, Scenario: rr.Scenario, Via: rr.Via, User: rr.User, Target: rr.Target, Cap: rr.Cap, Start: time.Now()}
	r.budget = scenario.NewBudget(rr.Cap)
	r.agents = scenario.NewAgents(r.budget, s.submit(r))
	r.agents.AddForwardRule(rr.User, rr.Target, rr.Via)
	s.run = r
	s.mu.Unlock()

	// The message that starts it: an outside colleague writes to the user,
	// through the same MTA.
	msg := testenv.Message([][2]string{
		{"From", scenario.Carol}, {"To", rr.User}, {"Subject", "Quarterly figures"},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<start.%d.%d@outside.example>", r.ID, time.Now().UnixNano())},
	}, "Hi,\nthe figures are attached in spirit.\n")
	if err := s.submit(r)(req.Context(), "test", rr.Via, "ordinary", scenario.Carol, []string{rr.User}, msg); err != nil {
		http.Error(w, "the first message: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"id": r.ID})
}

// sendOrdinary sends the ordinary message of the user during the storm.
func (s *store) sendOrdinary(ctx context.Context, r *run, subject string) error {
	msg := testenv.Message([][2]string{
		{"From", r.User}, {"To", scenario.Friend}, {"Subject", subject},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<ord.%d.%d@corp.example>", r.ID, time.Now().UnixNano())},
	}, "Shall we meet at noon?\n")
	return s.submit(r)(ctx, "test", r.Via, "ordinary", r.User, []string{scenario.Friend}, msg)
}

func (s *store) getRun(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r == nil {
		http.Error(w, "no run", http.StatusNotFound)
		return
	}
	if subj := req.URL.Query().Get("ordinary"); subj != "" {
		if err := s.sendOrdinary(req.Context(), r, subj); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	r.mu.Lock()
	st := RunState{ID: r.ID, Scenario: r.Scenario, Via: r.Via, User: r.User, Cap: r.Cap, Used: r.budget.Used(), Start: r.Start,
		Submissions: append([]submission(nil), r.subs...), Deliveries: append([]delivery(nil), r.dlv...)}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func readHeader(msg []byte) (mail.Header, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}
