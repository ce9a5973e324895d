package audit

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Entry is a line of the trail as a reader sees it: the record, when the
// line is one, and the line itself.
type Entry struct {
	Record Record
	OK     bool
	Line   []byte
}

// TailOptions says what Tail shows.
type TailOptions struct {
	// Last is how many of the newest events to show first; negative shows
	// them all.
	Last int
	// Follow goes on showing events as they are written, across
	// rotations, until the context ends.
	Follow bool
	// Poll is how often a follower looks for more; 0 is 250ms.
	Poll time.Duration
}

// Tail calls fn with the newest events of the trail in dir, in order, and
// with every later one when following. A line cut short is not shown until
// it is complete. It returns fn's error, or nil when ctx ends.
func Tail(ctx context.Context, dir string, o TailOptions, fn func(Entry) error) error {
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	path := filepath.Join(dir, CurrentFile)
	// The current file is opened before the rotated ones are listed: a
	// rotation in between shows its lines twice, which Seq weeds out,
	// instead of not at all.
	cur, err := os.Open(path)
	switch {
	case err == nil:
		defer func() {
			if cur != nil {
				cur.Close()
			}
		}()
	case errors.Is(err, fs.ErrNotExist):
		cur = nil
	default:
		return err
	}
	files, err := listFiles(dir)
	if err != nil && !(o.Follow && errors.Is(err, ErrNoTrail)) {
		return err
	}
	t := tailer{fn: fn}
	var backlog []Entry
	var curReader *lineReader
	if cur != nil {
		curReader = newLineReader(cur)
		if backlog, err = t.complete(curReader, o.Last); err != nil {
			return err
		}
	}
	// Older files, newest first, until there are enough.
	for i := len(files) - 1; i >= 0 && (o.Last < 0 || len(backlog) < o.Last); i-- {
		if files[i].last == 0 {
			continue
		}
		older, err := readEntries(files[i].path, o.Last-len(backlog))
		if err != nil {
			return err
		}
		backlog = append(older, backlog...)
	}
	for _, e := range backlog {
		if err := t.emit(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	// What was there already and not shown is not shown later either.
	for _, f := range files {
		t.lastSeq = max(t.lastSeq, f.last)
	}
	t.lastSeq = max(t.lastSeq, t.read)
	for {
		if curReader != nil {
			if err := t.drain(curReader); err != nil {
				return err
			}
			// At the end of what is written: when a rotation renamed the
			// file, the lines written before it are read, and the name is
			// opened again.
			if st, err := os.Stat(path); err == nil {
				if own, err := cur.Stat(); err == nil && !os.SameFile(st, own) {
					if err := t.drain(curReader); err != nil {
						return err
					}
					cur.Close()
					cur, curReader, t.pending = nil, nil, nil
				}
			}
		}
		if cur == nil {
			if f, err := os.Open(path); err == nil {
				cur, curReader = f, newLineReader(f)
				// Files rotated more than once since the last look are
				// read first; lines shown already are not shown again.
				if err := t.catchUp(dir); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll):
		}
	}
}

// catchUp passes on the events of the rotated files past the last one
// passed on.
func (t *tailer) catchUp(dir string) error {
	files, err := listFiles(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.last == 0 || f.last <= t.lastSeq {
			continue
		}
		es, err := readEntries(f.path, -1)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := t.emit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// tailer passes entries on in chain order, each once.
type tailer struct {
	fn func(Entry) error
	// lastSeq is the last event passed on; read, the last one read.
	lastSeq, read uint64
	// pending is the start of a line not yet complete.
	pending []byte
}

func (t *tailer) emit(e Entry) error {
	if e.OK {
		if e.Record.Seq <= t.lastSeq {
			return nil
		}
		t.lastSeq = e.Record.Seq
	}
	return t.fn(e)
}

// complete reads the complete lines r has, keeping the last n (all when n
// is negative) and the start of an incomplete one for later.
func (t *tailer) complete(r *lineReader, n int) ([]Entry, error) {
	var out []Entry
	for {
		line, complete, err := r.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if !complete {
			t.pending = append(t.pending[:0], line...)
			return out, nil
		}
		e := entry(line)
		t.read = max(t.read, e.Record.Seq)
		out = keepLast(append(out, e), n)
	}
}

// drain passes on every complete line r has now, joining the start of a
// line read earlier with its rest.
func (t *tailer) drain(r *lineReader) error {
	for {
		line, complete, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(t.pending) > 0 {
			line = append(t.pending, line...)
			t.pending = nil
		}
		if !complete {
			t.pending = append([]byte(nil), line...)
			return nil
		}
		if err := t.emit(entry(line)); err != nil {
			return err
		}
	}
}

// readEntries reads the last n complete lines of a file (all when n is
// negative).
func readEntries(path string, n int) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var t tailer
	return t.complete(newLineReader(f), n)
}

func entry(line []byte) Entry {
	rec, ok := parseLine(line)
	return Entry{Record: rec, OK: ok, Line: append([]byte(nil), line...)}
}

func keepLast(es []Entry, n int) []Entry {
	if n >= 0 && len(es) > n {
		return es[len(es)-n:]
	}
	return es
}
