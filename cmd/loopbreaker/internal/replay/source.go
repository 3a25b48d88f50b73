package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Item is one message found in a source: where it is, its time, and its
// bytes while they fit in the scan's memory budget.
type Item struct {
	// Seq is the message's place in the order the sources were read.
	Seq int
	// Source is the SOURCE argument the message came from.
	Source string
	// File is the file the message is in ("-" for stdin).
	File string
	// Offset is the byte offset of the message in File (of its "From "
	// line in an mbox; 0 for a file of its own) and Length its size.
	Offset, Length int64
	// Mbox says the message is an mbox entry, decoded with go-mbox.
	Mbox bool
	// MboxFrom is the mbox "From " line, without "From ".
	MboxFrom string
	// Time is the message's clock (see messageTime) and TimeFrom where
	// it was read: "received", "delivered-to", "date" or "previous" (none
	// in the message: the previous message's).
	Time     time.Time
	TimeFrom string
	// Bad says why the message cannot be replayed; "" when it can.
	Bad string

	path string // the file to read the bytes from again (stdin's temp copy)
	raw  []byte // the bytes when kept; nil to read them again
}

// Location names the message for a reader: the file, and for an mbox
// entry its byte offset.
func (it *Item) Location() string {
	if it.Mbox {
		return it.File + "@" + strconv.FormatInt(it.Offset, 10)
	}
	return it.File
}

// bytes returns the message's bytes, reading them again when not kept.
func (it *Item) bytes() ([]byte, error) {
	if it.raw != nil {
		return it.raw, nil
	}
	f, err := os.Open(it.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, it.Length)
	if _, err := f.ReadAt(b, it.Offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// SourceStats is what one SOURCE held.
type SourceStats struct {
	Source   string `json:"source"`
	Format   string `json:"format"` // mbox, maildir, directory, file, stdin (mbox)
	Messages int    `json:"messages"`
	Bad      int    `json:"bad"`
	Bytes    int64  `json:"bytes"`
}

// scanner collects the items of every source.
type scanner struct {
	items    []*Item
	budget   int64 // bytes of messages still allowed to stay in memory
	progress *progress
	tmpDir   string
	stdin    io.Reader
}

// maxKept is the largest message kept in memory; larger ones are read again.
const maxKept = 4 << 20

func (s *scanner) add(it *Item, raw []byte) {
	it.Seq = len(s.items)
	it.Length = int64(len(raw))
	it.Time, it.TimeFrom, it.Bad = inspect(raw, it.Mbox)
	if it.Length <= maxKept && s.budget >= it.Length {
		it.raw = raw
		s.budget -= it.Length
	}
	s.items = append(s.items, it)
	s.progress.add(1, 0)
}

// scanSource reads one SOURCE: "-" (an mbox on stdin), a directory (a
// Maildir or a tree of message files, each file sniffed: an mbox file in
// it is read as one) or a file (an mbox or a single message).
func (s *scanner) scanSource(src string) (st SourceStats, err error) {
	st.Source = src
	before := len(s.items)
	defer func() {
		for _, it := range s.items[before:] {
			st.Messages++
			if it.Bad != "" {
				st.Bad++
			}
		}
	}()
	if src == "-" {
		st.Format = "stdin"
		f, err := os.CreateTemp(s.tmpDir, "stdin-*.mbox")
		if err != nil {
			return st, err
		}
		var n int64
		n, err = io.Copy(f, s.stdin)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return st, fmt.Errorf("reading stdin: %w", err)
		}
		st.Bytes = n
		return st, s.scanFile(f.Name(), "-", src)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		st.Bytes = fi.Size()
		st.Format = "file"
		if mbox, _ := sniffMbox(src); mbox {
			st.Format = "mbox"
		}
		return st, s.scanFile(src, src, src)
	}
	st.Format = "directory"
	if isMaildir(src) {
		st.Format = "maildir"
	}
	var files []string
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// tmp/ of a Maildir holds messages still being delivered.
			if d.Name() == "tmp" && p != src && isMaildir(filepath.Dir(p)) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && !skipFile(d.Name()) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	sort.Strings(files)
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			st.Bytes += fi.Size()
		}
		if err := s.scanFile(f, f, src); err != nil {
			s.add(&Item{Source: src, File: f, path: f}, nil)
			s.items[len(s.items)-1].Bad = err.Error()
		}
	}
	return st, nil
}

// isMaildir says whether dir has the cur/ or new/ of a Maildir.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// skipFile names the files of mail programs that are not messages:
// Dovecot's and Courier's indexes, Thunderbird's .msf summaries, a
// Maildir++ folder marker.
func skipFile(name string) bool {
	low := strings.ToLower(name)
	switch {
	case strings.HasPrefix(low, "dovecot"), strings.HasPrefix(low, "courierimap"),
		low == "maildirfolder", low == "subscriptions", low == ".ds_store",
		strings.HasSuffix(low, ".msf"), strings.HasSuffix(low, ".lock"):
		return true
	}
	return false
}

// sniffMbox says whether the file is an mbox: its first non-empty line is
// a "From " line, or it starts with something that is no header field and
// has a "From " line further on (an mbox with damage at its start).
func sniffMbox(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var buf [8 << 10]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false, err
	}
	rest := bytes.TrimLeft(buf[:n], "\r\n \t")
	if bytes.HasPrefix(rest, []byte("From ")) {
		return true, nil
	}
	first := rest
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	colon := bytes.IndexByte(first, ':')
	isField := colon > 0 && fieldName(first[:colon])
	return !isField && bytes.Contains(rest, []byte("\nFrom ")), nil
}

// scanFile reads a file: an mbox (split at its "From " lines, as go-mbox
// and every mboxo/mboxrd writer do) or a single message.
func (s *scanner) scanFile(path, name, src string) error {
	mbox, err := sniffMbox(path)
	if err != nil {
		return err
	}
	if !mbox {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s.progress.add(0, int64(len(raw)))
		s.add(&Item{Source: src, File: name, path: path}, raw)
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	var (
		off, start int64
		cur        []byte
		inMsg      bool
		lead       bool // non-blank data before the first From line
		fromLine   string
	)
	flush := func() {
		if inMsg {
			s.add(&Item{Source: src, File: name, path: path, Offset: start, Mbox: true, MboxFrom: fromLine}, cur)
		}
		cur = nil
	}
	var line []byte
	for {
		line = line[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			line = append(line, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte("From ")) {
				flush()
				inMsg, start = true, off
				fromLine = strings.TrimRight(string(line[5:]), "\r\n")
			} else if !inMsg && len(bytes.TrimSpace(line)) > 0 {
				lead = true
			}
			if inMsg {
				cur = append(cur, line...)
			}
			off += int64(len(line))
			s.progress.add(0, int64(len(line)))
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			break
		}
	}
	flush()
	if lead {
		s.add(&Item{Source: src, File: name, path: path, Mbox: true}, nil)
		s.items[len(s.items)-1].Bad = "data before the first mbox From line"
	}
	return nil
}

// finish gives the messages without a time of their own the time of the
// message read before them (the first dated one for those at the start),
// then sorts the items by time, stably: messages of the same second keep
// the order they were read in.
func (s *scanner) finish() []*Item {
	var last time.Time
	for _, it := range s.items {
		if it.Bad == "" && !it.Time.IsZero() {
			last = it.Time
			break
		}
	}
	for _, it := range s.items {
		if it.Time.IsZero() {
			it.Time, it.TimeFrom = last, "previous"
			continue
		}
		last = it.Time
	}
	sort.SliceStable(s.items, func(i, j int) bool { return s.items[i].Time.Before(s.items[j].Time) })
	return s.items
}
