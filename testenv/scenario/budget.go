package scenario

import "sync"

// Budget bounds a loop that would otherwise run for ever: every step of the
// loop (a forward, an auto-reply, an unknown user refused so that an NDR is
// made) takes one unit, and once none is left the loop's own machinery stops
// feeding it (the rule agent stops forwarding, the outside accepts the
// unknown user into a catch-all mailbox). A loop that loopbreaker stops
// leaves units unused.
type Budget struct {
	mu    sync.Mutex
	limit int
	used  int
	over  int               // steps refused after the budget ran out
	spent map[string]int    // units taken per step kind
	done  chan struct{}     // closed when the budget runs out
	hook  func(kind string) // called for each unit taken (no lock held)
}

// NewBudget returns a budget of limit loop steps.
func NewBudget(limit int) *Budget {
	return &Budget{limit: limit, spent: map[string]int{}, done: make(chan struct{})}
}

// Take takes one unit for a step of the given kind ("forward", "ndr",
// "auto-reply"), reporting false when the budget is spent.
func (b *Budget) Take(kind string) bool {
	b.mu.Lock()
	if b.used >= b.limit {
		b.over++
		b.mu.Unlock()
		return false
	}
	b.used++
	b.spent[kind]++
	if b.used == b.limit {
		close(b.done)
	}
	hook := b.hook
	b.mu.Unlock()
	if hook != nil {
		hook(kind)
	}
	return true
}

// Used returns how many units were taken.
func (b *Budget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Spent returns the units taken per step kind.
func (b *Budget) Spent() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.spent))
	for k, v := range b.spent {
		out[k] = v
	}
	return out
}

// Limit returns the budget's size.
func (b *Budget) Limit() int { return b.limit }

// Exhausted is closed once every unit is taken.
func (b *Budget) Exhausted() <-chan struct{} { return b.done }
