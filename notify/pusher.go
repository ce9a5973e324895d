package notify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/identity"
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

// Pusher is the broker's side of the protocol: it pushes a request to the
// devices of the identities asked, waits for the first valid signed answer,
// and withdraws the request from every device when it ends.
type Pusher struct {
	nc             *nats.Conn
	js             jetstream.JetStream
	stream         jetstream.Stream
	key            ed25519.PrivateKey
	domain         string
	instance       string
	log            *slog.Logger
	publishTimeout time.Duration
	maxTimeout     time.Duration
	replicas       int
	maxInFlight    int

	mu       sync.Mutex
	pending  map[string]*pendingRequest
	byDevice map[string]map[string]*pendingRequest // device → request ID → request
	subs     []*nats.Subscription
	closed   chan struct{}
	asks     sync.WaitGroup
}

type pendingRequest struct {
	id      string
	token   string // revealed in the withdrawal; its hash is in every push
	issued  time.Time
	expires time.Time
	devices map[string]*pendingDevice // by device ID
	result  chan askResult            // buffered: holds the one way it ends early
	done    bool                      // an answer won or it was superseded; guarded by Pusher.mu
}

type askResult struct {
	out Outcome
	err error
}

type pendingDevice struct {
	target    Target
	push      Push
	pushBytes []byte
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
}

// Outcome is the first valid answer: the decision and the evidence for it.
type Outcome struct {
	Decision   Decision
	LegalID    string
	PublicKey  ed25519.PublicKey
	SignedData []byte
	Signature  []byte
	Push       []byte
}

// PusherOption configures a Pusher.
type PusherOption func(*Pusher)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) PusherOption { return func(p *Pusher) { p.log = l } }

// WithPublishTimeout bounds each push's wait for JetStream to store it.
func WithPublishTimeout(d time.Duration) PusherOption {
	return func(p *Pusher) { p.publishTimeout = d }
}

// WithMaxTimeout is the longest request the broker accepts; pushes are kept
// in the stream at least that long.
func WithMaxTimeout(d time.Duration) PusherOption { return func(p *Pusher) { p.maxTimeout = d } }

// WithMaxPushesInFlight bounds the pushes published but not yet
// acknowledged by JetStream (default 4,096); past it a push waits for room.
func WithMaxPushesInFlight(n int) PusherOption {
	return func(p *Pusher) { p.maxInFlight = n }
}

// WithStreamReplicas sets the push stream's replica count on a NATS cluster.
func WithStreamReplicas(n int) PusherOption { return func(p *Pusher) { p.replicas = n } }

// NewPusher sets up the push stream and the broker's subscriptions on nc.
// key signs every push and withdrawal; domain names the broker in them.
func NewPusher(ctx context.Context, nc *nats.Conn, key ed25519.PrivateKey, domain string, opts ...PusherOption) (*Pusher, error) {
	p := &Pusher{
		nc: nc, key: key, domain: domain,
		instance: NewInstanceID(),
		log:      slog.Default(),
		// Generous, because a connection that is down fails at once (see
		// publishPushes): what remains is a broker or server too busy to
		// acknowledge in time, as in a burst, and there a late push beats
		// a refused request.
		publishTimeout: 5 * time.Second,
		maxTimeout:     5 * time.Minute,
		replicas:       1,
		maxInFlight:    4096,
		pending:        make(map[string]*pendingRequest),
		byDevice:       make(map[string]map[string]*pendingRequest),
		closed:         make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	// Pushes are published asynchronously, acknowledged on one shared reply
	// subscription: a burst of requests does not queue on a request/reply
	// round trip each.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(p.maxInFlight), jetstream.WithPublishAsyncTimeout(p.publishTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p.js = js
	p.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        PushStream,
		Description: "MFA pushes and withdrawals, kept until they expire for devices that connect late",
		Subjects:    []string{pushPrefix + "*"},
		Storage:     jetstream.MemoryStorage,
		// Kept a minute past the longest request so a late device still sees
		// the withdrawal that ends it. A device has one pending request at a
		// time (a newer one supersedes), so a few messages each are enough,
		// and the stream stays small however busy the broker is.
		MaxAge:            p.maxTimeout + time.Minute,
		MaxMsgsPerSubject: 8,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		Replicas:          p.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", PushStream, err)
	}
	answers, err := nc.Subscribe(answerPrefix+"*."+p.instance+".*", p.handleAnswer)
	if err != nil {
		return nil, fmt.Errorf("subscribe to answers: %w", err)
	}
	syncs, err := nc.QueueSubscribe(syncPrefix+"*", brokerQueue, p.handleSync)
	if err != nil {
		answers.Unsubscribe()
		return nil, fmt.Errorf("subscribe to syncs: %w", err)
	}
	// Every broker hears every supersession: the older request may be
	// pending at any replica.
	supersessions, err := nc.Subscribe(supersedePrefix+"*", p.handleSupersede)
	if err != nil {
		answers.Unsubscribe()
		syncs.Unsubscribe()
		return nil, fmt.Errorf("subscribe to supersessions: %w", err)
	}
	p.subs = []*nats.Subscription{answers, syncs, supersessions}
	if err := nc.FlushTimeout(p.publishTimeout); err != nil {
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
// pusher closes (ErrClosed). However it ends, every device is told to
// withdraw.
func (p *Pusher) Ask(ctx context.Context, q Question) (Outcome, error) {
	now := time.Now()
	token, tokenHash := newWithdrawToken()
	req := &pendingRequest{
		id:      q.RequestID,
		token:   token,
		issued:  now,
		expires: q.Expires,
		devices: make(map[string]*pendingDevice, len(q.Targets)),
		result:  make(chan askResult, 1),
	}
	issued := now.UTC().Format(TimeFormat)
	for _, t := range q.Targets {
		dev := identity.DeviceIDOf(t.PublicKey)
		push := Push{
			Version: ProtocolVersion, RequestID: q.RequestID, LegalID: t.LegalID, Broker: p.domain,
			Reason: q.Reason, Requester: q.Requester, Issued: issued,
			Expires:       q.Expires.UTC().Format(TimeFormat),
			AnswerSubject: AnswerSubject(dev, p.instance, q.RequestID),
			WithdrawHash:  tokenHash,
		}
		req.devices[dev] = &pendingDevice{target: t, push: push, pushBytes: marshal(push)}
	}

	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return Outcome{}, ErrClosed
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
	defer p.asks.Done()

	why := WhyCancelled
	defer func() {
		p.mu.Lock()
		delete(p.pending, q.RequestID)
		for dev := range req.devices {
			delete(p.byDevice[dev], q.RequestID)
			if len(p.byDevice[dev]) == 0 {
				delete(p.byDevice, dev)
			}
		}
		p.mu.Unlock()
		p.withdraw(q.RequestID, req, why)
	}()

	p.supersede(req)
	if err := p.publishPushes(ctx, req); err != nil {
		return Outcome{}, err
	}
	timer := time.NewTimer(time.Until(q.Expires))
	defer timer.Stop()
	select {
	case r := <-req.result:
		if r.err != nil {
			why = WhySuperseded
			return Outcome{}, r.err
		}
		why = WhyAnswered
		return r.out, nil
	case <-timer.C:
		why = WhyTimeout
		return Outcome{}, ErrExpired
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	case <-p.closed:
		why = WhyShutdown
		return Outcome{}, ErrClosed
	}
}

// publishPushes stores each push in JetStream, which also delivers it to a
// device that is online. It fails only if no device could be reached.
func (p *Pusher) publishPushes(ctx context.Context, req *pendingRequest) error {
	type sent struct {
		dev    string
		future jetstream.PubAckFuture
	}
	// While NATS is away a publish would only sit in the reconnect buffer
	// until its acknowledgement timed out: say so at once instead.
	if !p.nc.IsConnected() {
		return fmt.Errorf("%w: NATS is %s", ErrUnavailable, p.nc.Status())
	}
	var failures []error
	futures := make([]sent, 0, len(req.devices))
	for dev, d := range req.devices {
		// At the in-flight cap a publish waits for acknowledgements to
		// make room, for as long as one acknowledgement may take: a burst
		// is slowed down, not refused after nats.go's default 200 ms.
		f, err := p.js.PublishMsgAsync(p.signedMessage(PushSubject(dev), kindPush, d.pushBytes), jetstream.WithStallWait(p.publishTimeout))
		if err != nil {
			failures = append(failures, err)
			continue
		}
		futures = append(futures, sent{dev: dev, future: f})
	}
	timeout := time.NewTimer(p.publishTimeout)
	defer timeout.Stop()
	for _, f := range futures {
		var err error
		select {
		case <-f.future.Ok():
		case err = <-f.future.Err():
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			err = lateAck(f.future)
		}
		if err != nil {
			p.log.Warn("push not stored", "request", req.id, "device", f.dev, "err", err)
			failures = append(failures, err)
		}
	}
	if len(failures) == len(req.devices) {
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(failures...))
	}
	return nil
}

// lateAck is how a push whose wait timed out ended: a busy scheduler may
// wake the waiter after both the acknowledgement and the timer, and then
// the acknowledgement counts.
func lateAck(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	default:
		return errors.New("JetStream did not acknowledge the push in time")
	}
}

func (p *Pusher) signedMessage(subject, kind string, body []byte) *nats.Msg {
	m := message(subject, kind, body)
	m.Header.Set(headerSignature, encodeSignature(signMessage(p.key, kind, body)))
	return m
}

func message(subject, kind string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(headerKind, kind)
	return m
}

// withdraw tells every device asked that the request is over. The
// withdrawal lands in the stream too, so a device that syncs later skips
// the push. It carries the token the push committed to instead of a
// signature, and is published without waiting for JetStream: a lost
// withdrawal only leaves a prompt that expires on its own.
func (p *Pusher) withdraw(requestID string, req *pendingRequest, why string) {
	body := marshal(Withdrawal{Version: ProtocolVersion, RequestID: requestID, Why: why, Token: req.token})
	for dev := range req.devices {
		if err := p.nc.PublishMsg(message(PushSubject(dev), kindWithdraw, body)); err != nil {
			p.log.Warn("withdrawal not sent", "request", requestID, "device", dev, "err", err)
		}
	}
}

// handleAnswer verifies a device's answer. Forged, foreign, replayed, late
// and duplicate answers are refused and change nothing; the device is told
// why.
func (p *Pusher) handleAnswer(m *nats.Msg) {
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
	out, requestID, err := p.checkAnswer(m)
	if err != nil {
		p.log.Info("answer refused", "request", requestID, "err", err)
		reply(err)
		return
	}
	p.mu.Lock()
	req := p.pending[requestID]
	accepted := req != nil && !req.done
	if accepted {
		req.done = true
		req.result <- askResult{out: out}
	}
	p.mu.Unlock()
	if !accepted {
		reply(errors.New("the request has already been answered or is over"))
		return
	}
	reply(nil)
}

func (p *Pusher) checkAnswer(m *nats.Msg) (Outcome, string, error) {
	// mfa.answer.<device>.<instance>.<request>
	tokens := strings.Split(m.Subject, ".")
	if len(tokens) != 5 {
		return Outcome{}, "", errors.New("malformed answer subject")
	}
	dev, requestID := tokens[2], tokens[4]
	p.mu.Lock()
	req := p.pending[requestID]
	var d *pendingDevice
	if req != nil {
		d = req.devices[dev]
	}
	p.mu.Unlock()
	switch {
	case req == nil:
		return Outcome{}, requestID, errors.New("no such request is pending here")
	case d == nil:
		return Outcome{}, requestID, errors.New("this device was not asked")
	case time.Now().After(req.expires):
		return Outcome{}, requestID, errors.New("the request has expired")
	}
	var a Answer
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return Outcome{}, requestID, fmt.Errorf("malformed answer: %w", err)
	}
	if a.Version != ProtocolVersion || a.RequestID != requestID || a.LegalID != d.target.LegalID {
		return Outcome{}, requestID, errors.New("the answer names another request, identity or protocol version")
	}
	if _, err := ParseDecision(string(a.Decision)); err != nil {
		return Outcome{}, requestID, err
	}
	form := AnswerForm(d.push, d.pushBytes, a.Decision)
	if err := identity.Verify(d.target.PublicKey, form, a.Signature); err != nil {
		return Outcome{}, requestID, fmt.Errorf("answer signature: %w", err)
	}
	return Outcome{
		Decision: a.Decision, LegalID: d.target.LegalID, PublicKey: d.target.PublicKey,
		SignedData: form, Signature: a.Signature, Push: d.pushBytes,
	}, requestID, nil
}

// supersede ends the older requests for req's devices held here, and tells
// every other broker to end the ones they hold. A connection made with
// nats.NoEcho does not hear its own announcement back; one without it
// hears it and finds nothing more to end.
func (p *Pusher) supersede(req *pendingRequest) {
	s := supersession{RequestID: req.id, Issued: req.issued.UnixNano()}
	body := marshal(s)
	for dev := range req.devices {
		p.endOlder(dev, s)
		if err := p.nc.Publish(supersedePrefix+dev, body); err != nil {
			p.log.Warn("supersession not sent", "request", req.id, "device", dev, "err", err)
		}
	}
}

// handleSupersede hears another broker's supersession.
func (p *Pusher) handleSupersede(m *nats.Msg) {
	var s supersession
	if err := json.Unmarshal(m.Data, &s); err != nil {
		return
	}
	p.endOlder(strings.TrimPrefix(m.Subject, supersedePrefix), s)
}

// endOlder ends the requests pending here for the device that are older
// than the announced one. Between two requests issued at once, the larger
// request ID wins, so exactly one survives.
func (p *Pusher) endOlder(dev string, s supersession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, req := range p.byDevice[dev] {
		older := req.issued.UnixNano() < s.Issued || (req.issued.UnixNano() == s.Issued && id < s.RequestID)
		if id == s.RequestID || !older || req.done {
			continue
		}
		req.done = true
		req.result <- askResult{err: ErrSuperseded}
	}
}

// handleSync answers a device that asks for the pushes it missed: those in
// the stream for it that are neither withdrawn nor expired. Any broker
// replica can answer, since the stream is shared.
func (p *Pusher) handleSync(m *nats.Msg) {
	dev := strings.TrimPrefix(m.Subject, syncPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), p.publishTimeout)
	defer cancel()
	reply, err := p.pendingPushes(ctx, dev)
	if err != nil {
		p.log.Warn("sync failed", "device", dev, "err", err)
	}
	if m.Reply != "" {
		if err := m.Respond(marshal(reply)); err != nil {
			p.log.Debug("sync reply not sent", "err", err)
		}
	}
}

// pendingPushes reads what the stream holds for a device: the pushes not
// yet withdrawn or expired, and the withdrawals, so that a device that was
// offline also drops prompts that ended meanwhile.
func (p *Pusher) pendingPushes(ctx context.Context, dev string) (syncReply, error) {
	subject := PushSubject(dev)
	var order []string
	type held struct {
		synced syncedPush
		hash   string
	}
	pushes := make(map[string]held)
	var reply syncReply
	now := time.Now()
	for seq := uint64(1); ; {
		msg, err := p.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return syncReply{}, fmt.Errorf("read stream: %w", err)
		}
		seq = msg.Sequence + 1
		switch msg.Header.Get(headerKind) {
		case kindPush:
			sig, err := decodeSignature(msg.Header.Get(headerSignature))
			var push Push
			if err != nil || json.Unmarshal(msg.Data, &push) != nil {
				continue
			}
			if exp, err := push.ExpiresAt(); err != nil || now.After(exp) {
				continue
			}
			order = append(order, push.RequestID)
			pushes[push.RequestID] = held{synced: syncedPush{Push: msg.Data, Signature: sig}, hash: push.WithdrawHash}
		case kindWithdraw:
			var w Withdrawal
			if json.Unmarshal(msg.Data, &w) != nil {
				continue
			}
			reply.Withdrawals = append(reply.Withdrawals, w)
			if h, ok := pushes[w.RequestID]; ok && tokenMatches(w.Token, h.hash) {
				delete(pushes, w.RequestID)
			}
		}
	}
	for _, id := range order {
		if h, ok := pushes[id]; ok {
			reply.Pushes = append(reply.Pushes, h.synced)
			delete(pushes, id)
		}
	}
	return reply, nil
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
