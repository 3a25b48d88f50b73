package state

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Block is a (rule, key) whose messages are acted on until Until.
type Block struct {
	Rule  string    `json:"rule"`
	Key   string    `json:"key"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Count is how many messages the block has acted on so far.
	Count int `json:"count"`
	// Limit and Window are the rule's settings when the block started.
	Limit  int           `json:"limit"`
	Window time.Duration `json:"window"`
	// Samples are the subjects of the first few messages acted on.
	Samples []string `json:"samples,omitempty"`
}

func (b *Block) activeAt(now time.Time) bool { return now.Before(b.Until) }

func (b *Block) addSample(subject string) {
	if len(b.Samples) >= MaxSamples || subject == "" {
		return
	}
	b.Samples = append(b.Samples, ClipSubject(subject))
}

// ClipSubject bounds a sample subject to 200 bytes without splitting a
// UTF-8 character; every backend keeps samples this way.
func ClipSubject(subject string) string {
	if len(subject) <= maxSubject {
		return subject
	}
	subject = subject[:maxSubject]
	for !utf8.ValidString(subject) && len(subject) > 0 {
		subject = subject[:len(subject)-1]
	}
	return subject
}

func (b *Block) clone() Block {
	c := *b
	c.Samples = append([]string(nil), b.Samples...)
	return c
}

// snapshot copies b for writing it out of the store's lock: the samples
// are only ever appended to, so the copy shares them.
func (b *Block) snapshot() *Block {
	c := *b
	c.Samples = c.Samples[:len(c.Samples):len(c.Samples)]
	return &c
}

func encodeBlock(b *Block) ([]byte, error) { return json.Marshal(b) }

func decodeBlock(v []byte) (*Block, error) {
	var b Block
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// ID is the store's name for (rule, key). NUL cannot occur in a rule name or
// a normalized key.
func ID(rule, key string) string { return rule + "\x00" + key }

// SplitID reverses ID.
func SplitID(id string) (rule, key string) {
	rule, key, _ = strings.Cut(id, "\x00")
	return rule, key
}
