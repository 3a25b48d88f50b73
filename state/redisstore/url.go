package redisstore

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The three kinds of URL New accepts, each with its own go-redis client:
//
//	redis://[[USER]:PASSWORD@]HOST:PORT[/DB][?PARAMS]   one server (rediss:// for TLS,
//	                                                   unix:///PATH?db=N for a socket)
//	redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB][?PARAMS]
//	                                                   the master named MASTER, found
//	                                                   through those Sentinels
//	redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][?PARAMS]
//	                                                   a Redis Cluster, found through
//	                                                   those nodes (any of them)
//
// USER and PASSWORD are the data nodes' (the master and its replicas; the
// cluster's nodes). Sentinels that require a password of their own take it
// from the parameters sentinel_username and sentinel_password. PARAMS are
// go-redis's (dial_timeout, read_timeout, write_timeout, pool_size...; a
// duration without a unit is in seconds).

// mode is the kind of deployment a URL names.
type mode int

const (
	modeSingle mode = iota
	modeSentinel
	modeCluster
)

func (m mode) String() string {
	switch m {
	case modeSentinel:
		return "sentinel"
	case modeCluster:
		return "cluster"
	}
	return "single"
}

// Schemes of the URLs of a Sentinel-managed master and of a cluster.
const (
	SentinelScheme = "redis-sentinel"
	ClusterScheme  = "redis-cluster"
)

// CheckURL reports whether New would accept url (for the policy's checks).
func CheckURL(rawURL string) error {
	c, _, _, err := dial(rawURL, DefaultTimeout)
	if err != nil {
		return err
	}
	return c.Close()
}

// client is what the store needs of go-redis's three clients (*redis.Client
// for one server or a Sentinel-managed master, *redis.ClusterClient).
type client interface {
	redis.Cmdable // with Eval and EvalSha: a redis.Scripter
	Close() error
}

var (
	_ client = (*redis.Client)(nil)
	_ client = (*redis.ClusterClient)(nil)
)

// conn is the connection settings New puts on every kind of client unless
// the URL sets them.
type conn struct {
	dial, read, write *time.Duration
	retries, pool     *int
	dialerRetries     *int
	ctxTimeout        *bool
}

func (c conn) defaults(timeout time.Duration) {
	// The URL's parsers leave the timeouts they were not given at zero
	// (go-redis's defaults: 5 s to dial, 3 s to read).
	for _, d := range []*time.Duration{c.dial, c.read, c.write} {
		if *d == 0 {
			*d = timeout
		}
	}
	*c.ctxTimeout = true
	// A hit retried after a timeout may have been counted already: retry
	// only what never reached the server (a pooled connection Redis closed).
	if *c.retries == 0 {
		*c.retries = 1
	}
	// One connection per milter session counting at once, up to a point:
	// waiting for a free connection must not look like an outage.
	if *c.pool == 0 {
		*c.pool = 128
	}
	// A server that refuses connections is down: tell at once, the daemon
	// has its own backoff.
	if *c.dialerRetries == 0 {
		*c.dialerRetries = 1
	}
}

// dial parses url and builds its client (which connects lazily); read is
// the read timeout of one call.
func dial(rawURL string, timeout time.Duration) (c client, m mode, read time.Duration, err error) {
	bad := func(err error) (client, mode, time.Duration, error) {
		return nil, 0, 0, fmt.Errorf("bad Redis URL %q: %w", Redact(rawURL), err)
	}
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case SentinelScheme:
		o, err := parseSentinel(rawURL)
		if err != nil {
			return bad(err)
		}
		conn{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, &o.DialerRetries, &o.ContextTimeoutEnabled}.defaults(timeout)
		return redis.NewFailoverClient(o), modeSentinel, o.ReadTimeout, nil
	case ClusterScheme:
		o, err := parseCluster(rawURL)
		if err != nil {
			return bad(err)
		}
		conn{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, &o.DialerRetries, &o.ContextTimeoutEnabled}.defaults(timeout)
		return redis.NewClusterClient(o), modeCluster, o.ReadTimeout, nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return bad(err)
	}
	conn{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, &o.DialerRetries, &o.ContextTimeoutEnabled}.defaults(timeout)
	return redis.NewClient(o), modeSingle, o.ReadTimeout, nil
}

// multiURL is a URL with a list of hosts, split: url.Parse takes no list
// of IPv6 literals.
type multiURL struct {
	user  *url.Userinfo
	hosts []string
	path  []string // the path's segments
	query url.Values
}

func splitMulti(rawURL, scheme string) (*multiURL, error) {
	rest, ok := strings.CutPrefix(rawURL, scheme+"://")
	if !ok {
		return nil, fmt.Errorf("not a %s:// URL", scheme)
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo, authority = authority[:at+1], authority[at+1:]
	}
	// The hosts replaced by one placeholder, url.Parse reads the rest.
	u, err := url.Parse("x://" + userinfo + "h" + tail)
	if err != nil {
		return nil, err
	}
	m := &multiURL{user: u.User, query: u.Query()}
	for _, h := range strings.Split(authority, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q is not HOST:PORT", h)
		}
		m.hosts = append(m.hosts, net.JoinHostPort(host, port))
	}
	for _, s := range strings.Split(u.Path, "/") {
		if s != "" {
			m.path = append(m.path, s)
		}
	}
	return m, nil
}

// parseSentinel reads redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB][?PARAMS].
func parseSentinel(rawURL string) (*redis.FailoverOptions, error) {
	m, err := splitMulti(rawURL, SentinelScheme)
	if err != nil {
		return nil, err
	}
	if len(m.path) == 0 || len(m.path) > 2 {
		return nil, fmt.Errorf("want /MASTER or /MASTER/DB after the Sentinels")
	}
	db := 0
	if len(m.path) == 2 {
		if db, err = strconv.Atoi(m.path[1]); err != nil || db < 0 {
			return nil, fmt.Errorf("bad database number %q", m.path[1])
		}
	}
	su, sp := m.query.Get("sentinel_username"), m.query.Get("sentinel_password")
	for _, k := range []string{"sentinel_username", "sentinel_password", "master_name", "addr", "db", "username", "password"} {
		if k != "sentinel_username" && k != "sentinel_password" && m.query.Has(k) {
			return nil, fmt.Errorf("parameter %s: put it in the URL itself", k)
		}
		m.query.Del(k)
	}
	// go-redis reads the parameters from a redis:// URL of its own.
	o, err := redis.ParseFailoverURL("redis://" + m.hosts[0] + "?" + m.query.Encode())
	if err != nil {
		return nil, err
	}
	o.MasterName = m.path[0]
	o.SentinelAddrs = m.hosts
	o.DB = db
	o.SentinelUsername, o.SentinelPassword = su, sp
	o.Username, o.Password = "", ""
	if m.user != nil {
		o.Username = m.user.Username()
		o.Password, _ = m.user.Password()
	}
	return o, nil
}

// parseCluster reads redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][?PARAMS].
func parseCluster(rawURL string) (*redis.ClusterOptions, error) {
	m, err := splitMulti(rawURL, ClusterScheme)
	if err != nil {
		return nil, err
	}
	if len(m.path) > 1 || len(m.path) == 1 && m.path[0] != "0" {
		return nil, fmt.Errorf("a cluster has only database 0")
	}
	if m.query.Has("addr") {
		return nil, fmt.Errorf("parameter addr: list the nodes in the URL itself")
	}
	for _, h := range m.hosts[1:] {
		m.query.Add("addr", h)
	}
	u := url.URL{Scheme: "redis", User: m.user, Host: m.hosts[0], RawQuery: m.query.Encode()}
	return redis.ParseClusterURL(u.String())
}
