package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// CurrentFile is the file being written; a rotated file is named for the
// last event it holds, zero-padded so that names sort in chain order.
const CurrentFile = "audit.jsonl"

// maxLineBytes bounds a line a reader takes for an event: a longer one is
// not one the writer made.
const maxLineBytes = 1 << 20

// ErrNoTrail: the directory holds no audit trail.
var ErrNoTrail = errors.New("no audit trail")

var rotatedPattern = regexp.MustCompile(`^audit-([0-9]{20})\.jsonl$`)

func rotatedName(lastSeq uint64) string { return fmt.Sprintf("audit-%020d.jsonl", lastSeq) }

// trailFile is one file of the trail; last is the Seq a rotated file's
// name says it ends with, 0 for the current file.
type trailFile struct {
	path string
	last uint64
}

// listFiles lists the trail's files in chain order: the rotated ones, then
// the current one when it exists. Other files in dir are not the trail's.
func listFiles(dir string) ([]trailFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoTrail, dir)
	}
	if err != nil {
		return nil, err
	}
	var files []trailFile
	current := false
	for _, e := range entries {
		if e.Name() == CurrentFile {
			current = true
			continue
		}
		if m := rotatedPattern.FindStringSubmatch(e.Name()); m != nil {
			seq, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil {
				continue
			}
			files = append(files, trailFile{path: filepath.Join(dir, e.Name()), last: seq})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].last < files[j].last })
	if current {
		files = append(files, trailFile{path: filepath.Join(dir, CurrentFile)})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoTrail, dir)
	}
	return files, nil
}

// parseLine reads a line (without its newline) as a record.
func parseLine(line []byte) (Record, bool) {
	var r Record
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &r) != nil || r.Seq == 0 || r.Kind == "" {
		return Record{}, false
	}
	return r, true
}

// lineReader reads a file's lines. A line longer than maxLineBytes is
// returned cut short (and so does not parse); the bytes after the last
// newline are returned with complete false.
type lineReader struct {
	r *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next returns the next line without its newline; io.EOF when there is
// none.
func (lr *lineReader) next() (line []byte, complete bool, err error) {
	var buf []byte
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(buf) < maxLineBytes {
			buf = append(buf, chunk[:min(len(chunk), maxLineBytes-len(buf))]...)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf, []byte{'\n'}), true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, false, nil
		default:
			return nil, false, err
		}
	}
}
