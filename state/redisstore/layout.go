package redisstore

import (
	"hash/fnv"
	"strconv"
)

// The key layout (see the package's comment for what each key holds).
//
// On one server and behind Sentinel (one master holds everything) there is
// one bucket and no hash tag: PREFIX w:ID, PREFIX b:ID, PREFIX s:ID and the
// indexes PREFIX blocks, PREFIX keys, PREFIX spans, as before the cluster
// support.
//
// In a cluster a Lua script may only touch keys of one hash slot, and a hit
// touches the (rule, key)'s window, block and samples and the indexes that
// list them. So the IDs are spread over clusterBuckets buckets, each with
// its own indexes, and every key of a bucket carries the bucket's hash tag:
//
//	PREFIX {TAG}w:ID  PREFIX {TAG}b:ID  PREFIX {TAG}s:ID
//	PREFIX {TAG}blocks  PREFIX {TAG}keys  PREFIX {TAG}spans
//
// where the bucket of an ID is FNV-1a(ID) mod clusterBuckets and TAG is
// the bucket's tag ("lb" BUCKET "." N, chosen so that bucket i hashes into
// the i-th of clusterBuckets equal ranges of the 16384 slots: the buckets
// spread evenly over the masters, which redis-cli gives contiguous slot
// ranges). A hit stays one script in one slot, so the limit is exact under
// any concurrency; listing (Blocks, Top, Tracked, Sweep) reads the indexes
// of every bucket, pipelined (one round trip per master).
//
// All daemons sharing a cluster must agree on clusterBuckets: it is part of
// the layout.
const clusterBuckets = 64

// bucket is one set of indexes and the hash tag of its keys ("" when the
// deployment has one bucket and no tags).
type bucket struct {
	tag                 string // "{lb7.123}" or ""
	blocks, keys, spans string
}

// newBuckets builds the buckets of a deployment.
func newBuckets(prefix string, m mode) []bucket {
	n := 1
	if m == modeCluster {
		n = clusterBuckets
	}
	bs := make([]bucket, n)
	for i := range bs {
		tag := ""
		if m == modeCluster {
			tag = "{" + slotTag(i, n) + "}"
		}
		p := prefix + tag
		bs[i] = bucket{tag: tag, blocks: p + "blocks", keys: p + "keys", spans: p + "spans"}
	}
	return bs
}

// slotTag is a hash tag whose slot lies in the i-th of n equal ranges of
// the 16384 slots.
func slotTag(i, n int) string {
	lo, hi := i*16384/n, (i+1)*16384/n
	for j := 0; ; j++ {
		t := "lb" + strconv.Itoa(i) + "." + strconv.Itoa(j)
		if s := int(crc16(t) % 16384); s >= lo && s < hi {
			return t
		}
	}
}

// bucketOf is the bucket that holds id.
func (r *Redis) bucketOf(id string) *bucket {
	if len(r.buckets) == 1 {
		return &r.buckets[0]
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return &r.buckets[h.Sum32()%uint32(len(r.buckets))]
}

// k is the key of one kind (w, b, s) of id: PREFIX [{TAG}]KIND:ID.
func (r *Redis) k(kind, id string) string {
	return r.prefix + r.bucketOf(id).tag + kind + ":" + id
}

// The first bucket's indexes (the only ones outside a cluster).
func (r *Redis) blocksKey() string { return r.buckets[0].blocks }
func (r *Redis) keysKey() string   { return r.buckets[0].keys }
func (r *Redis) spansKey() string  { return r.buckets[0].spans }

// crc16 is Redis Cluster's key hash (CRC-16/XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
