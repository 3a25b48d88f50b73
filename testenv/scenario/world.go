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
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
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
	// Hubs is how many hubs the organization runs. 0 or 1: one hub named
	// "hub" on 127.0.0.1. More (at most MaxHubs): a fleet, hub1..hubN on
	// 127.0.0.11, 127.0.0.12..., each with its own loopbreaker; the
	// outside spreads the mail it sends the organization over them at
	// random, and every hub has myorigin = ListDomain, so that the list's
	// return path is one address whichever hub expands the list.
	Hubs int
	// RedisCluster starts a Redis Cluster (three masters, three
	// replicas) and has every loopbreaker share its counts and blocks
	// there (-redis redis-cluster://...).
	RedisCluster bool
}

// MaxHubs is the largest fleet a World runs (127.0.0.11 to 127.0.0.19).
const MaxHubs = 9

// HubName is the name of the i-th hub (from 0) of a world of n hubs:
// "hub" when there is one, else "hub1", "hub2"...
func HubName(i, n int) string {
	if n <= 1 {
		return "hub"
	}
	return "hub" + strconv.Itoa(i+1)
}

// hubIP is the loopback address of the i-th hub (from 0) of n.
func hubIP(i, n int) string {
	if n <= 1 {
		return "127.0.0.1"
	}
	return "127.0.0." + strconv.Itoa(11+i)
}

// World is a running hub (or fleet of hubs), outside MTA, mailstores and
// (optionally) loopbreaker beside each hub, on a Redis Cluster or not.
type World struct {
	cfg WorldConfig

	// Hub is the organization's Postfix, with loopbreaker as milter: the
	// first of Hubs.
	Hub *postfix.Instance
	// Hubs are all the organization's Postfix instances (one, or a fleet).
	Hubs []*postfix.Instance
	// Outside is the other organization's Postfix on OutsideIP.
	Outside *postfix.Instance
	// Daemon is loopbreaker, nil when the run has none: the first of
	// Daemons.
	Daemon *testenv.Daemon
	// Daemons are the hubs' loopbreakers, Daemons[i] beside Hubs[i]; nil
	// when the run has none.
	Daemons []*testenv.Daemon
	// Cluster is the Redis Cluster the daemons share, nil without one.
	Cluster *redisserver.Cluster
	// HubStore receives the hub users' mail (and the quarantine mailbox).
	HubStore *smtpsink.Sink
	// OutsideStore receives the outside users' mail.
	OutsideStore *smtpsink.Sink
	// Directory knows the outside users.
	Directory *Directory

	policy  *policyServer
	cleanup []func()
	// faults breaks a fleet on the way (fleet.go); nil in other runs.
	faults *fleetFaults

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
	if cfg.Hubs < 1 {
		cfg.Hubs = 1
	}
	w := &World{cfg: cfg}
	w.Agents = NewAgents(cfg.Budget, w.Submit)
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	w.Directory = newDirectory(OutsideDomain, cfg.OutsideUsers, cfg.Budget)

	if cfg.Hubs > MaxHubs {
		return nil, fmt.Errorf("scenario: %d hubs; at most %d", cfg.Hubs, MaxHubs)
	}
	if cfg.RedisCluster {
		rdir := filepath.Join(cfg.Dir, "redis")
		if w.Cluster, err = redisserver.StartCluster(ctx, redisserver.Redis, rdir, redisserver.ClusterOptions{}); err != nil {
			return nil, fmt.Errorf("scenario: starting the Redis Cluster: %w", err)
		}
	}
	if cfg.DaemonBin != "" {
		if err := w.startDaemons(ctx); err != nil {
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

	// The hubs and the outside route to each other: pick every port, then
	// start them all at once.
	for attempt := 1; ; attempt++ {
		hubPorts := make([]int, cfg.Hubs)
		for i := range hubPorts {
			if hubPorts[i], err = testproc.FreePort(ctx, hubIP(i, cfg.Hubs)); err != nil {
				return nil, err
			}
		}
		outPort, err := testproc.FreePort(ctx, OutsideIP)
		if err != nil {
			return nil, err
		}
		configs := make([]postfix.Config, 0, cfg.Hubs+1)
		for i := range hubPorts {
			hc, err := w.hubConfig(i, hubPorts[i], outPort)
			if err != nil {
				return nil, err
			}
			configs = append(configs, hc)
		}
		configs = append(configs, w.outsideConfig(hubPorts, outPort))
		insts := make([]*postfix.Instance, len(configs))
		errs := make([]error, len(configs))
		var wg sync.WaitGroup
		for i, c := range configs {
			wg.Go(func() { insts[i], errs[i] = postfix.Start(ctx, c) })
		}
		wg.Wait()
		if err = errors.Join(errs...); err == nil {
			w.Hubs, w.Outside = insts[:cfg.Hubs], insts[cfg.Hubs]
			w.Hub = w.Hubs[0]
			break
		}
		// Someone took a port between the pick and Postfix's bind: try
		// again with others.
		for i, inst := range insts {
			if inst != nil {
				_ = inst.Stop()
			}
			_ = os.RemoveAll(filepath.Join(cfg.Dir, "postfix-"+configs[i].Name))
		}
		if attempt == 3 || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
	return w, nil
}

// startDaemons starts one loopbreaker per hub, all sharing the cluster
// when there is one.
func (w *World) startDaemons(ctx context.Context) error {
	cfg := w.cfg
	args := []string{
		"-local-domains", HubDomain + ",." + HubDomain,
		"-quarantine-mailbox", Quarantine,
		"-log-format", "json", "-log-level", "debug",
	}
	if cfg.Policy != "" {
		p := filepath.Join(cfg.Dir, "policy.toml")
		if err := os.WriteFile(p, []byte(cfg.Policy), 0o644); err != nil {
			return fmt.Errorf("scenario: writing the policy: %w", err)
		}
		args = append(args, "-policy", p)
	}
	if w.Cluster != nil {
		args = append(args, "-redis", w.Cluster.URL())
	}
	w.Daemons = make([]*testenv.Daemon, cfg.Hubs)
	errs := make([]error, cfg.Hubs)
	var wg sync.WaitGroup
	for i := range cfg.Hubs {
		name := HubName(i, cfg.Hubs)
		ddir := filepath.Join(cfg.Dir, "loopbreaker")
		a := args
		if cfg.Hubs > 1 {
			ddir += "-" + name
			// The MTA's name in the fleet's audit trail.
			a = append(slices.Clone(args), "-name", name)
		}
		wg.Go(func() {
			if errs[i] = os.MkdirAll(ddir, 0o755); errs[i] == nil {
				w.Daemons[i], errs[i] = testenv.StartDaemon(ctx, cfg.DaemonBin, ddir, a...)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		w.Daemons = slices.DeleteFunc(w.Daemons, func(d *testenv.Daemon) bool { return d == nil })
		return fmt.Errorf("scenario: starting loopbreaker: %w", err)
	}
	w.Daemon = w.Daemons[0]
	return nil
}

// hubConfig is the configuration of the i-th hub (from 0).
func (w *World) hubConfig(i, hubPort, outPort int) (postfix.Config, error) {
	cfg := w.cfg
	name := HubName(i, cfg.Hubs)
	c := postfix.Config{
		Dir:        cfg.Dir,
		Name:       name,
		SMTPAddr:   net.JoinHostPort(hubIP(i, cfg.Hubs), strconv.Itoa(hubPort)),
		MyHostname: name + "." + HubDomain,
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
	if w.Daemons != nil {
		d := w.Daemons[i]
		c.Milters = d.PostfixSpec
		if cfg.BounceMilter {
			c.NonSMTPDMilters = d.PostfixSpec
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
		if cfg.Hubs > 1 {
			// Whichever hub expands the list, its return path is
			// owner-LIST@ListDomain, which every hub delivers.
			c.MainCF["myorigin"] = ListDomain
		}
		c.MasterCF = append(c.MasterCF, "local     unix  -       n       n       -       -       local")
	}
	return c, nil
}

// outsideConfig is the outside MTA's configuration. With one hub it routes
// the organization's domains to it; with a fleet it spreads them over the
// hubs at random: relayhost (the first hub) for those domains, overridden
// for every sender by sender_dependent_relayhost_maps =
// pipemap:{randmap:{r0, r1...}, inline:{{r0=HUB1 HUB2...}, ...}}, which
// picks one rotation of the hub list per delivery (a relayhost may list
// several destinations, tried in order, since Postfix 3.5).
func (w *World) outsideConfig(hubPorts []int, outPort int) postfix.Config {
	hub := "smtp:[127.0.0.1]:" + strconv.Itoa(hubPorts[0])
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
	if len(hubPorts) > 1 {
		delete(c.Transports, HubDomain)
		delete(c.Transports, "."+HubDomain)
		hosts := make([]string, len(hubPorts))
		for i, p := range hubPorts {
			hosts[i] = "[" + hubIP(i, len(hubPorts)) + "]:" + strconv.Itoa(p)
		}
		c.RelayHost = hosts[0]
		c.MainCF["sender_dependent_relayhost_maps"] = spreadMap(hosts)
	}
	maps.Copy(c.MainCF, fastErrors)
	if w.policy != nil {
		c.MainCF["smtpd_recipient_restrictions"] = "check_policy_service " + w.policy.Spec() + ", permit_mynetworks, reject_unauth_destination"
	}
	return c
}

// spreadMap is a lookup table that answers any key (any sender) with the
// list of hosts rotated to start at a random one:
// pipemap:{randmap:{r0, r1...}, inline:{{r0=H0 H1...}, {r1=H1 H2... H0}...}}.
// As a relayhost the list is tried in order (Postfix 3.5 and later): when
// the first hub says 4xx (its milter is down) the smtp client tries the
// next in the same delivery. A random single host would not do: a retry
// of a lone deferred message resolves to the same host again (qmgr caches
// the last resolved address), so it would stay at the dead hub.
func spreadMap(hosts []string) string {
	picks := make([]string, len(hosts))
	rotations := make([]string, len(hosts))
	for i := range hosts {
		picks[i] = "r" + strconv.Itoa(i)
		rotations[i] = "{" + picks[i] + "=" + strings.Join(append(slices.Clone(hosts[i:]), hosts[:i]...), " ") + "}"
	}
	return "pipemap:{randmap:{" + strings.Join(picks, ", ") + "}, inline:{" + strings.Join(rotations, ", ") + "}}"
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

// Submit hands a message to the first hub (via "hub"), a hub by its name
// ("hub3") or the outside MTA (via "outside") over SMTP and records the
// submission, under the MTA's name, and its outcome.
func (w *World) Submit(ctx context.Context, by, via, kind, from string, to []string, msg []byte) error {
	inst := w.instance(via)
	if inst == nil {
		return fmt.Errorf("scenario: no MTA named %q", via)
	}
	addr, via := inst.SMTPAddr(), inst.Name()
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

// instance is the MTA named via: "hub" (the first hub), a hub's name, or
// "outside"; nil when there is none.
func (w *World) instance(via string) *postfix.Instance {
	if via == "outside" {
		return w.Outside
	}
	if via == "hub" {
		return w.Hub
	}
	for _, h := range w.Hubs {
		if h.Name() == via {
			return h
		}
	}
	return nil
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
		for _, inst := range append(slices.Clone(w.Hubs), w.Outside) {
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
		for _, d := range w.Daemons {
			if d != nil {
				errs = append(errs, d.Stop())
			}
		}
		if w.Cluster != nil {
			w.Cluster.Stop()
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
