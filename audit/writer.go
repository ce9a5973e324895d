package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultMaxFileBytes is the size past which the current file is rotated.
const DefaultMaxFileBytes = 64 << 20

// Errors of the writer.
var (
	// ErrClosed: the writer was closed.
	ErrClosed = errors.New("audit: the trail is closed")
	// ErrStopped: a write or fsync failed in a way that leaves the file's
	// state unknown (after a failed fsync, Linux may have dropped the
	// pages and report the next one clean); the writer takes no more
	// events until the broker restarts and finds the file's last line.
	ErrStopped = errors.New("audit: the trail stopped after a failed write")
	// errLineTooLong: no newline within a line's length of the end.
	errLineTooLong = errors.New("a line longer than any event")
)

// Writer appends events to the trail in a directory. It is safe for
// concurrent use.
//
// Each event is one write(2) of a whole line to a file opened O_APPEND, so
// a crash leaves at most the last line cut short, never a line spliced
// into another. Record returns once an fsync that began after its line
// was written has succeeded: events recorded at once share one fsync
// (group commit) instead of queueing for one each, and an event a caller
// was told is recorded survives a crash of the machine.
type Writer struct {
	dir      string
	maxBytes int64
	now      func() time.Time
	log      *slog.Logger
	// syncFile is (*os.File).Sync; tests count and hold fsyncs with it.
	syncFile func(*os.File) error

	// syncMu lets one fsync run at a time: the Records that wrote while it
	// ran wait for the next, which covers them all.
	syncMu sync.Mutex

	mu     sync.Mutex
	f      *os.File
	size   int64
	seq    uint64 // of the last line written
	prev   string // its hash
	synced uint64 // the last Seq known to be on disk
	err    error  // once set, every Record fails with it
}

// Option configures a Writer.
type Option func(*Writer)

// WithMaxFileBytes sets the size past which the current file is rotated.
func WithMaxFileBytes(n int64) Option { return func(w *Writer) { w.maxBytes = n } }

// WithLogger sets where the writer says what it recovered at start.
func WithLogger(l *slog.Logger) Option { return func(w *Writer) { w.log = l } }

// WithClock replaces time.Now for the events' times.
func WithClock(now func() time.Time) Option { return func(w *Writer) { w.now = now } }

// Open opens the trail in dir, creating it (mode 0700) if needed, and
// continues its chain from the last complete line. A last line a crash cut
// short is dropped, and an audit-recovered event says how many bytes went.
// Only one process may write a trail: the broker's data directory lock
// sees to that.
func Open(dir string, opts ...Option) (*Writer, error) {
	w := &Writer{dir: dir, maxBytes: DefaultMaxFileBytes, now: time.Now, syncFile: (*os.File).Sync}
	for _, o := range opts {
		o(w)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.maxBytes <= 0 {
		return nil, fmt.Errorf("audit: the rotation size must be positive, not %d", w.maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	path := filepath.Join(dir, CurrentFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	dropped, err := w.resume(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	w.f = f
	if dropped > 0 {
		w.log.Warn("audit trail: dropped the last line, cut short by a crash", "file", path, "bytes", dropped)
		if err := w.Record(Event{Kind: KindRecovered, Dropped: dropped}); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// resume finds where the chain ends, in the current file f or else in the
// newest rotated file, and cuts off f's torn tail. It returns the bytes
// dropped.
func (w *Writer) resume(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	line, rec, end, err := lastEvent(f, st.Size())
	if err != nil {
		return 0, err
	}
	if end < st.Size() {
		if err := f.Truncate(end); err != nil {
			return 0, err
		}
		if err := w.syncFile(f); err != nil {
			return 0, err
		}
	}
	w.size = end
	if line == nil {
		if line, rec, err = lastRotated(w.dir); err != nil {
			return 0, err
		}
	}
	if line != nil {
		w.seq, w.prev = rec.Seq, Hash(line)
	}
	w.synced = w.seq
	return st.Size() - end, nil
}

// lastRotated is the last event of the newest rotated file, nil when there
// is none. A rotated file is never written again, so one that ends in a
// cut line was altered.
func lastRotated(dir string) ([]byte, Record, error) {
	files, err := listFiles(dir)
	if err != nil {
		return nil, Record{}, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		if files[i].last == 0 {
			continue
		}
		f, err := os.Open(files[i].path)
		if err != nil {
			return nil, Record{}, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, Record{}, err
		}
		line, rec, end, err := lastEvent(f, st.Size())
		if err == nil && (end != st.Size() || line == nil) {
			err = errors.New("it does not end with a complete event; run mfa-broker audit verify")
		}
		if err != nil {
			return nil, Record{}, fmt.Errorf("%s: %w", files[i].path, err)
		}
		return line, rec, nil
	}
	return nil, Record{}, nil
}

// lastEvent finds a file's last complete event, and end, the offset just
// after it. What follows is the torn tail: bytes after the last newline,
// and a last line that is not an event (a crash can leave zeros where a
// line was being written). Only one such line is taken for torn: a second
// is an error, for verify to show.
func lastEvent(f io.ReaderAt, size int64) (line []byte, rec Record, end int64, err error) {
	nl, err := lastNewline(f, size, maxLineBytes+1)
	if err != nil {
		return nil, Record{}, 0, err
	}
	end = nl + 1
	for tries := 0; end > 0; tries++ {
		start, err := lastNewline(f, end-1, maxLineBytes+1)
		if err != nil {
			return nil, Record{}, 0, err
		}
		line = make([]byte, end-1-(start+1))
		if _, err := f.ReadAt(line, start+1); err != nil {
			return nil, Record{}, 0, err
		}
		if rec, ok := parseLine(line); ok {
			return line, rec, end, nil
		}
		if tries > 0 {
			return nil, Record{}, 0, errors.New("its last lines are not events; run mfa-broker audit verify")
		}
		end = start + 1
	}
	return nil, Record{}, 0, nil
}

// lastNewline is the offset of the last '\n' before pos, -1 when there is
// none; it reads back at most limit bytes.
func lastNewline(f io.ReaderAt, pos, limit int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for read := int64(0); pos > 0; {
		if read >= limit {
			return 0, errLineTooLong
		}
		n := min(int64(len(buf)), pos)
		if _, err := f.ReadAt(buf[:n], pos-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return pos - n + int64(i), nil
		}
		pos -= n
		read += n
	}
	return -1, nil
}

// Record appends e to the trail and returns once it is on disk.
func (w *Writer) Record(e Event) error {
	seq, err := w.append(e)
	if err != nil {
		return err
	}
	return w.sync(seq)
}

// append writes e's line, rotating first when the line would take the
// current file past its size, and returns its Seq.
func (w *Writer) append(e Event) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	line, err := json.Marshal(Record{Seq: w.seq + 1, Time: w.now().UTC(), Prev: w.prev, Event: e})
	if err != nil {
		return 0, fmt.Errorf("audit: encode the event: %w", err)
	}
	if w.size > 0 && w.size+int64(len(line))+1 > w.maxBytes {
		if err := w.rotate(); err != nil {
			w.err = fmt.Errorf("%w: rotate: %w", ErrStopped, err)
			return 0, w.err
		}
	}
	n, err := w.f.Write(append(line, '\n'))
	if err != nil {
		// A short write (a full disk) leaves part of a line, which the
		// next line would follow: it is cut off, or nothing more is
		// written after it.
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				w.err = fmt.Errorf("%w: %w, and cutting the part written: %w", ErrStopped, err, terr)
				return 0, w.err
			}
		}
		return 0, fmt.Errorf("audit: write: %w", err)
	}
	w.seq, w.prev, w.size = w.seq+1, Hash(line), w.size+int64(n)
	return w.seq, nil
}

// rotate syncs and closes the current file, renames it for its last
// event, and starts a new one; the chain runs on, as the new file's first
// line holds the hash of the old one's last. A crash anywhere in between
// leaves either the old name or the new one, and Open continues from
// whichever holds the last line.
func (w *Writer) rotate() error {
	if err := w.syncFile(w.f); err != nil {
		return err
	}
	w.synced = w.seq
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	current := filepath.Join(w.dir, CurrentFile)
	if err := os.Rename(current, filepath.Join(w.dir, rotatedName(w.seq))); err != nil {
		return err
	}
	f, err := os.OpenFile(current, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return syncDir(w.dir)
}

// sync returns once the line of seq is on disk: at once when an fsync
// since covered it, else after one it runs itself, which covers every
// line written so far.
func (w *Writer) sync(seq uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if w.synced >= seq {
		w.mu.Unlock()
		return nil
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	f, upTo := w.f, w.seq
	w.mu.Unlock()
	// Outside mu: lines go on being written during the fsync, and wait
	// for the next.
	err := w.syncFile(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.synced = max(w.synced, upTo)
		return nil
	}
	if w.synced >= seq {
		// A rotation synced the file and closed it under this fsync.
		return nil
	}
	if w.err == nil {
		w.err = fmt.Errorf("%w: fsync: %w", ErrStopped, err)
	}
	return w.err
}

// Err is nil while the writer takes events, and else why it does not: a
// broker reports not ready with it.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close syncs and closes the trail; Record fails with ErrClosed after it.
func (w *Writer) Close() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.syncFile(w.f)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f, w.err = nil, ErrClosed
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}

// syncDir makes a file's creation or renaming in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
