package classify

import "sort"

// matcher is an Aho-Corasick automaton compiled into a dense DFA over byte
// classes. It is built once at package initialization from the phrase tables
// and never written afterwards, so one matcher is shared by every goroutine.
//
// The input is fed one byte at a time (see textScan), which lets the
// text scanner fold case and collapse white space on the fly without copying
// the body.
type matcher struct {
	class  [256]uint8 // byte -> byte class; 0 is "no pattern has this byte"
	nclass int
	// next maps state*nclass + class to the next state; acceptFlag is set on
	// states where a pattern ends, so the scan loop tests one bit.
	next     []uint16
	out      []int32 // state -> first index into outList, -1 for none
	outList  []outEntry
	patterns []string
}

type outEntry struct {
	pattern int32 // index into the pattern list
	next    int32 // next entry for the same state, -1 at the end
}

// acceptFlag marks a transition into a state where a pattern ends.
const acceptFlag = 1 << 15

// newMatcher compiles the lower-case patterns. It panics on more than 32767
// states, which would be a programming error in the phrase tables.
func newMatcher(patterns []string) *matcher {
	m := &matcher{patterns: patterns}
	// Byte classes: every byte that occurs in a pattern gets its own class.
	var used [256]bool
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			used[p[i]] = true
		}
	}
	m.nclass = 1
	for b := 0; b < 256; b++ {
		if used[b] {
			m.class[b] = uint8(m.nclass)
			m.nclass++
		}
	}
	if m.nclass > 256 {
		panic("classify: too many byte classes")
	}
	// Trie.
	type node struct {
		child map[uint8]int
		fail  int
		outs  []int32
	}
	nodes := []node{{child: map[uint8]int{}}}
	for pi, p := range patterns {
		s := 0
		for i := 0; i < len(p); i++ {
			c := m.class[p[i]]
			n, ok := nodes[s].child[c]
			if !ok {
				nodes = append(nodes, node{child: map[uint8]int{}})
				n = len(nodes) - 1
				nodes[s].child[c] = n
			}
			s = n
		}
		nodes[s].outs = append(nodes[s].outs, int32(pi))
	}
	if len(nodes) >= acceptFlag {
		panic("classify: phrase automaton too large")
	}
	// Breadth-first failure links and the dense transition table.
	m.next = make([]uint16, len(nodes)*m.nclass)
	queue := make([]int, 0, len(nodes))
	for c := 1; c < m.nclass; c++ {
		if n, ok := nodes[0].child[uint8(c)]; ok {
			nodes[n].fail = 0
			m.next[c] = uint16(n)
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		// Inherit outputs of the failure state.
		nodes[s].outs = append(nodes[s].outs, nodes[nodes[s].fail].outs...)
		for c := 1; c < m.nclass; c++ {
			if n, ok := nodes[s].child[uint8(c)]; ok {
				nodes[n].fail = int(m.next[nodes[s].fail*m.nclass+c])
				m.next[s*m.nclass+c] = uint16(n)
				queue = append(queue, n)
			} else {
				m.next[s*m.nclass+c] = m.next[nodes[s].fail*m.nclass+c]
			}
		}
	}
	// Flag the transitions into accepting states.
	for i, n := range m.next {
		if len(nodes[n].outs) > 0 {
			m.next[i] = n | acceptFlag
		}
	}
	m.out = make([]int32, len(nodes))
	for s := range nodes {
		m.out[s] = -1
		outs := nodes[s].outs
		sort.Slice(outs, func(i, j int) bool { return outs[i] < outs[j] })
		for i := len(outs) - 1; i >= 0; i-- {
			if i+1 < len(outs) && outs[i] == outs[i+1] {
				continue
			}
			m.outList = append(m.outList, outEntry{pattern: outs[i], next: m.out[s]})
			m.out[s] = int32(len(m.outList) - 1)
		}
	}
	return m
}

// step advances the automaton by one byte. The result may carry
// acceptFlag; the state is the result without it.
func (m *matcher) step(state uint16, b byte) uint16 {
	return m.next[int(state&^acceptFlag)*m.nclass+int(m.class[b])]
}
