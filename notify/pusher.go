package notify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/loglimit"
)

// Errors Ask returns besides the caller's own context error.
var (
	// ErrExpired: nobody answered before the request expired.
	ErrExpired = errors.New("no answer before the request expired")
	// ErrClosed: the pusher is shutting down.
	ErrClosed = errors.New("push service is shutting down")
	// ErrUnavailable: no push could be delivered to NATS.
	ErrUnavailable = errors.New("push service unavailable")
	// ErrSuperseded: a newer request for the same identity replaced this
	// one, so that a person is never asked two things at once.
	ErrSuperseded = errors.New("superseded by a newer request for the same identity")
)

// publishTimeout bounds the pusher's waits on NATS: setting up its
// subscriptions, and flushing the last withdrawals when it closes.
const publishTimeout = 5 * time.Second

// Pusher is the broker's side of the protocol: it pushes a request to the
// devices of the identities asked, waits for the first valid signed answer,
// and withdraws the request from every other device when it ends. Pending
// requests live in its memory; a device that syncs gets them from here.
type Pusher struct {
	nc             *nats.Conn
	key            ed25519.PrivateKey
	withdrawSecret []byte
	domain         string
	instance       string
	log            *slog.Logger
	publishTimeout time.Duration
	// refusals logs what devices sent that was refused, rate-limited.
	refusals *slog.Logger
	// answerRates bounds each device's answers per second.
	answerRates *deviceRates
	obs         Observer

	mu       sync.Mutex
	pending  map[string]*pendingRequest
	byDevice map[string]map[string]*pendingRequest // device → request ID → request
	subs     []*nats.Subscription
	closed   chan struct{}
	asks     sync.WaitGroup
}

type pendingRequest struct {
	id      string
	issued  time.Time
	expires time.Time
	devices map[string]*pendingDevice // by device ID
	// ended is signalled once when an answer wins or a newer request
	// supersedes this one. winner is the device whose answer won (its
	// receipt told it, so it gets no withdrawal), outcome what it
	// answered. All are set under Pusher.mu, and read by the waiter after
	// the signal.
	ended      chan struct{}
	winner     string
	outcome    Outcome
	superseded bool
	// pushed is when the pushes were handed to NATS, answered when the
	// winning answer arrived.
	pushed, answered time.Time
	// onProgress hears the stages devices report (Question.OnProgress);
	// reached is the furthest so far, outdated the devices whose app was
	// found outdated. Both under Pusher.mu.
	onProgress func(Progress)
	reached    Stage
	outdated   map[string]bool
	// match is the number the relying party shows, "" without matching.
	match string
}

// decided reports whether an answer won or a newer request superseded
// this one; Pusher.mu is held.
func (r *pendingRequest) decided() bool { return r.winner != "" || r.superseded }

type pendingDevice struct {
	target    Target
	push      Push
	pushBytes []byte
	signature []byte // the broker's, over pushBytes; kept to resend on a sync
}

// Target is one identity whose device is asked.
type Target struct {
	LegalID   string
	PublicKey ed25519.PublicKey
}

// Question is one MFA request to push.
type Question struct {
	RequestID string
	Targets   []Target
	Reason    string
	Requester Requester
	Expires   time.Time
	// MatchChoices, when set, make every device ask the person to pick one
	// (Push.MatchChoices); Match is the right one, which the relying party
	// shows and no device is sent. An approval picking another ends the
	// request as Outcome.WrongNumber.
	MatchChoices []string
	Match        string
	// OnProgress, when set, hears each new stage a device reports for
	// this request. It is called on the pusher's message handlers and
	// must not block.
	OnProgress func(Progress)
}

// Outcome is the first valid answer: the decision and the evidence for it.
type Outcome struct {
	Decision   Decision
	LegalID    string
	PublicKey  ed25519.PublicKey
	SignedData []byte
	Signature  []byte
	Push       []byte
	// Match is the number picked, for a request with MatchChoices;
	// WrongNumber is set when an approval picked another than
	// Question.Match: the person approved what someone else asked.
	Match       string
	WrongNumber bool
	// Waited is from the push's hand-over to NATS to the arrival of the
	// answer that decided, or to the end of the wait without one: the
	// person's time, the devices' and the network's, which the broker
	// spends waiting rather than working.
	Waited time.Duration
}

// PusherOption configures a Pusher.
type PusherOption func(*Pusher)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) PusherOption { return func(p *Pusher) { p.log = l } }

// NewPusher sets up the broker's subscriptions on nc, which should be made
// with nats.NoEcho: the pusher need not hear its own pushes. key signs
// every push; domain names the broker in them.
func NewPusher(ctx context.Context, nc *nats.Conn, key ed25519.PrivateKey, domain string, opts ...PusherOption) (*Pusher, error) {
	p := &Pusher{
		nc: nc, key: key, domain: domain,
		withdrawSecret: newSecret(),
		instance:       NewInstanceID(),
		log:            slog.Default(),
		obs:            nopObserver{},
		publishTimeout: publishTimeout,
		pending:        make(map[string]*pendingRequest),
		byDevice:       make(map[string]map[string]*pendingRequest),
		closed:         make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	// What devices send, any device can send as often as it likes: its
	// refusals are logged a few a minute, not once each.
	p.refusals = slog.New(loglimit.New(p.log.Handler(), time.Minute, refusalLogBurst))
	p.answerRates = newDeviceRates()
	subscribe := []struct {
		subject string
		handle  nats.MsgHandler
		// workers > 1 makes that many subscriptions in a queue group of
		// this process alone, each handling its share of the messages on a
		// goroutine of its own; other replicas still get every message.
		workers int
	}{
		// Answers are checked in parallel: on one goroutine a burst of them
		// would queue behind each other's Ed25519 verification, and so
		// would the wake-up of every request they decide. The first valid
		// answer still wins, under p.mu.
		{answerPrefix + "*." + p.instance, p.handleAnswer, max(2, runtime.GOMAXPROCS(0))},
		// Every broker hears every sync: the requests a device missed may
		// be pending at any replica, each holding its own.
		{syncPrefix + "*", p.handleSync, 1},
		// Every broker hears the others' pushes: a newer request for a
		// device ends the older one whichever replica holds it.
		{pushPrefix + "*", p.handleOthersPush, 1},
	}
	for _, s := range subscribe {
		for range s.workers {
			var sub *nats.Subscription
			var err error
			if s.workers > 1 {
				sub, err = nc.QueueSubscribe(s.subject, p.instance, s.handle)
			} else {
				sub, err = nc.Subscribe(s.subject, s.handle)
			}
			if err != nil {
				p.unsubscribe()
				return nil, fmt.Errorf("subscribe to %s: %w", s.subject, err)
			}
			p.subs = append(p.subs, sub)
		}
	}
	flushCtx, cancel := context.WithTimeout(ctx, p.publishTimeout)
	defer cancel()
	if err := nc.FlushWithContext(flushCtx); err != nil {
		p.unsubscribe()
		return nil, fmt.Errorf("flush subscriptions: %w", err)
	}
	return p, nil
}

// PublicKey is the key devices verify pushes with.
func (p *Pusher) PublicKey() ed25519.PublicKey { return p.key.Public().(ed25519.PublicKey) }

// Ask pushes q to every target's device and waits for the first valid
// answer, until q.Expires (ErrExpired), ctx ends (its error), a newer
// request for one of the identities replaces it (ErrSuperseded), or the
// pusher closes (ErrClosed). However it ends, every device asked is told to
// withdraw, except the one whose answer won. Once the push went out, the
// Outcome's Waited says how long the request waited, whatever the error.
func (p *Pusher) Ask(ctx context.Context, q Question) (Outcome, error) {
	req, err := p.open(q)
	if err != nil {
		return Outcome{}, err
	}
	return p.conclude(ctx, req)
}

// Opened is a request whose pushes went out, for a caller that answers
// before the person does (an order) and awaits the outcome later.
type Opened struct {
	p   *Pusher
	req *pendingRequest
}

// Open pushes q as Ask does, and returns once the pushes went out.
// Await must follow: until it returns, the request holds its place among
// the pending ones.
func (p *Pusher) Open(q Question) (*Opened, error) {
	req, err := p.open(q)
	if err != nil {
		return nil, err
	}
	return &Opened{p: p, req: req}, nil
}

// Await is the rest of Ask for an opened request: it waits for the first
// valid answer and ends the request as Ask does.
func (o *Opened) Await(ctx context.Context) (Outcome, error) { return o.p.conclude(ctx, o.req) }

// conclude waits for an opened request to end, and withdraws it.
func (p *Pusher) conclude(ctx context.Context, req *pendingRequest) (Outcome, error) {
	why, err := p.await(ctx, req)
	ended := time.Now()
	p.finish(req, why)
	if err != nil {
		return Outcome{Waited: ended.Sub(req.pushed)}, err
	}
	out := req.outcome
	out.Waited = req.answered.Sub(req.pushed)
	return out, nil
}

// open registers and pushes a request. It is apart from await so that the
// goroutine of a request waiting for a person parks in small stack frames:
// the runtime then halves its stack (16 KiB → 8 KiB per pending request).
func (p *Pusher) open(q Question) (*pendingRequest, error) {
	now := time.Now()
	_, tokenHash := withdrawToken(p.withdrawSecret, q.RequestID)
	req := &pendingRequest{
		id:      q.RequestID,
		issued:  now,
		expires: q.Expires,
		devices: make(map[string]*pendingDevice, len(q.Targets)),
		ended:   make(chan struct{}, 1),

		onProgress: q.OnProgress,
		match:      q.Match,
	}
	issued := now.UTC().Format(TimeFormat)
	for _, t := range q.Targets {
		dev := identity.DeviceIDOf(t.PublicKey)
		push := Push{
			Version: ProtocolVersion, RequestID: q.RequestID, LegalID: t.LegalID, Broker: p.domain,
			Reason: q.Reason, Requester: q.Requester, Issued: issued,
			Expires:       q.Expires.UTC().Format(TimeFormat),
			AnswerSubject: AnswerSubject(dev, p.instance),
			WithdrawHash:  tokenHash,
			MatchChoices:  q.MatchChoices,
		}
		body := marshal(push)
		req.devices[dev] = &pendingDevice{target: t, push: push, pushBytes: body, signature: signMessage(p.key, kindPush, body)}
	}

	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	p.pending[q.RequestID] = req
	for dev := range req.devices {
		if p.byDevice[dev] == nil {
			p.byDevice[dev] = make(map[string]*pendingRequest)
		}
		p.byDevice[dev][q.RequestID] = req
	}
	p.asks.Add(1)
	p.mu.Unlock()

	// The older requests held here end now; those held by other replicas
	// end when they hear the push.
	for dev := range req.devices {
		p.endOlder(dev, req.id, req.issued.UnixNano())
	}
	req.pushed = time.Now()
	if err := p.publishPushes(req); err != nil {
		p.finish(req, WhyCancelled)
		return nil, err
	}
	return req, nil
}

// finish forgets a request that has ended and withdraws it.
func (p *Pusher) finish(req *pendingRequest, why string) {
	p.mu.Lock()
	delete(p.pending, req.id)
	for dev := range req.devices {
		delete(p.byDevice[dev], req.id)
		if len(p.byDevice[dev]) == 0 {
			delete(p.byDevice, dev)
		}
	}
	winner := req.winner
	p.mu.Unlock()
	p.withdraw(req, why, winner)
	p.asks.Done()
}

// await waits for the first of: an answer (req.outcome), expiry, the
// caller leaving, a newer request, shutdown; and says why the request
// ended. Its frame and Ask's are what a waiting request's goroutine keeps
// on its stack, so nothing large lives in them.
func (p *Pusher) await(ctx context.Context, req *pendingRequest) (why string, err error) {
	timer := time.NewTimer(time.Until(req.expires))
	defer timer.Stop()
	select {
	case <-req.ended:
		if req.superseded {
			return WhySuperseded, ErrSuperseded
		}
		return WhyAnswered, nil
	case <-timer.C:
		return WhyTimeout, ErrExpired
	case <-ctx.Done():
		return WhyCancelled, ctx.Err()
	case <-p.closed:
		return WhyShutdown, ErrClosed
	}
}

// publishPushes sends each push on core NATS: a device that is online gets
// it at once, one that connects later asks for it with a sync. It fails
// only if no push could be handed to NATS.
func (p *Pusher) publishPushes(req *pendingRequest) error {
	// While NATS is away a publish would sit in the reconnect buffer and
	// the request would wait for an answer that cannot come: say so now.
	if !p.nc.IsConnected() {
		p.obs.Pushes(0, len(req.devices), false)
		return fmt.Errorf("%w: NATS is %s", ErrUnavailable, p.nc.Status())
	}
	var failures []error
	for dev, d := range req.devices {
		if err := p.nc.PublishMsg(p.pushMessage(dev, req, d)); err != nil {
			p.log.Warn("push not sent", "request", req.id, "device", dev, "err", err)
			failures = append(failures, err)
		}
	}
	p.obs.Pushes(len(req.devices)-len(failures), len(failures), false)
	if len(failures) == len(req.devices) {
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(failures...))
	}
	return nil
}

func (p *Pusher) pushMessage(dev string, req *pendingRequest, d *pendingDevice) *nats.Msg {
	m := message(PushSubject(dev), kindPush, d.pushBytes)
	m.Header.Set(headerSignature, encodeSignature(d.signature))
	m.Header.Set(headerRequest, req.id)
	m.Header.Set(headerIssued, strconv.FormatInt(req.issued.UnixNano(), 10))
	return m
}

func message(subject, kind string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(headerKind, kind)
	return m
}

// withdraw tells the devices asked, except the one whose answer won, that
// the request is over. The withdrawal carries the token the push committed
// to instead of a signature. It is fire-and-forget: a device that misses
// it is told when it next syncs, and its prompt expires anyway.
func (p *Pusher) withdraw(req *pendingRequest, why, except string) {
	var body []byte // made only if some device is to be told: usually none is
	n := 0
	for dev := range req.devices {
		if dev == except {
			continue
		}
		if body == nil {
			body = p.withdrawal(req.id, why)
		}
		p.publishWithdrawal(dev, req.id, body)
		n++
	}
	p.obs.Withdrawals(why, n)
}

// withdrawal is the body of a request's withdrawal, with its token.
func (p *Pusher) withdrawal(requestID, why string) []byte {
	token, _ := withdrawToken(p.withdrawSecret, requestID)
	return marshal(Withdrawal{Version: ProtocolVersion, RequestID: requestID, Why: why, Token: token})
}

func (p *Pusher) publishWithdrawal(dev, requestID string, body []byte) {
	if err := p.nc.PublishMsg(message(PushSubject(dev), kindWithdraw, body)); err != nil {
		p.log.Warn("withdrawal not sent", "request", requestID, "device", dev, "err", err)
	}
}

// handleAnswer verifies a device's answer. Forged, foreign, replayed, late
// and duplicate answers are refused and change nothing; the device is told
// why.
func (p *Pusher) handleAnswer(m *nats.Msg) {
	if m.Header.Get(headerKind) == kindReceipt {
		p.handleReceipt(m)
		return
	}
	arrived := time.Now() // checking it is the broker's work, not waiting
	reply := func(err error) {
		r := AnswerReply{Accepted: err == nil}
		if err != nil {
			r.Error = err.Error()
		}
		if m.Reply != "" {
			if rerr := m.Respond(marshal(r)); rerr != nil {
				p.log.Debug("answer receipt not sent", "err", rerr)
			}
		}
	}
	out, dev, requestID, err := p.checkAnswer(m, arrived)
	if err != nil {
		p.obs.AnswerRefused(refusalReason(err))
	}
	if errors.Is(err, errOutdatedApp) {
		// Not the device's fault, and no flood: the person pressed approve.
		p.progress(requestID, dev, Progress{Outdated: true})
		reply(err)
		return
	}
	if err != nil {
		p.answerRates.spend(dev, arrived)
		// requestID is a well-formed one or "": a device's arbitrary text
		// goes to no log.
		p.refusals.Info("answer refused", "device", dev, "request", requestID, "err", err)
		reply(err)
		return
	}
	p.mu.Lock()
	req := p.pending[requestID]
	accepted := req != nil && !req.decided()
	if accepted {
		out.WrongNumber = req.match != "" && out.Decision == Approve && out.Match != req.match
		req.winner = dev
		req.outcome = out
		req.answered = arrived
		// Counted before the waiter wakes: by the time anyone reads the
		// outcome, the metrics have it.
		p.obs.AnswerAccepted(string(out.Decision))
		req.ended <- struct{}{}
	}
	p.mu.Unlock()
	if !accepted {
		p.obs.AnswerRefused(RefusedLate)
		reply(errors.New("the request has already been answered or is over"))
		return
	}
	if m.Reply != "" {
		if rerr := m.Respond(marshal(AnswerReply{Accepted: true, WrongNumber: out.WrongNumber})); rerr != nil {
			p.log.Debug("answer receipt not sent", "err", rerr)
		}
	}
}

// errOutdatedApp refuses an approval without a number to a push that
// needs one: the device's app predates number matching.
var errOutdatedApp = errors.New("this request needs the number the requester shows, and this app cannot ask for it: update the app")

// handleReceipt hears a device report how far a push has got. Receipts
// for requests not pending here, or from devices not asked, count against
// the device like refused answers.
func (p *Pusher) handleReceipt(m *nats.Msg) {
	now := time.Now()
	dev, _, ok := parseAnswerSubject(m.Subject)
	if !ok || !p.answerRates.allowed(dev, now) {
		return
	}
	var r receipt
	if len(m.Data) > maxAnswerBytes || json.Unmarshal(m.Data, &r) != nil || !IsRequestID(r.RequestID) ||
		(r.Stage != StageDelivered && r.Stage != StageShown) {
		p.answerRates.spend(dev, now)
		p.refusals.Info("malformed receipt refused", "device", dev)
		return
	}
	if !p.progress(r.RequestID, dev, Progress{Stage: r.Stage}) {
		p.answerRates.spend(dev, now)
	}
}

// progress records what a device reports of a pending request, and tells
// the request's OnProgress what is new: a stage further than any reached,
// or the first outdated app of a device. It reports false when the request
// is not pending here or the device was not asked.
func (p *Pusher) progress(requestID, dev string, pr Progress) bool {
	p.mu.Lock()
	req := p.pending[requestID]
	if req == nil || req.devices[dev] == nil || req.decided() {
		p.mu.Unlock()
		return req != nil && req.devices[dev] != nil
	}
	news := false
	switch {
	case pr.Outdated:
		if req.outdated == nil {
			req.outdated = make(map[string]bool)
		}
		news = !req.outdated[dev]
		req.outdated[dev] = true
	case stageRank(pr.Stage) > stageRank(req.reached):
		req.reached, news = pr.Stage, true
	}
	hear := req.onProgress
	p.mu.Unlock()
	if news && hear != nil {
		hear(pr)
	}
	return true
}

// stageRank orders the stages: a report of an earlier stage than one
// reached is old news.
func stageRank(s Stage) int {
	switch s {
	case StageDelivered:
		return 1
	case StageShown:
		return 2
	}
	return 0
}

// Bounds on what devices send, checked before anything is read: an answer
// is a few hundred bytes, a sync lists at most maxHeld prompts.
const (
	maxAnswerBytes = 4 << 10
	maxSyncBytes   = 8 << 10
)

// refusalLogBurst bounds the refusals of devices' messages logged per
// minute and message.
const refusalLogBurst = 20

// checkAnswer returns the outcome an answer stands for, and the device and
// request it answers.
func (p *Pusher) checkAnswer(m *nats.Msg, now time.Time) (Outcome, string, string, error) {
	dev, _, ok := parseAnswerSubject(m.Subject)
	if !ok {
		return Outcome{}, "", "", refuse(RefusedMalformed, errors.New("malformed answer subject"))
	}
	// Cheap checks first: a device flooding the broker costs it a map
	// look-up per message, and holds up no one else's answers.
	if !p.answerRates.allowed(dev, now) {
		return Outcome{}, dev, "", refuse(RefusedFlood, errors.New("too many refused answers from this device"))
	}
	if len(m.Data) > maxAnswerBytes {
		return Outcome{}, dev, "", refuse(RefusedMalformed, fmt.Errorf("the answer has %d bytes, at most %d", len(m.Data), maxAnswerBytes))
	}
	var a Answer
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return Outcome{}, dev, "", refuse(RefusedMalformed, errors.New("malformed answer: not the answer's JSON"))
	}
	if !IsRequestID(a.RequestID) {
		return Outcome{}, dev, "", refuse(RefusedMalformed, errors.New("malformed answer: no such request ID"))
	}
	requestID := a.RequestID
	p.mu.Lock()
	req := p.pending[requestID]
	var d *pendingDevice
	if req != nil {
		d = req.devices[dev]
	}
	p.mu.Unlock()
	switch {
	case req == nil:
		return Outcome{}, dev, requestID, refuse(RefusedUnknown, errors.New("no such request is pending here"))
	case d == nil:
		return Outcome{}, dev, requestID, refuse(RefusedNotAsked, errors.New("this device was not asked"))
	case time.Now().After(req.expires):
		return Outcome{}, dev, requestID, refuse(RefusedExpired, errors.New("the request has expired"))
	}
	if a.Version != ProtocolVersion || a.LegalID != d.target.LegalID {
		return Outcome{}, dev, requestID, refuse(RefusedMismatch, errors.New("the answer names another identity or protocol version"))
	}
	if _, err := ParseDecision(string(a.Decision)); err != nil {
		return Outcome{}, dev, requestID, refuse(RefusedMalformed, err)
	}
	form, err := answerFormFor(d.push, d.pushBytes, a)
	if err != nil {
		return Outcome{}, dev, requestID, err
	}
	if err := identity.Verify(d.target.PublicKey, form, a.Signature); err != nil {
		if !d.push.NeedsMatch() || a.Match != "" || a.Decision == Approve {
			return Outcome{}, dev, requestID, refuse(RefusedSignature, fmt.Errorf("answer signature: %w", err))
		}
		// A denial from an app that predates number matching signs the
		// first form; saying no needs no number.
		form = answerForm("MFA-Answer/1", d.push, d.pushBytes, a.Decision, nil)
		if err := identity.Verify(d.target.PublicKey, form, a.Signature); err != nil {
			return Outcome{}, dev, requestID, refuse(RefusedSignature, fmt.Errorf("answer signature: %w", err))
		}
	}
	return Outcome{
		Decision: a.Decision, LegalID: d.target.LegalID, PublicKey: d.target.PublicKey,
		SignedData: form, Signature: a.Signature, Push: d.pushBytes, Match: a.Match,
	}, dev, requestID, nil
}

// answerFormFor is the form an answer to push must have signed: its Match
// is one of the numbers offered, and an approval of a push that needs a
// number has one (errOutdatedApp otherwise).
func answerFormFor(push Push, pushBytes []byte, a Answer) ([]byte, error) {
	if !push.NeedsMatch() {
		if a.Match != "" {
			return nil, refuse(RefusedNumber, errors.New("the answer picks a number, and none was offered"))
		}
		return AnswerForm(push, pushBytes, a.Decision, ""), nil
	}
	switch {
	case a.Match == "" && a.Decision == Approve:
		return nil, errOutdatedApp
	case a.Match != "" && !slices.Contains(push.MatchChoices, a.Match):
		return nil, refuse(RefusedNumber, errors.New("the number picked is not one of those offered"))
	}
	return AnswerForm(push, pushBytes, a.Decision, a.Match), nil
}

// handleOthersPush hears another broker replica's push: a newer request
// for the device, so the older ones held here end.
func (p *Pusher) handleOthersPush(m *nats.Msg) {
	if m.Header.Get(headerKind) != kindPush {
		return
	}
	issued, err := strconv.ParseInt(m.Header.Get(headerIssued), 10, 64)
	if err != nil {
		return
	}
	p.endOlder(strings.TrimPrefix(m.Subject, pushPrefix), m.Header.Get(headerRequest), issued)
}

// endOlder ends the requests pending here for the device that are older
// than the announced one (issued in Unix nanoseconds). Between two requests
// issued at once, the larger request ID wins, so exactly one survives.
func (p *Pusher) endOlder(dev, newest string, issued int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, req := range p.byDevice[dev] {
		at := req.issued.UnixNano()
		older := at < issued || (at == issued && id < newest)
		if id == newest || !older || req.decided() {
			continue
		}
		req.superseded = true
		req.ended <- struct{}{}
	}
}

// handleSync answers a device that asks what it missed, on its push
// subject: the pushes pending here for it are sent again, and the prompts
// it still shows for requests this process held and that have ended are
// withdrawn. Every replica does the same for its own; each replies with a
// receipt, and the device reads the first.
func (p *Pusher) handleSync(m *nats.Msg) {
	p.obs.Sync()
	dev := strings.TrimPrefix(m.Subject, syncPrefix)
	var sr syncRequest
	switch {
	case len(m.Data) > maxSyncBytes:
		p.refusals.Info("sync too large; the prompts it lists are not looked at", "device", dev, "bytes", len(m.Data))
	case len(m.Data) > 0:
		if err := json.Unmarshal(m.Data, &sr); err != nil {
			p.refusals.Info("malformed sync; the prompts it lists are not looked at", "device", dev)
			sr = syncRequest{}
		}
	}
	var resend []*nats.Msg
	var ended []string
	p.mu.Lock()
	for _, req := range p.byDevice[dev] {
		if d := req.devices[dev]; d != nil && !req.decided() {
			resend = append(resend, p.pushMessage(dev, req, d))
		}
	}
	for i, h := range sr.Held {
		if i == maxHeld {
			break
		}
		// Only this process can make the token, and only for a request it
		// no longer holds: a pending one is withdrawn when it ends.
		if h.Broker == p.instance && p.pending[h.RequestID] == nil {
			ended = append(ended, h.RequestID)
		}
	}
	p.mu.Unlock()
	failed := 0
	for _, msg := range resend {
		if err := p.nc.PublishMsg(msg); err != nil {
			p.log.Warn("push not resent", "device", dev, "err", err)
			failed++
		}
	}
	if len(resend) > 0 {
		p.obs.Pushes(len(resend)-failed, failed, true)
	}
	for _, id := range ended {
		p.publishWithdrawal(dev, id, p.withdrawal(id, WhyEnded))
	}
	p.obs.Withdrawals(WhyEnded, len(ended))
	if m.Reply != "" {
		if err := m.Respond(marshal(syncReceipt{Resent: len(resend), Withdrawn: len(ended)})); err != nil {
			p.log.Debug("sync receipt not sent", "err", err)
		}
	}
}

// Pending is the number of requests waiting for an answer.
func (p *Pusher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Close ends every pending request with ErrClosed, waits until each has
// withdrawn its pushes (or ctx ends), and stops listening.
func (p *Pusher) Close(ctx context.Context) error {
	p.mu.Lock()
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.asks.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("pending requests still withdrawing: %w", ctx.Err())
	}
	p.unsubscribe()
	// Withdrawals cannot reach devices while NATS is away; their prompts
	// expire on the devices by themselves.
	if p.nc.IsConnected() {
		if ferr := p.nc.FlushTimeout(p.publishTimeout); ferr != nil && err == nil {
			err = fmt.Errorf("flush withdrawals: %w", ferr)
		}
	}
	return err
}

func (p *Pusher) unsubscribe() {
	for _, s := range p.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Debug("unsubscribe", "subject", s.Subject, "err", err)
		}
	}
}
