package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Report is what Verify found.
type Report struct {
	Files int
	// Events is how many lines verified; First and Last are the Seq of the
	// first and last of them. A First above 1 means the files before it
	// are gone (removed, for space or otherwise): the chain is checked
	// from there on.
	Events      int
	First, Last uint64
	// Head is the hash of the last verified line: written down elsewhere
	// with Last, it lets a later Verify show the trail up to there was not
	// rewritten (Anchor).
	Head string
	// Torn is a last line a crash cut short; the chain holds up to it.
	Torn *Torn
	// Break is where the chain does not hold; nil when it does.
	Break *Break
}

// Torn is the torn tail: the file, the line it starts on, and its length.
type Torn struct {
	File  string
	Line  int
	Bytes int
}

// Break is the first place where the chain does not hold: the file, the
// line (from 1), and why.
type Break struct {
	File   string
	Line   int
	Reason string
}

func (b *Break) Error() string {
	return fmt.Sprintf("%s line %d: %s", b.File, b.Line, b.Reason)
}

// Anchor is a line's Seq and hash, kept outside the trail.
type Anchor struct {
	Seq  uint64
	Hash string
}

// Verify checks the chain of every file of the trail in dir, in order:
// each line is an event whose Seq follows the one before and whose Prev
// is the hash of the line before, across files; each rotated file ends
// with the event its name says. A last line cut short, in the last file,
// is reported as Torn, not as a break. With anchors, the line of each
// anchor's Seq must have its hash. The error is for a trail that could not
// be read; a broken chain is the report's Break.
func Verify(dir string, anchors ...Anchor) (Report, error) {
	files, err := listFiles(dir)
	if err != nil {
		return Report{}, err
	}
	v := verifier{report: Report{Files: len(files)}, anchors: map[uint64]string{}}
	for _, a := range anchors {
		v.anchors[a.Seq] = a.Hash
	}
	for _, tf := range files {
		if err := v.file(tf); err != nil {
			return v.report, err
		}
		if v.report.Break != nil {
			return v.report, nil
		}
	}
	for seq := range v.anchors {
		if v.report.Events == 0 || seq < v.report.First || seq > v.report.Last {
			v.fail(&Break{File: dir, Reason: fmt.Sprintf("the anchored event %d is not in the trail (it holds %d to %d): the trail was cut short", seq, v.report.First, v.report.Last)})
			break
		}
	}
	return v.report, nil
}

// verifier carries the chain from line to line and file to file.
type verifier struct {
	report  Report
	anchors map[uint64]string
	// torn is a line that can only be the torn tail: it is one if no
	// line follows it.
	torn *Torn
}

func (v *verifier) fail(b *Break) {
	if v.report.Break == nil {
		v.report.Break = b
	}
}

func (v *verifier) file(tf trailFile) error {
	f, err := os.Open(tf.path)
	if err != nil {
		return err
	}
	defer f.Close()
	name := filepath.Base(tf.path)
	r := newLineReader(f)
	var lastInFile uint64
	for n := 1; ; n++ {
		line, complete, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if v.torn != nil {
			// Something follows it: it was not the last line.
			v.fail(&Break{File: v.torn.File, Line: v.torn.Line, Reason: "the line is not an event, and lines follow it"})
			return nil
		}
		rec, ok := parseLine(line)
		if !complete || !ok {
			v.torn = &Torn{File: name, Line: n, Bytes: len(line)}
			continue
		}
		if why := v.follows(rec, line); why != "" {
			v.fail(&Break{File: name, Line: n, Reason: why})
			return nil
		}
		lastInFile = rec.Seq
	}
	if tf.last != 0 {
		switch {
		case v.torn != nil:
			v.fail(&Break{File: name, Line: v.torn.Line, Reason: "a rotated file ends with a line that is not an event: it was changed after it was rotated"})
		case lastInFile != tf.last:
			v.fail(&Break{File: name, Reason: fmt.Sprintf("the file is named for event %d but ends with event %d: it was renamed or cut short", tf.last, lastInFile)})
		}
		return nil
	}
	v.report.Torn = v.torn
	return nil
}

// follows checks that rec, read from line, comes right after the line
// before it, and says why not.
func (v *verifier) follows(rec Record, line []byte) string {
	rp := &v.report
	switch {
	case rp.Events == 0 && rec.Seq == 1 && rec.Prev != "":
		return "the first event names a line before it"
	case rp.Events > 0 && rec.Seq != rp.Last+1:
		return fmt.Sprintf("event %d follows event %d: events were removed, or lines edited", rec.Seq, rp.Last)
	case rp.Events > 0 && rec.Prev != rp.Head:
		return fmt.Sprintf("its prev is not the hash of the line before it (event %d): that line was edited, or lines between them removed", rp.Last)
	}
	hash := Hash(line)
	if want, ok := v.anchors[rec.Seq]; ok && want != hash {
		return fmt.Sprintf("event %d does not have the anchored hash %s: the trail was rewritten up to here", rec.Seq, want)
	}
	if rp.Events == 0 {
		rp.First = rec.Seq
	}
	rp.Events++
	rp.Last, rp.Head = rec.Seq, hash
	return ""
}
