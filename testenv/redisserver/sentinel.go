package redisserver

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Sentinel is a master, its replicas and three Sentinels watching it, on
// free loopback ports: quorum 2, a master is down after DownAfter without
// answering, and a failover is retried after 3 s.
type Sentinel struct {
	MasterName string
	// Data are the master (first, at start) and its replicas.
	Data      []*Node
	Sentinels []*Node
}

// SentinelOptions configure StartSentinel; the zero value is usable.
type SentinelOptions struct {
	Replicas  int           // 2 when 0
	DownAfter time.Duration // 1 s when 0
}

// MasterName is the name the Sentinels know the master by.
const MasterName = "lbmaster"

// URL is the redis-sentinel:// URL of the master, database db.
func (s *Sentinel) URL(db int) string {
	addrs := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		addrs[i] = n.Addr
	}
	return fmt.Sprintf("redis-sentinel://%s/%s/%d", strings.Join(addrs, ","), s.MasterName, db)
}

// StartSentinel runs the master, its replicas and the Sentinels in dir and
// waits until the replicas are in sync and every Sentinel knows the other
// two and the replicas. On error it stops what it started.
func StartSentinel(ctx context.Context, f Flavor, dir string, opts SentinelOptions) (s *Sentinel, err error) {
	if err := f.Available(); err != nil {
		return nil, err
	}
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	s = &Sentinel{MasterName: MasterName}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	for i := 0; i <= opts.Replicas; i++ {
		port, err := testproc.FreePort(ctx, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		conf := ""
		if i > 0 {
			conf = fmt.Sprintf("replicaof 127.0.0.1 %d\n", s.Data[0].Port)
		}
		n, err := startNode(ctx, f, filepath.Join(dir, "data"+strconv.Itoa(i)), port, conf, false)
		if err != nil {
			return nil, err
		}
		s.Data = append(s.Data, n)
	}
	if err := testproc.Poll(ctx, "the replicas' sync", func(ctx context.Context) error {
		for _, r := range s.Data[1:] {
			if st, err := r.info(ctx, "replication", "master_link_status"); err != nil || st != "up" {
				return fmt.Errorf("replica %s: link %q %v", r.Addr, st, err)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		port, err := testproc.FreePort(ctx, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s 3000\n"+
			"sentinel parallel-syncs %[1]s 2\n", s.MasterName, s.Data[0].Port, opts.DownAfter.Milliseconds())
		n, err := startNode(ctx, f, filepath.Join(dir, "sentinel"+strconv.Itoa(i)), port, conf, true)
		if err != nil {
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, n)
	}
	if err := testproc.Poll(ctx, "the Sentinels to know each other and the replicas", func(ctx context.Context) error {
		for _, n := range s.Sentinels {
			m, err := n.sentinelMaster(ctx, s.MasterName)
			if err != nil {
				return err
			}
			if m["num-other-sentinels"] != "2" || m["num-slaves"] != strconv.Itoa(opts.Replicas) {
				return fmt.Errorf("sentinel %s: %s other sentinels, %s replicas", n.Addr, m["num-other-sentinels"], m["num-slaves"])
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// MustStartSentinel starts a Sentinel deployment for the test, skipping
// it when the flavour is not installed; Cleanup stops every process.
func MustStartSentinel(tb testing.TB, f Flavor, opts SentinelOptions) *Sentinel {
	tb.Helper()
	return mustStart(tb, f.Available(), 60*time.Second,
		func(ctx context.Context, dir string) (*Sentinel, error) { return StartSentinel(ctx, f, dir, opts) },
		func(s *Sentinel) {
			killAll(tb, "data node", s.Data)
			killAll(tb, "sentinel", s.Sentinels)
		})
}

// Stop kills every process.
func (s *Sentinel) Stop() {
	killAll(nil, "", s.Data)
	killAll(nil, "", s.Sentinels)
}

// sentinelMaster is SENTINEL MASTER name, as a map.
func (n *Node) sentinelMaster(ctx context.Context, name string) (map[string]string, error) {
	v, err := n.Do(ctx, "SENTINEL", "MASTER", name)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	switch x := v.(type) {
	case []any:
		for i := 0; i+1 < len(x); i += 2 {
			m[fmt.Sprint(x[i])] = fmt.Sprint(x[i+1])
		}
	case map[any]any:
		for k, v := range x {
			m[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	}
	return m, nil
}

// MasterAddr is the master's address according to a live Sentinel.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, n := range s.Sentinels {
		if !n.Alive() {
			continue
		}
		v, err := n.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil {
			last = err
			continue
		}
		if x, ok := v.([]any); ok && len(x) == 2 {
			return net.JoinHostPort(fmt.Sprint(x[0]), fmt.Sprint(x[1])), nil
		}
		last = fmt.Errorf("sentinel %s answered %v", n.Addr, v)
	}
	return "", last
}

// Master is the node the Sentinels hold for the master.
func (s *Sentinel) Master(ctx context.Context) (*Node, error) {
	addr, err := s.MasterAddr(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range s.Data {
		if n.Addr == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("the master %s is none of the data nodes", addr)
}

// WaitFailover waits until every live Sentinel names a master other than
// old and that node says it is a master.
func (s *Sentinel) WaitFailover(ctx context.Context, old string) (*Node, error) {
	var m *Node
	err := testproc.Poll(ctx, "a failover from "+old, func(ctx context.Context) error {
		for _, n := range s.Sentinels {
			if !n.Alive() {
				continue
			}
			v, err := n.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
			if err != nil {
				return err
			}
			if x, ok := v.([]any); !ok || len(x) != 2 || net.JoinHostPort(fmt.Sprint(x[0]), fmt.Sprint(x[1])) == old {
				return fmt.Errorf("sentinel %s still names %v", n.Addr, v)
			}
		}
		var err error
		if m, err = s.Master(ctx); err != nil {
			return err
		}
		if role, err := m.info(ctx, "replication", "role"); err != nil || role != "master" {
			return fmt.Errorf("new master %s: role %q %v", m.Addr, role, err)
		}
		return nil
	})
	return m, err
}
