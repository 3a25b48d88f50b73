package redisstore

import (
	"strings"
	"testing"
	"time"
)

func TestSentinelURL(t *testing.T) {
	o, err := parseSentinel("redis-sentinel://u:p%2Fw@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/mymaster/2?dial_timeout=2s&read_timeout=1&sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	if o.MasterName != "mymaster" || o.DB != 2 || len(o.SentinelAddrs) != 3 || o.SentinelAddrs[2] != "[::1]:26381" ||
		o.Username != "u" || o.Password != "p/w" || o.SentinelPassword != "sp" || o.DialTimeout != 2*time.Second || o.ReadTimeout != time.Second {
		t.Fatalf("%+v", o)
	}
	o, err = parseSentinel("redis-sentinel://h:1/m")
	if err != nil || o.DB != 0 || o.MasterName != "m" || o.Password != "" {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range []string{
		"redis-sentinel://h:1", "redis-sentinel://h:1/", "redis-sentinel://h:1/m/x", "redis-sentinel://h/m",
		"redis-sentinel://h:1/m/0/1", "redis-sentinel://h:1/m?bogus=1", "redis-sentinel://h:1/m?master_name=x",
	} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New accepted %q", bad)
		}
	}
}

func TestClusterURL(t *testing.T) {
	o, err := parseCluster("redis-cluster://:secret@127.0.0.1:7000,127.0.0.1:7001,[::1]:7002?write_timeout=4s")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Addrs) != 3 || o.Addrs[2] != "[::1]:7002" || o.Password != "secret" || o.WriteTimeout != 4*time.Second {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"redis-cluster://h:1/3", "redis-cluster://h", "redis-cluster://h:1?addr=h:2", "redis-cluster://h:1,/"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New accepted %q", bad)
		}
	}
	r, err := New("redis-cluster://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.mode != modeCluster || len(r.buckets) != clusterBuckets || r.timeout != DefaultTimeout {
		t.Fatalf("mode %v, %d buckets, timeout %s", r.mode, len(r.buckets), r.timeout)
	}
	if _, err := New("redis-cluster://127.0.0.1:1", Options{Prefix: "a{b}:"}); err == nil {
		t.Error("New accepted a prefix with braces for a cluster")
	}
	for in, want := range map[string]string{
		"redis-sentinel://u:pw@h:1,h:2/m":                              "redis-sentinel://***@h:1,h:2/m",
		"redis-sentinel://h:1/m/0?sentinel_password=x&dial_timeout=1s": "redis-sentinel://h:1/m/0?sentinel_password=***&dial_timeout=1s",
		"redis-cluster://:p@h:1,h:2?read_timeout=2":                    "redis-cluster://***@h:1,h:2?read_timeout=2",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClusterLayout: each bucket's tag hashes into its own range of slots,
// and a (rule, key)'s keys and its bucket's indexes share one slot.
func TestClusterLayout(t *testing.T) {
	if crc16("123456789") != 0x31c3 {
		t.Fatalf("crc16 = %#x, want 0x31c3 (CRC-16/XMODEM)", crc16("123456789"))
	}
	r, err := New("redis-cluster://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, b := range r.buckets {
		s := int(slot(b.keys))
		if s < i*16384/clusterBuckets || s >= (i+1)*16384/clusterBuckets || slot(b.blocks) != slot(b.keys) || slot(b.spans) != slot(b.keys) {
			t.Fatalf("bucket %d: %+v in slot %d", i, b, s)
		}
	}
	for _, id := range []string{"fwd\x00alice", "fwd\x00{bob}", "x\x00}", "ndr\x00{"} {
		b := r.bucketOf(id)
		for _, k := range []string{r.k("w", id), r.k("b", id), r.k("s", id)} {
			if slot(k) != slot(b.keys) {
				t.Errorf("%q in slot %d, its bucket's index in %d", k, slot(k), slot(b.keys))
			}
		}
	}
	single, _ := New("redis://127.0.0.1:1/0", Options{})
	defer single.Close()
	if k := single.k("w", "fwd\x00a"); k != "loopbreaker:w:fwd\x00a" || single.keysKey() != "loopbreaker:keys" {
		t.Fatalf("single server layout changed: %q %q", k, single.keysKey())
	}
}

// slot is Redis Cluster's slot of key (its hash tag's when it has one).
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}
