// Command lbtestenv is the Go side of loopbreaker's container test
// environment (testenv/docker/compose.yaml).
//
//	lbtestenv mailstore [flags]            the users' mailboxes and their agents
//	lbtestenv scenario forward-storm [-via hub1|hub2|sendmail] [-user ADDR] [-json]
//
// mailstore receives the mail of corp.example users (SMTP on :25) and of
// outside.example users (:2525), runs the mailbox agents (alice's
// forwarding rule) and answers a small HTTP API on 127.0.0.1:8025.
// scenario, run in the mailstore container (docker compose exec mailstore
// lbtestenv scenario forward-storm), starts a storm through one MTA,
// watches it and prints a timeline per second, when the block came and
// where every forwarded message ended. It exits 0 when the storm was
// stopped, 3 when it ran until the loop budget stopped it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/scenario"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "mailstore":
		err = mailstoreCmd(os.Args[2:])
	case "syslog":
		err = syslogCmd(os.Args[2:])
	case "scenario":
		var code int
		code, err = scenarioCmd(os.Args[2:])
		if err == nil {
			os.Exit(code)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbtestenv:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lbtestenv mailstore [flags] | lbtestenv scenario forward-storm [-via MTA] [-user ADDR] [-json]")
	os.Exit(2)
}

// ---- syslog

// syslogCmd receives syslog datagrams on a unix socket (/dev/log) and
// prints them, for daemons such as Sendmail that log only to syslog.
func syslogCmd(args []string) error {
	fs := flag.NewFlagSet("syslog", flag.ExitOnError)
	socket := fs.String("socket", "/dev/log", "the socket to listen on")
	fs.Parse(args)
	_ = os.Remove(*socket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: *socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = os.Chmod(*socket, 0o666)
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		line := string(buf[:n])
		// Drop the "<PRI>" prefix.
		if strings.HasPrefix(line, "<") {
			if i := strings.IndexByte(line, '>'); i > 0 {
				line = line[i+1:]
			}
		}
		fmt.Println(strings.TrimRight(line, "\n\x00"))
	}
}

// ---- mailstore

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

type submission struct {
	Time      time.Time `json:"time"`
	By        string    `json:"by"`
	Kind      string    `json:"kind"`
	MessageID string    `json:"message_id"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	Err       string    `json:"err,omitempty"`
}

type delivery struct {
	Time        time.Time `json:"time"`
	Store       string    `json:"store"`
	From        string    `json:"from"`
	To          []string  `json:"to"`
	Subject     string    `json:"subject"`
	MessageID   string    `json:"message_id"`
	Loopbreaker string    `json:"x_loopbreaker,omitempty"`
	OrigRcpts   string    `json:"x_loopbreaker_original_recipients,omitempty"`
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

type runRequest struct {
	Scenario string `json:"scenario"`
	Via      string `json:"via"`
	User     string `json:"user"`
	Target   string `json:"target"`
	Cap      int    `json:"cap"`
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

// RunState is what GET /run returns.
type RunState struct {
	ID          int          `json:"id"`
	Scenario    string       `json:"scenario"`
	Via         string       `json:"via"`
	User        string       `json:"user"`
	Cap         int          `json:"cap"`
	Used        int          `json:"used"`
	Start       time.Time    `json:"start"`
	Submissions []submission `json:"submissions"`
	Deliveries  []delivery   `json:"deliveries"`
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

// ---- scenario

// Report is what the scenario command concludes; -json prints it.
type Report struct {
	Via             string  `json:"via"`
	User            string  `json:"user"`
	Cap             int     `json:"cap"`
	Used            int     `json:"used"`
	CapReached      bool    `json:"cap_reached"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Forwards the rule submitted, by what they forwarded.
	Forwards          int `json:"forwards"`           // of ordinary mail
	ForwardedNDRs     int `json:"forwarded_ndrs"`     // of NDRs
	RefusedAtSubmit   int `json:"refused_at_submit"`  // the MTA said no
	NDRsBack          int `json:"ndrs_back"`          // NDRs delivered to the user
	Quarantined       int `json:"quarantined"`        // redirected to the quarantine mailbox
	StillInMTA        int `json:"still_in_mta"`       // accepted, neither bounced back nor quarantined (held or queued)
	OrdinarySent      int `json:"ordinary_sent"`      // the user's ordinary mail during the storm
	OrdinaryDelivered int `json:"ordinary_delivered"` // ... delivered to the outside mailbox
	// Block is the X-Loopbreaker header of the first quarantined message.
	Block        string  `json:"block,omitempty"`
	BlockSeconds float64 `json:"block_seconds,omitempty"`
	Timeline     []Tick  `json:"timeline"`
}

// Tick is one second of the storm.
type Tick struct {
	T           int `json:"t"`
	Forwards    int `json:"forwards"`
	NDRsBack    int `json:"ndrs_back"`
	Quarantined int `json:"quarantined"`
	Refused     int `json:"refused"`
}

func scenarioCmd(args []string) (int, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return 0, errors.New("usage: lbtestenv scenario forward-storm [-via MTA] [-user ADDR] [-json]")
	}
	name := args[0]
	fs := flag.NewFlagSet("scenario", flag.ExitOnError)
	via := fs.String("via", "hub1", "the MTA the user's rule submits through: hub1, hub2 or sendmail")
	user := fs.String("user", scenario.Alice, "the user with the forwarding rule")
	target := fs.String("target", scenario.Nobody, "where the rule forwards to (an address the outside does not have)")
	loopCap := fs.Int("cap", 100, "loop budget: forwards plus NDRs")
	api := fs.String("api", "http://127.0.0.1:8025", "the mailstore's API")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	wait := fs.Duration("wait", 3*time.Minute, "how long to wait for the MTAs to answer")
	quiet := fs.Duration("quiet", 3*time.Second, "how long without activity ends the watch")
	fs.Parse(args[1:])
	out := io.Writer(os.Stdout)
	if *asJSON {
		out = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(out, "waiting for the MTAs ...\n")
	deadline := time.Now().Add(*wait)
	for {
		resp, err := http.Get(*api + "/ready")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = errors.New(strings.TrimSpace(string(body)))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("MTAs not ready: %v", err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	body, _ := json.Marshal(runRequest{Scenario: name, Via: *via, User: *user, Target: *target, Cap: *loopCap})
	resp, err := http.Post(*api+"/run", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("start: %s", strings.TrimSpace(string(msg)))
	}
	fmt.Fprintf(out, "%s: %s's rule forwards everything to %s, submitting through %s\n", name, *user, *target, *via)

	var st RunState
	lastSig, lastChange, lastPrint := "", time.Now(), time.Now()
	ordinarySent := false
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		q := ""
		if !ordinarySent && st.Used >= 10 {
			q = "?ordinary=Lunch+on+Friday%3F"
			ordinarySent = true
		}
		if err := getJSON(*api+"/run"+q, &st); err != nil {
			return 0, err
		}
		sig := fmt.Sprintf("%d/%d/%d", st.Used, len(st.Submissions), len(st.Deliveries))
		if sig != lastSig {
			lastSig, lastChange = sig, time.Now()
		}
		if time.Since(lastPrint) >= time.Second {
			lastPrint = time.Now()
			rep := analyze(st)
			fmt.Fprintf(out, "  +%2.0fs  forwards %3d  NDRs back %3d  quarantined %d\n", time.Since(st.Start).Seconds(), rep.Forwards+rep.ForwardedNDRs, rep.NDRsBack, rep.Quarantined)
		}
		if time.Since(lastChange) >= *quiet {
			if !ordinarySent {
				ordinarySent = true
				if err := getJSON(*api+"/run?ordinary=Lunch+on+Friday%3F", &st); err != nil {
					return 0, err
				}
				lastChange = time.Now()
				continue
			}
			break
		}
	}
	rep := analyze(st)
	rep.DurationSeconds = lastChange.Sub(st.Start).Seconds()
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(os.Stdout, rep)
	}
	if rep.CapReached {
		return 3, nil
	}
	return 0, nil
}

func analyze(st RunState) Report {
	rep := Report{Via: st.Via, User: st.User, Cap: st.Cap, Used: st.Used, CapReached: st.Used >= st.Cap}
	start := st.Start.Truncate(time.Second)
	tick := func(t time.Time) *Tick {
		s := int(t.Sub(start) / time.Second)
		if s < 0 {
			s = 0
		}
		for len(rep.Timeline) <= s {
			rep.Timeline = append(rep.Timeline, Tick{T: len(rep.Timeline)})
		}
		return &rep.Timeline[s]
	}
	accepted := 0
	ordinary := map[string]bool{}
	for _, s := range st.Submissions {
		switch {
		case s.By == "test" && len(s.To) == 1 && s.To[0] == scenario.Friend:
			rep.OrdinarySent++
			ordinary[s.MessageID] = true
			continue
		case s.By == "test":
			continue
		}
		if s.Kind == "forwarded-ndr" {
			rep.ForwardedNDRs++
		} else {
			rep.Forwards++
		}
		if s.Err != "" {
			rep.RefusedAtSubmit++
			tick(s.Time).Refused++
			continue
		}
		accepted++
		tick(s.Time).Forwards++
	}
	for _, d := range st.Deliveries {
		switch {
		case d.Store == "corp" && d.From == "" && containsFold(d.To, st.User):
			rep.NDRsBack++
			tick(d.Time).NDRsBack++
		case d.Store == "corp" && containsFold(d.To, scenario.Quarantine) && d.From == st.User:
			rep.Quarantined++
			tick(d.Time).Quarantined++
			if rep.Block == "" {
				rep.Block = d.Loopbreaker
				rep.BlockSeconds = d.Time.Sub(st.Start).Seconds()
			}
		case d.Store == "outside" && ordinary[d.MessageID]:
			rep.OrdinaryDelivered++
		}
	}
	// Every forward the MTA took either bounced back as an NDR, or was
	// quarantined; what is left sits in the MTA (held or queued).
	rep.StillInMTA = accepted - rep.NDRsBack - rep.Quarantined
	return rep
}

func printReport(w io.Writer, rep Report) {
	fmt.Fprintf(w, "\nmessages per second:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "second\tforwards sent\tNDRs back\tquarantined\trefused\t")
	for _, t := range rep.Timeline {
		fmt.Fprintf(tw, "+%d\t%d\t%d\t%d\t%d\t\n", t.T, t.Forwards, t.NDRsBack, t.Quarantined, t.Refused)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if rep.CapReached {
		fmt.Fprintf(w, "the storm ran until the loop budget of %d stopped it: loopbreaker did not stop it\n", rep.Cap)
	} else {
		fmt.Fprintf(w, "the storm stopped after %.1fs\n", rep.DurationSeconds)
	}
	if rep.Block != "" {
		fmt.Fprintf(w, "block at +%.1fs: %s\n", rep.BlockSeconds, rep.Block)
	}
	fmt.Fprintf(w, "the rule forwarded %d messages (%d ordinary, %d NDRs) through %s:\n", rep.Forwards+rep.ForwardedNDRs, rep.Forwards, rep.ForwardedNDRs, rep.Via)
	fmt.Fprintf(w, "  %d refused by the outside, each coming back as an NDR\n", rep.NDRsBack)
	fmt.Fprintf(w, "  %d redirected by loopbreaker to %s\n", rep.Quarantined, scenario.Quarantine)
	fmt.Fprintf(w, "  %d refused when submitted\n", rep.RefusedAtSubmit)
	fmt.Fprintf(w, "  %d still in the MTA (held or queued)\n", rep.StillInMTA)
	fmt.Fprintf(w, "%s's ordinary mail during the storm: %d sent, %d delivered\n", rep.User, rep.OrdinarySent, rep.OrdinaryDelivered)
	if rep.Quarantined > 0 {
		fmt.Fprintln(w, "\nthe quarantined messages carry X-Loopbreaker-Original-Recipients; once the rule is fixed, send them on, and")
		fmt.Fprintln(w, "lift the block early with: docker compose exec loopbreaker loopbreaker release", rep.User)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", url, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func readHeader(msg []byte) (mail.Header, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}
