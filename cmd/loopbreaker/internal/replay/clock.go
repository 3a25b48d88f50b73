package replay

import (
	"bytes"
	"net/mail"
	"strings"
	"time"
)

// field is one header field, unfolded.
type field struct{ name, value string }

// scanHeader reads the header section of raw (after an mbox "From " line
// when mbox): the fields up to the first line that is not one (the values
// of those messageTime reads only) and whether a blank line ended the
// section.
func scanHeader(raw []byte, mbox bool) (fs []field, ended bool) {
	if mbox {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 && bytes.HasPrefix(raw, []byte("From ")) {
			raw = raw[i+1:]
		} else if bytes.HasPrefix(raw, []byte("From ")) {
			raw = nil
		}
	}
	for line := range bytes.Lines(raw) {
		// The line's "\n" and every "\r" before it.
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return fs, true
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fs) > 0 {
			if keep := &fs[len(fs)-1]; timeField(keep.name) {
				keep.value += " " + strings.TrimSpace(string(line))
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !fieldName(line[:colon]) {
			return fs, false
		}
		f := field{name: string(line[:colon])}
		if timeField(f.name) {
			f.value = strings.TrimSpace(string(line[colon+1:]))
		}
		fs = append(fs, f)
	}
	return fs, false
}

// timeField says whether messageTime reads the field; scanHeader keeps
// only these fields' values.
func timeField(name string) bool {
	return strings.EqualFold(name, "Received") || strings.EqualFold(name, "Date") || strings.EqualFold(name, "Delivered-To")
}

// fieldName says whether b is a header field name (RFC 5322 2.2: printable
// US-ASCII but colon; a space before the colon is tolerated as mailers do).
func fieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= 32 || c >= 127 {
			return false
		}
	}
	return true
}

// inspect reads a message's clock and says whether it is fit to replay:
// a message with no header field at all is garbage, one that ends inside
// its header section without a line end was cut short.
func inspect(raw []byte, mbox bool) (t time.Time, from, bad string) {
	fs, ended := scanHeader(raw, mbox)
	switch {
	case len(fs) == 0:
		return time.Time{}, "", "not a message: no header field"
	case !ended && len(raw) > 0 && raw[len(raw)-1] != '\n':
		return time.Time{}, "", "truncated in its header section"
	}
	t, from = messageTime(fs)
	return t, from, ""
}

// messageTime is the time the message is replayed at: the date of the
// topmost Received field (when the last MTA took it in), else that of the
// Received field just below Delivered-To (the delivering MTA's, when a
// later program stamped the top one without a date), else Date:. Zero
// when none parses.
func messageTime(fs []field) (time.Time, string) {
	for i := range fs {
		if strings.EqualFold(fs[i].name, "Received") {
			if t, ok := receivedDate(fs[i].value); ok {
				return t, "received"
			}
			break
		}
	}
	for i := range fs {
		if !strings.EqualFold(fs[i].name, "Delivered-To") {
			continue
		}
		for j := i + 1; j < len(fs); j++ {
			if strings.EqualFold(fs[j].name, "Received") {
				if t, ok := receivedDate(fs[j].value); ok {
					return t, "delivered-to"
				}
				break
			}
		}
		break
	}
	for i := range fs {
		if strings.EqualFold(fs[i].name, "Date") {
			if t, err := mail.ParseDate(fs[i].value); err == nil {
				return t, "date"
			}
			break
		}
	}
	return time.Time{}, ""
}

// receivedDate parses the date after the last ";" of a Received field
// (RFC 5321 4.4).
func receivedDate(v string) (time.Time, bool) {
	i := strings.LastIndexByte(v, ';')
	if i < 0 {
		return time.Time{}, false
	}
	t, err := mail.ParseDate(strings.TrimSpace(v[i+1:]))
	return t, err == nil
}
