package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// Directory is the outside organization's user database: it knows which
// outside.example users exist. An unknown user is refused (and the refusal
// becomes an NDR) while the loop budget lasts; after that the outside takes
// the message into a catch-all mailbox, which ends the loop and is counted
// ("absorbed").
type Directory struct {
	domain string
	known  map[string]bool
	budget *Budget

	mu       sync.Mutex
	refused  int
	absorbed int
}

func newDirectory(domain string, users []string, budget *Budget) *Directory {
	d := &Directory{domain: domain, known: map[string]bool{}, budget: budget}
	for _, u := range users {
		d.known[strings.ToLower(u)] = true
	}
	return d
}

// Refuse reports whether mail to addr is to be refused as "user unknown".
// Addresses outside the directory's domain are not its business (false).
func (d *Directory) Refuse(addr string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(address.Path(addr)), "@")
	if !ok || domain != d.domain || d.known[local] {
		return false
	}
	if d.budget.Take(StepNDR) {
		d.mu.Lock()
		d.refused++
		d.mu.Unlock()
		return true
	}
	d.mu.Lock()
	d.absorbed++
	d.mu.Unlock()
	return false
}

// Counts returns how many deliveries to unknown users were refused and how
// many were taken into the catch-all once the budget was spent.
func (d *Directory) Counts() (refused, absorbed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused, d.absorbed
}

// policyServer answers Postfix's policy delegation protocol
// (check_policy_service) from the Directory: "REJECT User unknown" for the
// users the outside does not have.
type policyServer struct {
	ln   net.Listener
	dir  *Directory
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]bool
}

func startPolicyServer(ctx context.Context, dir *Directory) (*policyServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("policy server: %w", err)
	}
	p := &policyServer{ln: ln, dir: dir, conn: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Spec is the address as check_policy_service takes it.
func (p *policyServer) Spec() string { return "inet:" + p.ln.Addr().String() }

func (p *policyServer) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conn[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
			p.mu.Lock()
			delete(p.conn, c)
			p.mu.Unlock()
			c.Close()
		}()
	}
}

func (p *policyServer) handle(c net.Conn) {
	r := bufio.NewReader(c)
	attrs := map[string]string{}
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			k, v, _ := strings.Cut(line, "=")
			attrs[k] = v
			continue
		}
		action := "DUNNO"
		if attrs["protocol_state"] == "RCPT" && p.dir.Refuse(attrs["recipient"]) {
			action = "550 5.1.1 User unknown"
		}
		if _, err := fmt.Fprintf(c, "action=%s\n\n", action); err != nil {
			return
		}
		attrs = map[string]string{}
	}
}

func (p *policyServer) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conn {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
