package redisserver

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Cluster is a Redis Cluster of three masters with one replica each, on
// free loopback ports below 55536 (a node's bus listens on port+10000),
// created by the flavour's CLI (--cluster create --cluster-replicas 1);
// a node is failing after NodeTimeout without answering.
type Cluster struct {
	Nodes []*Node
}

// ClusterOptions configure StartCluster; the zero value is usable.
type ClusterOptions struct {
	NodeTimeout time.Duration // 1 s when 0
}

// URL is the redis-cluster:// URL of the cluster (every node).
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// StartCluster runs six nodes in dir, creates the cluster and waits until
// every node says cluster_state:ok and every master has an online replica.
// On error it stops what it started.
func StartCluster(ctx context.Context, f Flavor, dir string, opts ClusterOptions) (c *Cluster, err error) {
	if err := f.Available(); err != nil {
		return nil, err
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = time.Second
	}
	c = &Cluster{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	conf := fmt.Sprintf("cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout %d\n"+
		"cluster-replica-validity-factor 0\n", opts.NodeTimeout.Milliseconds())
	for i := 0; i < 6; i++ {
		port, err := testproc.FreePortWithPeer(ctx, "127.0.0.1", 10000)
		if err != nil {
			return nil, err
		}
		n, err := startNode(ctx, f, filepath.Join(dir, "node"+strconv.Itoa(i)), port, conf, false)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.CommandContext(ctx, f.CLI, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --cluster create: %w\n%s", f.CLI, err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// MustStartCluster starts a cluster for the test, skipping it when the
// flavour is not installed; Cleanup stops every node.
func MustStartCluster(tb testing.TB, f Flavor, opts ClusterOptions) *Cluster {
	tb.Helper()
	return mustStart(tb, f.Available(), 60*time.Second,
		func(ctx context.Context, dir string) (*Cluster, error) { return StartCluster(ctx, f, dir, opts) },
		func(c *Cluster) { killAll(tb, "cluster node", c.Nodes) })
}

// Stop kills every node.
func (c *Cluster) Stop() { killAll(nil, "", c.Nodes) }

// Node is the node at addr, or nil.
func (c *Cluster) Node(addr string) *Node {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr, MasterID string
	Master, Failed     bool
	Slots              []string // "0-5460"...
}

// Topology is CLUSTER NODES as a live node sees it.
func (c *Cluster) Topology(ctx context.Context) ([]ClusterNode, error) {
	var last error
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		v, err := n.Do(ctx, "CLUSTER", "NODES")
		if err != nil {
			last = err
			continue
		}
		var out []ClusterNode
		for _, line := range strings.Split(strings.TrimSpace(fmt.Sprint(v)), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			flags := "," + f[2] + ","
			out = append(out, ClusterNode{ID: f[0], Addr: addr, MasterID: f[3],
				Master: strings.Contains(flags, ",master,"), Failed: strings.Contains(flags, ",fail,") || strings.Contains(flags, ",fail?,"),
				Slots: f[8:]})
		}
		return out, nil
	}
	return nil, fmt.Errorf("no live node answered CLUSTER NODES: %v", last)
}

// Masters are the live masters that serve slots.
func (c *Cluster) Masters(ctx context.Context) ([]*Node, error) {
	t, err := c.Topology(ctx)
	if err != nil {
		return nil, err
	}
	var ms []*Node
	for _, cn := range t {
		if n := c.Node(cn.Addr); cn.Master && !cn.Failed && len(cn.Slots) > 0 && n != nil && n.Alive() {
			ms = append(ms, n)
		}
	}
	return ms, nil
}

// WaitHealthy waits until every live node says cluster_state:ok, sees
// three masters serving slots and, unless a master died, each with an
// online replica (so that a master killed next has its writes replicated).
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return testproc.Poll(ctx, "a healthy cluster", func(ctx context.Context) error {
		live := 0
		for _, n := range c.Nodes {
			if !n.Alive() {
				continue
			}
			live++
			if err := n.clusterOK(ctx); err != nil {
				return err
			}
		}
		ms, err := c.Masters(ctx)
		if err != nil {
			return err
		}
		if len(ms) != 3 {
			return fmt.Errorf("%d masters serve slots", len(ms))
		}
		if live < 6 {
			return nil
		}
		for _, m := range ms {
			if n, err := m.info(ctx, "replication", "connected_slaves"); err != nil || n != "1" {
				return fmt.Errorf("master %s: %q replicas %v", m.Addr, n, err)
			}
			if st, err := m.info(ctx, "replication", "slave0"); err != nil || !strings.Contains(st, "state=online") {
				return fmt.Errorf("master %s: replica %q %v", m.Addr, st, err)
			}
		}
		return nil
	})
}

// WaitFailover waits until the replica of the dead master killed serves
// its slots and the cluster is healthy again.
func (c *Cluster) WaitFailover(ctx context.Context, killed *Node) error {
	return testproc.Poll(ctx, "a failover from "+killed.Addr, func(ctx context.Context) error {
		ms, err := c.Masters(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m == killed {
				return fmt.Errorf("%s still a master", killed.Addr)
			}
		}
		for _, n := range c.Nodes {
			if n.Alive() {
				if err := n.clusterOK(ctx); err != nil {
					return err
				}
			}
		}
		if len(ms) != 3 {
			return fmt.Errorf("%d masters serve slots", len(ms))
		}
		return nil
	})
}

// clusterOK checks that the node says cluster_state:ok.
func (n *Node) clusterOK(ctx context.Context) error {
	v, err := n.Do(ctx, "CLUSTER", "INFO")
	if err != nil {
		return err
	}
	if !strings.Contains(fmt.Sprint(v), "cluster_state:ok") {
		return fmt.Errorf("node %s: cluster_state not ok", n.Addr)
	}
	return nil
}
