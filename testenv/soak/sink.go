package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Fates a message can meet at the sink.
const (
	fateNone uint8 = iota
	fateDelivered
	fateQuarantined // redirected to the quarantine mailbox
)

// countingSink is an SMTP server standing for every next hop (the outside
// and the local mailbox store): it keeps no message, only the fate of each
// sequence number (the X-Soak-Seq header) and the duplicates, so that half a
// million messages cost a few hundred kilobytes.
type countingSink struct {
	srv        *smtp.Server
	ln         net.Listener
	quarantine string

	mu         sync.Mutex
	fates      []uint8
	duplicates int
	unknown    int // messages without a readable X-Soak-Seq
	total      int
	baseline   int // messages of the Postfix-alone measurement
}

// baselineSeq is where the sequence numbers of the Postfix-alone
// measurement start: the sink counts them apart.
const baselineSeq = 1 << 30

func startSink(ctx context.Context, quarantine string) (*countingSink, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &countingSink{ln: ln, quarantine: quarantine}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return s, nil
}

func (s *countingSink) Nexthop() string {
	return "[127.0.0.1]:" + strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
}

func (s *countingSink) Close() error { return s.srv.Close() }

func (s *countingSink) record(seq int, fate uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if seq < 0 {
		s.unknown++
		return
	}
	if seq >= baselineSeq {
		s.baseline++
		return
	}
	for len(s.fates) <= seq {
		s.fates = append(s.fates, make([]uint8, max(1024, len(s.fates)))...)
	}
	if s.fates[seq] != fateNone {
		s.duplicates++
		return
	}
	s.fates[seq] = fate
}

// fate returns what became of message seq at the sink.
func (s *countingSink) fate(seq int) uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < len(s.fates) {
		return s.fates[seq]
	}
	return fateNone
}

func (s *countingSink) counts() (total, duplicates, unknown int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.duplicates, s.unknown
}

type sinkSession struct {
	sink *countingSink
	to   []string
}

func (ss *sinkSession) Reset()                               { ss.to = nil }
func (ss *sinkSession) Logout() error                        { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { ss.to = nil; return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	seq := -1
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		l := strings.TrimRight(line, "\r\n")
		if l == "" || err != nil {
			break
		}
		if v, ok := strings.CutPrefix(l, SeqHeader+": "); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				seq = n
			}
		}
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	fate := fateDelivered
	for _, to := range ss.to {
		if strings.EqualFold(to, ss.sink.quarantine) {
			fate = fateQuarantined
		}
	}
	ss.sink.record(seq, fate)
	return nil
}
