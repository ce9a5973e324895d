package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/term"

	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/notify"
)

const listenHelp = `
Usage: mfa-device listen [--auto approve|deny|not-me] [--auto-delay 0s] [--nats-url URL] [--style auto]

Connects to the broker's NATS server (reconnecting for as long as it runs),
receives the MFA requests pushed to this device, including those pushed
while it was offline and not yet expired, and shows them one at a time:
who asks (verified requesters by name and LegalId, others by IP address),
the Reason rendered as markdown, the broker, and a countdown to expiry
(live on a terminal). Type a to approve, d to deny, or n to deny and
report the request as not yours (someone else is trying; the broker then
blocks that requester from asking you for a while); the answer is signed
with the device key, and the broker's verdict is shown. A request answered
on another device, cancelled by the requester, or expired is taken off the
screen with a note. More requests wait in a queue. Ctrl-C stops.

A request with number matching offers three numbers:

  Pick the number Example Bank shows you:  [17]  [42]  [88]

The requester shows its user one of them. To approve, type that number
(a alone does not approve such a request); d denies and n reports it as
not yours, as for any request. A number not offered is refused and the
request stays. Picking one of the other numbers offered ends the request
as denied: the device says "wrong number". The broker is told when a
request is on the screen (not while it waits in the queue), and the
requester may tell its user so.

Input typed before a request appeared, or within half a second of it
appearing, is not taken as an answer to it.

--style auto asks the terminal for its background colour and shows the
Reason in the light or the dark style to match (COLORFGBG is read when the
terminal does not say; dark when neither tells). --style light or dark
chooses; notty shows no colours, as when the output is not a terminal.

With --auto, every request is answered with the given decision after
--auto-delay, and stdout gets one line per event. These lines are stable;
scripts may parse them:

  prompt <RequestId> from verified <LegalId> "<Name>": <first line of Reason>
  prompt <RequestId> from unverified <RemoteIp>: <first line of Reason>
  prompt <RequestId> from <requester as above> [choices 17 42 88]: <…>
                                  a request with number matching, and the
                                  numbers it offers
  approved <RequestId>            the broker accepted the approval
  denied <RequestId>              the broker accepted the denial
  not-me <RequestId>              the broker accepted the "not me" denial
  wrong-number <RequestId>        the broker accepted the approval, but the
                                  number picked was not the one the
                                  requester shows: the request was denied
  refused <RequestId>: <why>      the broker refused the answer
  withdrawn <RequestId>: <why>    withdrawn before it was answered; <why>
                                  is answered, timeout, cancelled,
                                  shutdown, superseded or ended
  expired <RequestId>             expired before it was answered
  unanswered <RequestId>: <why>   left unanswered: it needs a number, and
                                  standard input has none ("needs a number
                                  and standard input has none") or the line
                                  read is not one of the choices
  failed <RequestId>: <error>     the answer could not be delivered

<Name> is a Go-quoted string; <RemoteIp> is - when unknown. The choices,
two-digit numbers separated by spaces, come before the colon: everything
after it is the requester's text. Connection notes go to stderr. --auto is
never read from the environment. The broker is told when the prompt line
is printed, as when a prompt is on the screen.

--auto deny and --auto not-me answer every request, with number matching
or not, and never read standard input. --auto approve reads standard input
only for requests with number matching: each takes the next line, in the
order of their prompt lines, as the number to pick (a withdrawn or expired
one takes its line too, unused). Write the number the requester shows to
approve, another of the choices to pick the wrong one, anything else to
leave the request unanswered. At the end of standard input such requests
are left unanswered. Requests without number matching are approved
without reading anything.
`

func cmdListen(ctx context.Context, e env, g globalFlags, args []string) error {
	c := newCommand(e, g, "listen", listenHelp)
	autoFlag := c.Flags.String("auto", "", "answer every request automatically: approve, deny or not-me (command line only)")
	// A forgotten MFA_DEVICE_AUTO=approve in a shell would silently approve
	// every request; answering blindly must be asked for explicitly.
	c.NoEnv["auto"] = true
	delay := c.Flags.Duration("auto-delay", 0, "with --auto: how long to wait before answering")
	natsURL := c.Flags.String("nats-url", "", "NATS URL to connect to (default: the one in device.json)")
	style := c.Flags.String("style", styleAuto, "how the Reason is shown: auto (on a terminal, the style for its background, which it is asked for; no colours otherwise), or one of "+strings.Join(styleNames(), ", "))
	if err := c.parse(args, e.getenv); err != nil {
		return err
	}
	var decision notify.Decision
	if *autoFlag != "" {
		d, err := notify.ParseDecision(*autoFlag)
		if err != nil {
			return cli.Usagef("--auto: %v", err)
		}
		decision = d
	}
	if *delay < 0 {
		return cli.Usagef("--auto-delay must not be negative")
	}
	cfg, key, err := c.g.loadDevice(e.getenv)
	if err != nil {
		return err
	}
	brokerKey, err := cfg.brokerKey()
	if err != nil {
		return err
	}
	if *natsURL == "" {
		*natsURL = cfg.NATSURL
	}
	if err := checkNATSURL(*natsURL); err != nil {
		return err
	}

	outFd, outTTY := terminalFd(e.stdout)
	interactive := decision == ""
	var md *markdown
	if interactive {
		*style = chooseStyle(*style, outTTY, terminalBackground(e.stdin, e.stdout), e.getenv)
		width := 78
		if outTTY {
			if w, _, err := term.GetSize(outFd); err == nil {
				width = min(max(w-len(reasonGutter), 20), 100)
			}
		}
		if md, err = newMarkdown(*style, width); err != nil {
			return err
		}
	}

	notes := &notifier{w: &lineWriter{w: e.stderr}}
	warnIfNotUsable(ctx, cfg, notes.note)
	nc, err := connectNATS(ctx, *natsURL, cfg.CAFile, key, notes)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer nc.Close()
	dev, err := notify.NewDevice(nc, notify.DeviceConfig{
		LegalID: cfg.LegalID, Key: key, BrokerKey: brokerKey, Logger: notes.logger(),
	})
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := dev.Start(ctx); err != nil {
		if !syncFailure(err) {
			return err
		}
		// Live pushes still arrive; missed ones come with the next sync.
		notes.note(fmt.Sprintf("could not fetch requests pushed while offline (%v); listening anyway", err))
	}
	// Device.Start installed a handler that syncs after a reconnect; ours
	// says so and then runs it.
	syncAfterReconnect := nc.ReconnectHandler()
	nc.SetReconnectHandler(func(c *nats.Conn) {
		notes.send(notice{text: "reconnected to NATS at " + c.ConnectedUrlRedacted(), conn: connOnline})
		if syncAfterReconnect != nil {
			syncAfterReconnect(c)
		}
	})
	notes.note(fmt.Sprintf("listening for requests to %s (device %s) on %s", cfg.LegalID, dev.ID(), nc.ConnectedUrlRedacted()))

	if !interactive {
		a := &autoAnswerer{out: &lineWriter{w: e.stdout}, decision: decision, delay: *delay, answer: dev.AnswerMatch, reportShown: dev.Shown}
		if decision == notify.Approve {
			// Only approvals need a number; a denial reads nothing, so a
			// script that denies need not feed standard input.
			a.picks = readLines(ctx, e.stdin, time.Now)
		}
		err = a.run(ctx, dev.Events())
	} else {
		err = runInteractive(ctx, e, md, dev, notes, outFd, outTTY)
	}
	if errors.Is(err, errEventsClosed) && ctx.Err() != nil {
		return nil
	}
	return err
}

func runInteractive(ctx context.Context, e env, md *markdown, dev *notify.Device, notes *notifier, outFd int, outTTY bool) error {
	inFd, inTTY := terminalFd(e.stdin)
	var s screen = &plainScreen{w: e.stdout}
	if outTTY {
		t := &ttyScreen{w: e.stdout, echo: inTTY, size: func() (int, int) {
			w, h, err := term.GetSize(outFd)
			if err != nil {
				return 80, 0
			}
			return w, h
		}}
		if inTTY {
			t.flush = flushInput(inFd)
		}
		s = t
	}
	clk := realClock{}
	ui := newPromptUI(s, md.render, clk, dev.AnswerMatch)
	ui.reportShown = dev.Shown
	ui.color = outTTY
	// From here on, notes go through the UI so they do not break up the
	// prompt on the screen.
	ch := notes.redirect()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return ui.run(ctx, dev.Events(), readLines(ctx, e.stdin, clk.Now), ch)
}

// terminalFd reports whether v is a terminal, and its descriptor.
func terminalFd(v any) (int, bool) {
	f, ok := v.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// connectNATS connects with the device's identity key, retrying until it
// succeeds or ctx ends, and stays connected: once up, the client reconnects
// by itself forever. A device whose identity is not approved yet is refused
// by the broker; it keeps trying, so it starts working once approved.
func connectNATS(ctx context.Context, natsURL, caFile string, key ed25519.PrivateKey, n *notifier) (*nats.Conn, error) {
	auth, err := notify.DeviceConnectOptions(key)
	if err != nil {
		return nil, err
	}
	if caFile != "" {
		auth = append(auth, nats.RootCAs(caFile))
	}
	opts := append(auth,
		nats.Name("mfa-device"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2*time.Second),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if c.IsClosed() {
				return // our own Close
			}
			if err != nil {
				n.send(notice{text: fmt.Sprintf("disconnected from NATS (%v); reconnecting…", err), conn: connOffline})
			} else {
				n.send(notice{text: "disconnected from NATS; reconnecting…", conn: connOffline})
			}
		}),
	)
	wait := time.Second
	for {
		nc, err := nats.Connect(natsURL, opts...)
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			n.note(fmt.Sprintf("the broker's NATS refuses this device: its identity must be Approved and valid ('mfa-device status'); retrying in %s", wait))
		} else {
			n.note(fmt.Sprintf("cannot reach NATS at %s (%v); retrying in %s", redactURL(natsURL), err, wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// redactURL hides a password in a NATS URL before it is printed.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// syncFailure reports whether Device.Start failed only in fetching missed
// pushes, which the device survives, rather than in subscribing.
func syncFailure(err error) bool { return errors.Is(err, notify.ErrSync) }

// warnIfNotUsable tells the person when requests cannot reach the device
// yet, such as before an operator approved the identity. It is only
// advice: when the broker cannot be asked, it says nothing.
func warnIfNotUsable(ctx context.Context, cfg deviceConfig, note func(string)) {
	client, err := newBrokerClient(cfg.BrokerURL, cfg.CAFile)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pub, err := client.identity(ctx, cfg.LegalID)
	if err != nil {
		return
	}
	if u := usable(pub, time.Now()); u != "yes" {
		note(fmt.Sprintf("identity %s cannot be asked yet: %s", cfg.LegalID, strings.TrimSuffix(strings.TrimPrefix(u, "no ("), ")")))
	}
}

// notifier carries notes (connection state, warnings) to stderr, or into
// the prompt UI once it runs.
type notifier struct {
	w  *lineWriter
	mu sync.Mutex
	ch chan notice
}

func (n *notifier) note(s string) { n.send(notice{text: s}) }

func (n *notifier) send(nt notice) {
	n.mu.Lock()
	ch := n.ch
	n.mu.Unlock()
	if ch == nil {
		n.w.printf("%s", sanitizeLine(nt.text))
		return
	}
	select {
	case ch <- nt:
	default: // the UI is busy or gone; a note is not worth blocking NATS
	}
}

func (n *notifier) redirect() <-chan notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ch = make(chan notice, 64)
	return n.ch
}

// logger turns the device's warnings (such as a push with a bad signature)
// into notes.
func (n *notifier) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(noteWriter{n}, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

type noteWriter struct{ n *notifier }

func (w noteWriter) Write(p []byte) (int, error) {
	w.n.note(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
