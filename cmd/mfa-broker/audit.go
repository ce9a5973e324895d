package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/internal/cli"
)

const auditHelp = `
Usage:
  mfa-broker audit verify [--data-dir DIR] [--anchor SEQ:HASH]
  mfa-broker audit tail [--follow] [--lines N] [--json] [--data-dir DIR]

The broker records every decision that changes what a person or a relying
party can do in <data-dir>/audit: MFA outcomes, "not me" reports and the
blocks they cause, and operators' decisions on identities, peers and
blocks. Each event is one JSON line holding the SHA-256 hash of the line
before it; the file is rotated by size and the chain runs on across files.
Each replica keeps its own chain in its own data directory.

verify checks the chain through every file and prints how many events it
holds and the last one's hash; a break (an edited, removed or inserted
line) is named by file and line, with exit status 1. tail prints the newest
events, and with --follow (-f) every new one. Neither needs the broker; both
may run while it does.
`

var auditVerbs = map[string]string{
	"verify": "Usage: mfa-broker audit verify [--data-dir DIR] [--anchor SEQ:HASH]\n\nChecks the audit trail's chain through every file: exit status 1 at the first break,\nwhich it names by file and line. A last line a crash cut short is reported, not a break.\nThe last event's number and hash, written down elsewhere, are an anchor: verify\n--anchor SEQ:HASH later shows that the trail up to there was not rewritten.",
	"tail":   "Usage: mfa-broker audit tail [--follow] [--lines N] [--json] [--data-dir DIR]\n\nPrints the newest events of the audit trail, and with --follow (-f) every new one,\nacross rotations, until interrupted.",
}

func runAudit(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("audit: give a command: verify or tail (mfa-broker audit -h)")
	}
	verb := args[0]
	if isHelp(verb) {
		fmt.Fprintln(e.stdout, strings.TrimSpace(auditHelp))
		return nil
	}
	help, ok := auditVerbs[verb]
	if !ok {
		return cli.Usagef("audit: unknown command %q: use verify or tail", verb)
	}
	c := cli.New("mfa-broker audit "+verb, help, envPrefix, e.stdout)
	dataDir := service.DefaultConfig().DataDir
	c.Flags.StringVar(&dataDir, "data-dir", dataDir, "the broker's data directory; the trail is in its audit directory")
	if verb == "verify" {
		var anchors []audit.Anchor
		c.Flags.Func("anchor", "SEQ:HASH of an event written down earlier (verify printed it): the trail must hold it unchanged; may be repeated", func(v string) error {
			a, err := parseAnchor(v)
			anchors = append(anchors, a)
			return err
		})
		c.NoEnv["anchor"] = true
		if _, err := c.Parse(args[1:], e.getenv); err != nil {
			return err
		}
		return verifyAudit(e.stdout, service.AuditDir(dataDir), anchors)
	}
	var follow, asJSON bool
	var lines int
	c.Flags.BoolVar(&follow, "follow", false, "go on printing events as they are written, until interrupted")
	c.Flags.BoolVar(&follow, "f", false, "short for --follow")
	c.Flags.IntVar(&lines, "lines", 10, "how many of the newest events to print first; -1 for all")
	c.Flags.IntVar(&lines, "n", 10, "short for --lines")
	c.Flags.BoolVar(&asJSON, "json", false, "print the lines as they are in the file")
	// A forgotten MFA_FOLLOW must not make a script wait for ever.
	for _, name := range []string{"follow", "f", "lines", "n", "json"} {
		c.NoEnv[name] = true
	}
	if _, err := c.Parse(args[1:], e.getenv); err != nil {
		return err
	}
	if follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	return audit.Tail(ctx, service.AuditDir(dataDir), audit.TailOptions{Last: lines, Follow: follow}, func(en audit.Entry) error {
		if asJSON || !en.OK {
			_, err := fmt.Fprintf(e.stdout, "%s\n", en.Line)
			return err
		}
		_, err := fmt.Fprintln(e.stdout, formatEvent(en.Record))
		return err
	})
}

func parseAnchor(v string) (audit.Anchor, error) {
	seq, hash, ok := strings.Cut(v, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 || len(hash) != 64 || strings.Trim(strings.ToLower(hash), "0123456789abcdef") != "" {
		return audit.Anchor{}, fmt.Errorf("%q is not SEQ:HASH, an event's number and its 64 hex digit hash", v)
	}
	return audit.Anchor{Seq: n, Hash: strings.ToLower(hash)}, nil
}

// verifyAudit prints what Verify found, and fails on a break.
func verifyAudit(w io.Writer, dir string, anchors []audit.Anchor) error {
	r, err := audit.Verify(dir, anchors...)
	if errors.Is(err, audit.ErrNoTrail) {
		return fmt.Errorf("%w in %s: is --data-dir the broker's?", audit.ErrNoTrail, dir)
	}
	if err != nil {
		return err
	}
	switch {
	case r.Events == 0:
		fmt.Fprintf(w, "%s: %d file(s), no events", dir, r.Files)
	default:
		fmt.Fprintf(w, "%s: %d file(s), %d events (%d to %d)", dir, r.Files, r.Events, r.First, r.Last)
	}
	if r.Break != nil {
		fmt.Fprintln(w, " verified before the break")
		return fmt.Errorf("the audit chain is broken at %s line %d: %s", r.Break.File, r.Break.Line, r.Break.Reason)
	}
	fmt.Fprintln(w, ", the chain holds")
	if r.First > 1 {
		fmt.Fprintf(w, "the trail starts at event %d: the files before it were removed\n", r.First)
	}
	if r.Torn != nil {
		fmt.Fprintf(w, "the last line (%s line %d, %d bytes) was cut short by a crash; the broker drops it when it starts\n", r.Torn.File, r.Torn.Line, r.Torn.Bytes)
	}
	if r.Events > 0 {
		fmt.Fprintf(w, "last event %d:%s\n", r.Last, r.Head)
	}
	return nil
}

// formatEvent is an event on one line: time, number, kind, and the fields
// it has.
func formatEvent(r audit.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %6d %s", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Seq, r.Kind)
	ev := r.Event
	for _, f := range []struct{ name, value string }{
		{"code", ev.Code}, {"request", ev.Request}, {"person", ev.Person},
		{"requester", ev.Requester}, {"remote", ev.Remote}, {"decision", ev.Decision}, {"device", ev.Device},
		{"peer", ev.Peer}, {"domain", ev.Domain}, {"identity", ev.Identity}, {"action", ev.Action},
		{"from", ev.From}, {"to", ev.To}, {"block", ev.Block},
	} {
		if f.value != "" {
			fmt.Fprintf(&b, " %s=%s", f.name, f.value)
		}
	}
	if ev.Order {
		b.WriteString(" order")
	}
	if !ev.Until.IsZero() {
		fmt.Fprintf(&b, " until=%s", ev.Until.UTC().Format(time.RFC3339))
	}
	if ev.Dropped > 0 {
		fmt.Fprintf(&b, " dropped=%d", ev.Dropped)
	}
	return b.String()
}
