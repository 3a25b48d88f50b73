package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/scenario"
)

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

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
