package classify

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// tally counts the cases of one group (a form, a language, a corpus
// class) and how many of them the classifier got right.
type tally struct{ n, right int }

// tallies are the tallies of a measurement by group.
type tallies map[string]*tally

// add counts one case of group key, right or not.
func (ts tallies) add(key string, right bool) {
	tl := ts[key]
	if tl == nil {
		tl = &tally{}
		ts[key] = tl
	}
	tl.n++
	if right {
		tl.right++
	}
}

// total is the sum over every group.
func (ts tallies) total() tally {
	var all tally
	for _, tl := range ts {
		all.n += tl.n
		all.right += tl.right
	}
	return all
}

// write writes a line per group, in the groups' order: cases, right,
// recall.
func (ts tallies) write(b *strings.Builder) {
	keys := make([]string, 0, len(ts))
	for k := range ts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ts[k].line(b, k)
	}
}

// line writes the tally's line under name.
func (tl tally) line(b *strings.Builder, name string) {
	fmt.Fprintf(b, "  %-32s %5d %5d %6.1f%%\n", name, tl.n, tl.right, 100*float64(tl.right)/float64(tl.n))
}

// logFirst logs the first most lines of misses, sorted, and how many more
// there were.
func logFirst(t *testing.T, misses []string, most int) {
	t.Helper()
	misses = slices.Sorted(slices.Values(misses))
	for i, m := range misses {
		if i >= most {
			t.Logf("... and %d more", len(misses)-i)
			return
		}
		t.Log(m)
	}
}
