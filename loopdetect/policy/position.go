package policy

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyIndex maps every key and table header of a TOML file to its line and
// column. BurntSushi/toml keeps key positions private, and a postmaster needs
// file:line:col for an unknown field or a bad value found after decoding, so
// this small scanner finds them. It understands what policy files use:
// [table], [[array-table]], bare and quoted keys, dotted keys, and skips the
// inside of multi-line arrays and strings.
type keyIndex struct {
	exact   map[string]pos // "rule[1].limit" -> position
	ordered []indexedKey   // in file order, for matching undecoded keys
	claimed map[int]bool
}

type pos struct{ line, col int }

type indexedKey struct {
	plain string // "rule.limit": the path without array indexes, as toml.Key prints it
	pos   pos
}

func indexKeys(data []byte) *keyIndex {
	idx := &keyIndex{exact: map[string]pos{}, claimed: map[int]bool{}}
	table, plainTable := "", ""
	arrays := map[string]int{}
	depth := 0    // open [ of a multi-line array value
	inMulti := "" // open """ or ''' of a multi-line string
	for n, line := range bytes.Split(data, []byte("\n")) {
		s := string(bytes.TrimRight(line, "\r"))
		lineNo := n + 1
		if inMulti != "" {
			if strings.Count(s, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		trimmed := strings.TrimSpace(s)
		col := len(s) - len(strings.TrimLeft(s, " \t")) + 1
		if depth > 0 {
			depth += bracketDelta(trimmed)
			continue
		}
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if strings.HasPrefix(trimmed, "[[") {
			name := strings.TrimSpace(strings.Trim(cutComment(trimmed), "[] "))
			i := arrays[name]
			arrays[name]++
			table, plainTable = fmt.Sprintf("%s[%d]", name, i), name
			idx.add(table, plainTable, pos{lineNo, col})
			continue
		}
		if trimmed[0] == '[' {
			name := strings.TrimSpace(strings.Trim(cutComment(trimmed), "[] "))
			table, plainTable = name, name
			idx.add(table, plainTable, pos{lineNo, col})
			continue
		}
		eq := strings.IndexByte(trimmed, '=')
		if eq <= 0 {
			continue
		}
		key := normalizeKey(trimmed[:eq])
		value := strings.TrimSpace(trimmed[eq+1:])
		full, plain := key, key
		if table != "" {
			full, plain = table+"."+key, plainTable+"."+key
		}
		idx.add(full, plain, pos{lineNo, col})
		for _, q := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, q) && strings.Count(value, q) == 1 {
				inMulti = q
			}
		}
		if inMulti == "" {
			depth = bracketDelta(cutComment(value))
			if depth < 0 {
				depth = 0
			}
		}
	}
	return idx
}

func (idx *keyIndex) add(full, plain string, p pos) {
	if _, dup := idx.exact[full]; !dup {
		idx.exact[full] = p
	}
	idx.ordered = append(idx.ordered, indexedKey{plain: plain, pos: p})
}

// pos returns the position of a path like "rule[0].limit" or "local_domains";
// 0, 0 when it is not in the file (a default).
func (idx *keyIndex) pos(path string) (int, int) {
	if p, ok := idx.exact[path]; ok {
		return p.line, p.col
	}
	return 0, 0
}

// claim returns the position of the next unclaimed occurrence of k.
func (idx *keyIndex) claim(k toml.Key) (int, int) {
	want := normalizeKey(k.String())
	for i, e := range idx.ordered {
		if !idx.claimed[i] && e.plain == want {
			idx.claimed[i] = true
			return e.pos.line, e.pos.col
		}
	}
	return 0, 0
}

// normalizeKey removes quotes and blanks around the parts of a dotted key.
func normalizeKey(k string) string {
	parts := strings.Split(strings.TrimSpace(k), ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

func cutComment(s string) string {
	inStr := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr != 0 && c == '\\' && inStr == '"':
			i++
		case inStr != 0 && c == inStr:
			inStr = 0
		case inStr == 0 && (c == '"' || c == '\''):
			inStr = c
		case inStr == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

// bracketDelta counts [ minus ] outside strings.
func bracketDelta(s string) int {
	d := 0
	inStr := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr != 0 && c == '\\' && inStr == '"':
			i++
		case inStr != 0 && c == inStr:
			inStr = 0
		case inStr == 0 && (c == '"' || c == '\''):
			inStr = c
		case inStr == 0 && c == '#':
			return d
		case inStr == 0 && c == '[':
			d++
		case inStr == 0 && c == ']':
			d--
		}
	}
	return d
}
