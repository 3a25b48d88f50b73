package policy

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
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
	ordered []indexedKey   // in file order
}

type pos struct{ line, col int }

type indexedKey struct {
	full string // "rule[1].limit"
	pos  pos
}

func indexKeys(data []byte) *keyIndex {
	idx := &keyIndex{exact: map[string]pos{}}
	table := ""
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
			table = fmt.Sprintf("%s[%d]", name, i)
			idx.add(table, pos{lineNo, col})
			continue
		}
		if trimmed[0] == '[' {
			name := strings.TrimSpace(strings.Trim(cutComment(trimmed), "[] "))
			table = name
			idx.add(table, pos{lineNo, col})
			continue
		}
		eq := strings.IndexByte(trimmed, '=')
		if eq <= 0 {
			continue
		}
		key := normalizeKey(trimmed[:eq])
		value := strings.TrimSpace(trimmed[eq+1:])
		full := key
		if table != "" {
			full = table + "." + key
		}
		idx.add(full, pos{lineNo, col})
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

func (idx *keyIndex) add(full string, p pos) {
	if _, dup := idx.exact[full]; !dup {
		idx.exact[full] = p
	}
	idx.ordered = append(idx.ordered, indexedKey{full: full, pos: p})
}

// find returns the position of a path like "rule[0].limit" or
// "local_domains". A path the scanner did not see as such (a key inside an
// inline table, a value that is a table written with dotted keys) takes
// the first key below it, else the place of its parent; 1:1, the start of
// the file, is the last resort, so that every error has a position.
func (idx *keyIndex) find(path string) (int, int) {
	for path != "" {
		if p, ok := idx.exact[path]; ok {
			return p.line, p.col
		}
		for _, e := range idx.ordered {
			if strings.HasPrefix(e.full, path+".") || strings.HasPrefix(e.full, path+"[") {
				return e.pos.line, e.pos.col
			}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 1, 1
}

// syntaxError places an error of the TOML parser. Its ParseError has the
// line and column; anything else (not expected from toml.Decode into a
// map) keeps the line its text names, or 1.
func syntaxError(file string, data []byte, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e := &Error{File: file, Line: max(pe.Position.Line, 1), Col: max(pe.Position.Col, 1), Msg: pe.Message}
		// For some errors (a key defined twice) v1.6.0 computes the column
		// from another item than the line: past the end of the line. Then
		// the line's first non-blank character, its key, is the place.
		lines := strings.Split(string(data), "\n")
		if e.Line <= len(lines) {
			l := strings.TrimRight(lines[e.Line-1], "\r")
			if e.Col > len(l)+1 {
				e.Col = len(l) - len(strings.TrimLeft(l, " \t")) + 1
			}
		}
		return e
	}
	e := &Error{File: file, Line: 1, Col: 1, Msg: tomlPrefix.ReplaceAllString(err.Error(), "")}
	if m := tomlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
	}
	return e
}

var (
	// tomlPrefix is what BurntSushi/toml puts before the message of its
	// decoding errors: "toml: line 3 (last key "rule.limit"): ". The
	// position it gives is replaced by the key's own.
	tomlPrefix = regexp.MustCompile(`^toml: (line \d+ )?(\(last key "[^"]*"\): )?(line \d+: )?`)
	tomlLine   = regexp.MustCompile(`^toml: line (\d+)`)
	// badType is the text of its type mismatches (v1.6.0, MetaData.badtype).
	badType = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
)

// decodeKey decodes prim, the value of key k, into the field of dst (a
// struct) whose toml tag is k, as toml.Decode would: the exact name, else
// one that differs only in case. It returns what is wrong, "" when nothing
// is; unknown says k is no field at all.
func decodeKey(md *toml.MetaData, prim toml.Primitive, k string, dst reflect.Value) (msg string, unknown bool) {
	f, ok := fieldByKey(dst.Type(), k)
	if !ok {
		return "", true
	}
	if err := md.PrimitiveDecode(prim, dst.FieldByIndex(f.Index).Addr().Interface()); err != nil {
		return decodeMessage(k, err, ""), false
	}
	return "", false
}

// fieldByKey finds the exported field that the TOML key k decodes into.
func fieldByKey(t reflect.Type, k string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == k {
			return f, true
		}
		if !found && strings.EqualFold(name, k) {
			fold, found = f, true
		}
	}
	return fold, found
}

// decodeMessage says what is wrong with the value of key k: "limit must be
// an integer, not a string" for a type mismatch (want, when set, replaces
// "an integer"), "window: bad duration ..." for a value the field's own
// parser refused.
func decodeMessage(k string, err error, want string) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return k + ": " + pe.Message
	}
	msg := tomlPrefix.ReplaceAllString(err.Error(), "")
	if m := badType.FindStringSubmatch(msg); m != nil {
		if want == "" {
			want = destName(m[2])
		}
		return fmt.Sprintf("%s must be %s, not %s", k, want, valueName(m[1]))
	}
	return k + ": " + msg
}

// valueName names the Go type BurntSushi/toml decoded a TOML value to as
// the TOML type it was.
func valueName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "float64":
		return "a float"
	case "bool":
		return "a boolean"
	case "[]any", "[]interface {}":
		return "an array"
	case "[]map[string]any", "[]map[string]interface {}":
		return "an array of tables"
	case "map[string]any", "map[string]interface {}":
		return "a table"
	case "time.Time", "toml.LocalDate", "toml.LocalTime", "toml.LocalDatetime":
		return "a date or time"
	}
	return goType
}

// destName names the decoder's destination kinds.
func destName(dest string) string {
	switch dest {
	case "integer":
		return "an integer"
	case "float":
		return "a float"
	case "boolean":
		return "a boolean"
	case "slice":
		return "an array"
	case "map":
		return "a table"
	case "string", "primitive (string-like)":
		return "a string"
	}
	return dest
}

// sortedKeys are the keys of m, sorted (errors are sorted by position at
// the end; this only makes the decoding order fixed).
func sortedKeys(m map[string]toml.Primitive) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
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
	end := len(s)
	eachOutsideStrings(s, func(i int, c byte) bool {
		if c == '#' {
			end = i
			return false
		}
		return true
	})
	return s[:end]
}

// bracketDelta counts [ minus ] outside strings and before a comment.
func bracketDelta(s string) int {
	d := 0
	eachOutsideStrings(s, func(_ int, c byte) bool {
		switch c {
		case '#':
			return false
		case '[':
			d++
		case ']':
			d--
		}
		return true
	})
	return d
}

// eachOutsideStrings calls fn with every byte of a TOML line that is not
// inside a basic ("...", with backslash escapes) or literal ('...') string,
// the quotes included, until fn returns false.
func eachOutsideStrings(s string, fn func(i int, c byte) bool) {
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
			if !fn(i, c) {
				return
			}
		case inStr == 0:
			if !fn(i, c) {
				return
			}
		}
	}
}
