package soak

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
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
	*smtpsink.Sink
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
	s := &countingSink{quarantine: quarantine}
	sink, err := smtpsink.Start(ctx, "sink.test", smtpsink.Discard(), smtpsink.OnMessage(s.count))
	if err != nil {
		return nil, err
	}
	s.Sink = sink
	return s, nil
}

// count records the fate of a message the sink accepted.
func (s *countingSink) count(m smtpsink.Message) {
	seq := -1
	if n, err := strconv.Atoi(strings.TrimSpace(m.Header.Get(SeqHeader))); err == nil {
		seq = n
	}
	fate := fateDelivered
	for _, to := range m.To {
		if strings.EqualFold(to, s.quarantine) {
			fate = fateQuarantined
		}
	}
	s.record(seq, fate)
}

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
