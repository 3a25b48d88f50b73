package scenario

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// The world every scenario runs in.
const (
	// HubDomain is the organization behind the hub, whose users' mail
	// goes to the hub mailstore.
	HubDomain = "corp.example"
	// ListDomain is where the hub's distribution lists live (local(8)
	// with alias_maps).
	ListDomain = "lists.corp.example"
	// OutsideDomain is the other organization, behind the outside MTA.
	OutsideDomain = "outside.example"
	// Quarantine is loopbreaker's quarantine mailbox, in the hub mailstore.
	Quarantine = "quarantine@" + HubDomain
	// OutsideIP is the outside MTA's loopback address: the hub sees it as
	// a different client, and its smtp client binds it.
	OutsideIP = "127.0.0.2"
)

// OutsideMode says how the outside MTA treats mail to users it does not
// have.
type OutsideMode int

const (
	// RejectAtRCPT: the outside smtpd refuses unknown users (550 5.1.1 at
	// RCPT TO), so the NDR is made by the hub's own Postfix (its bounce
	// daemon), which no smtpd milter sees.
	RejectAtRCPT OutsideMode = iota
	// BounceAfterAccept: the outside relay accepts every address of its
	// domain, its mailbox server refuses the unknown ones, and the outside
	// Postfix sends the NDR back to the hub over SMTP, through the hub's
	// smtpd and its milter.
	BounceAfterAccept
)

func (m OutsideMode) String() string {
	if m == BounceAfterAccept {
		return "outside accepts, then sends an NDR"
	}
	return "outside refuses unknown users at RCPT TO"
}

// WorldConfig describes the MTAs of one run.
type WorldConfig struct {
	// Dir is a directory for the run's files. Required.
	Dir string
	// DaemonBin is the loopbreaker binary; empty runs the hub without
	// loopbreaker.
	DaemonBin string
	// Policy is the policy file's content; empty uses the built-in policy.
	Policy string
	// BounceMilter also sends the hub's own bounces through loopbreaker:
	// non_smtpd_milters and internal_mail_filter_classes = bounce.
	BounceMilter bool
	// Outside is how the outside MTA refuses unknown users.
	Outside OutsideMode
	// OutsideUsers are the outside.example users that exist (local parts).
	OutsideUsers []string
	// Lists maps a list name (local part at ListDomain) to its members.
	// Each list gets "owner-LIST: LIST": the envelope return path of what
	// the list sends is the list itself, the misconfiguration of incident 2.
	Lists map[string][]string
	// Budget bounds the loop. Required.
	Budget *Budget
	// HubMainCF are more main.cf settings of the hub.
	HubMainCF map[string]string
	// MilterDefaultAction is the hub's milter_default_action; default
	// "tempfail", so that a milter failure shows as deferred mail rather
	// than as mail passing unfiltered.
	MilterDefaultAction string
}

// World is a running hub, outside MTA, mailstores and (optionally) loopbreaker.
type World struct {
	cfg WorldConfig

	// Hub is the organization's Postfix, with loopbreaker as milter.
	Hub *postfix.Instance
	// Outside is the other organization's Postfix on OutsideIP.
	Outside *postfix.Instance
	// Daemon is loopbreaker, nil when the run has none.
	Daemon *testenv.Daemon
	// HubStore receives the hub users' mail (and the quarantine mailbox).
	HubStore *smtpsink.Sink
	// OutsideStore receives the outside users' mail.
	OutsideStore *smtpsink.Sink
	// Directory knows the outside users.
	Directory *Directory

	policy  *policyServer
	cleanup []func()

	// Agents are the hub and outside users' rules and responders.
	*Agents

	subMu       sync.Mutex
	submissions []Submission

	closeOnce sync.Once
	closeErr  error
}

// Submission is a message a person, a rule or a responder handed to an MTA
// over SMTP.
type Submission struct {
	Time      time.Time
	By        string // who: "test", "rule:alice@corp.example", "oof:bob@...", "helpdesk:..."
	Via       string // "hub" or "outside"
	MessageID string
	Kind      string // what the scenario made: forward, auto-reply, ordinary
	From      string
	To        []string
	Subject   string
	// Err is the MTA's refusal, nil when it took the message.
	Err error
	// Data is the message as submitted.
	Data []byte
}

// StartWorld starts loopbreaker (when cfg.DaemonBin is set), the mailstores,
// the outside MTA and the hub. Close stops them all.
func StartWorld(ctx context.Context, cfg WorldConfig) (_ *World, err error) {
	if cfg.Dir == "" || cfg.Budget == nil {
		return nil, errors.New("scenario: WorldConfig needs Dir and Budget")
	}
	if cfg.MilterDefaultAction == "" {
		cfg.MilterDefaultAction = "tempfail"
	}
	w := &World{cfg: cfg}
	w.Agents = NewAgents(cfg.Budget, w.Submit)
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	w.Directory = newDirectory(OutsideDomain, cfg.OutsideUsers, cfg.Budget)

	if cfg.DaemonBin != "" {
		args := []string{
			"-local-domains", HubDomain + ",." + HubDomain,
			"-quarantine-mailbox", Quarantine,
			"-log-format", "json", "-log-level", "debug",
		}
		if cfg.Policy != "" {
			p := filepath.Join(cfg.Dir, "policy.toml")
			if err := os.WriteFile(p, []byte(cfg.Policy), 0o644); err != nil {
				return nil, err
			}
			args = append(args, "-policy", p)
		}
		ddir := filepath.Join(cfg.Dir, "loopbreaker")
		if err := os.MkdirAll(ddir, 0o755); err != nil {
			return nil, err
		}
		if w.Daemon, err = testenv.StartDaemon(ctx, cfg.DaemonBin, ddir, args...); err != nil {
			return nil, err
		}
	}

	if w.HubStore, err = smtpsink.Start(ctx, "mailstore."+HubDomain, smtpsink.OnMessage(w.Deliver)); err != nil {
		return nil, err
	}
	storeOpts := []smtpsink.Option{smtpsink.OnMessage(w.Deliver)}
	if cfg.Outside == BounceAfterAccept {
		storeOpts = append(storeOpts, smtpsink.RejectRecipients(w.Directory.Refuse))
	}
	if w.OutsideStore, err = smtpsink.Start(ctx, "mailstore."+OutsideDomain, storeOpts...); err != nil {
		return nil, err
	}
	if cfg.Outside == RejectAtRCPT {
		if w.policy, err = startPolicyServer(ctx, w.Directory); err != nil {
			return nil, err
		}
	}

	// The hub and the outside route to each other: pick both ports, then
	// start both at once.
	for attempt := 1; ; attempt++ {
		hubPort, err := testproc.FreePort(ctx, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		outPort, err := testproc.FreePort(ctx, OutsideIP)
		if err != nil {
			return nil, err
		}
		hc, err := w.hubConfig(hubPort, outPort)
		if err != nil {
			return nil, err
		}
		oc := w.outsideConfig(hubPort, outPort)
		var hubErr, outErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); w.Hub, hubErr = postfix.Start(ctx, hc) }()
		go func() { defer wg.Done(); w.Outside, outErr = postfix.Start(ctx, oc) }()
		wg.Wait()
		if hubErr == nil && outErr == nil {
			break
		}
		err = errors.Join(hubErr, outErr)
		// Someone took a port between the pick and Postfix's bind: try
		// again with others.
		for _, inst := range []**postfix.Instance{&w.Hub, &w.Outside} {
			if *inst != nil {
				_ = (*inst).Stop()
				*inst = nil
			}
		}
		for _, name := range []string{"hub", "outside"} {
			_ = os.RemoveAll(filepath.Join(cfg.Dir, "postfix-"+name))
		}
		if attempt == 3 || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
	return w, nil
}

func (w *World) hubConfig(hubPort, outPort int) (postfix.Config, error) {
	cfg := w.cfg
	c := postfix.Config{
		Dir:        cfg.Dir,
		Name:       "hub",
		SMTPAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(hubPort)),
		MyHostname: "hub." + HubDomain,
		MyDomain:   HubDomain,
		Transports: map[string]string{
			HubDomain:     "smtp:" + w.HubStore.Nexthop(),
			OutsideDomain: "smtp:[" + OutsideIP + "]:" + strconv.Itoa(outPort),
		},
		MainCF: map[string]string{
			// Only the hub itself may relay; the outside MTA is a
			// stranger that may deliver to our domains.
			"mynetworks":            "127.0.0.1/32",
			"relay_domains":         HubDomain,
			"milter_default_action": cfg.MilterDefaultAction,
		},
	}
	if w.Daemon != nil {
		c.Milters = w.Daemon.PostfixSpec
		if cfg.BounceMilter {
			c.NonSMTPDMilters = w.Daemon.PostfixSpec
			c.MainCF["internal_mail_filter_classes"] = "bounce"
		}
	}
	maps.Copy(c.MainCF, fastErrors)
	maps.Copy(c.MainCF, cfg.HubMainCF)
	if len(cfg.Lists) > 0 {
		// Lists are expanded by local(8) from alias_maps; the owner-LIST
		// alias is what makes local(8) set the envelope sender of the
		// expansion to owner-LIST (owner_request_special).
		var b strings.Builder
		for _, name := range sortedKeys(cfg.Lists) {
			fmt.Fprintf(&b, "%s %s\n", name, strings.Join(cfg.Lists[name], ", "))
			fmt.Fprintf(&b, "owner-%s %s@%s\n", name, name, ListDomain)
		}
		// Not below cfg.Dir: Postfix splits table lists at commas and
		// spaces, which test directory names may contain.
		aliasDir, err := os.MkdirTemp("", "lb-aliases-")
		if err != nil {
			return c, err
		}
		w.cleanup = append(w.cleanup, func() { os.RemoveAll(aliasDir) })
		aliases := filepath.Join(aliasDir, "aliases")
		if err := os.WriteFile(aliases, []byte(b.String()), 0o644); err != nil {
			return c, err
		}
		past := time.Now().Add(-time.Minute)
		_ = os.Chtimes(aliases, past, past)
		// The owner-LIST sender local(8) sets is qualified with
		// $myorigin (the hub's hostname): deliver that locally too.
		c.MainCF["mydestination"] = "$myhostname, " + ListDomain
		c.MainCF["alias_maps"] = "texthash:" + aliases
		c.MainCF["local_transport"] = "local"
		c.MasterCF = append(c.MasterCF, "local     unix  -       n       n       -       -       local")
	}
	return c, nil
}

func (w *World) outsideConfig(hubPort, outPort int) postfix.Config {
	hub := "smtp:[127.0.0.1]:" + strconv.Itoa(hubPort)
	c := postfix.Config{
		Dir:        w.cfg.Dir,
		Name:       "outside",
		SMTPAddr:   net.JoinHostPort(OutsideIP, strconv.Itoa(outPort)),
		MyHostname: "mx." + OutsideDomain,
		MyDomain:   OutsideDomain,
		Transports: map[string]string{
			OutsideDomain:   "smtp:" + w.OutsideStore.Nexthop(),
			HubDomain:       hub,
			"." + HubDomain: hub,
		},
		MainCF: map[string]string{
			"smtp_bind_address": OutsideIP,
			"mynetworks":        "127.0.0.0/8", // its own users submit from 127.0.0.1
			"relay_domains":     OutsideDomain,
		},
	}
	maps.Copy(c.MainCF, fastErrors)
	if w.policy != nil {
		c.MainCF["smtpd_recipient_restrictions"] = "check_policy_service " + w.policy.Spec() + ", permit_mynetworks, reject_unauth_destination"
	}
	return c
}

// fastErrors keeps smtpd from slowing down a client that makes many
// errors (a storm's refused recipients over one cached connection): the
// loop should run as fast as the MTAs can carry it.
var fastErrors = map[string]string{
	"smtpd_error_sleep_time":   "0",
	"smtpd_soft_error_limit":   "1000",
	"smtpd_hard_error_limit":   "1000",
	"smtpd_junk_command_limit": "1000",
}

// Submit hands a message to the hub (via "hub") or the outside MTA (via
// "outside") over SMTP and records the submission and its outcome.
func (w *World) Submit(ctx context.Context, by, via, kind, from string, to []string, msg []byte) error {
	addr := w.Hub.SMTPAddr()
	if via == "outside" {
		addr = w.Outside.SMTPAddr()
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := testenv.SendMail(sctx, addr, from, to, msg)
	h := parseHeader(msg)
	w.subMu.Lock()
	w.submissions = append(w.submissions, Submission{
		Time: time.Now(), By: by, Via: via, MessageID: h.Get("Message-Id"), Kind: kind,
		From: from, To: slices.Clone(to), Subject: h.Get("Subject"), Err: err, Data: msg,
	})
	w.subMu.Unlock()
	return err
}

// Submissions returns every submission so far.
func (w *World) Submissions() []Submission {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	return slices.Clone(w.submissions)
}

// Close stops everything; it is idempotent.
func (w *World) Close() error {
	w.closeOnce.Do(func() {
		var errs []error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, inst := range []*postfix.Instance{w.Hub, w.Outside} {
			if inst != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := inst.Stop()
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		w.Agents.Stop()
		for _, s := range []*smtpsink.Sink{w.HubStore, w.OutsideStore} {
			if s != nil {
				errs = append(errs, s.Close())
			}
		}
		if w.policy != nil {
			errs = append(errs, w.policy.Close())
		}
		if w.Daemon != nil {
			errs = append(errs, w.Daemon.Stop())
		}
		for _, f := range w.cleanup {
			f()
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
