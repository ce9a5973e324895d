package notify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
)

// Errors of the device side.
var (
	// ErrRefused: the broker did not accept an answer. The error is a
	// *RefusedError that says why.
	ErrRefused = errors.New("answer refused by the broker")
	// ErrSync: no broker heard the device ask for what it missed while
	// offline. Live pushes still arrive; the next sync fetches the missed
	// ones.
	ErrSync = errors.New("sync of missed pushes failed")
)

// RefusedError is the broker's refusal of an answer, with its reason.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return ErrRefused.Error() + ": " + e.Reason }

// Is makes errors.Is(err, ErrRefused) hold for every refusal.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Prompt is a verified push for a person to decide on.
type Prompt struct {
	Push Push
	// Raw is the exact push the broker signed; the answer covers its hash.
	Raw []byte
}

// Event is either a new prompt or the withdrawal of one.
type Event struct {
	Prompt     *Prompt
	Withdrawal *Withdrawal
}

// DeviceConfig is what a device needs to take part.
type DeviceConfig struct {
	LegalID string
	Key     ed25519.PrivateKey
	// BrokerKey verifies that pushes come from the broker.
	BrokerKey ed25519.PublicKey
	Logger    *slog.Logger
	// RequestTimeout bounds syncs and answers; default 5 s.
	RequestTimeout time.Duration
}

// Device is the device's side of the protocol: it receives the pushes for
// its identity, live and missed ones alike, and answers them signed.
type Device struct {
	nc     *nats.Conn
	cfg    DeviceConfig
	id     string
	events chan Event

	mu        sync.Mutex
	seen      map[string]seenPush  // request ID → prompts already raised
	withdrawn map[string]time.Time // request ID → when to forget it
	early     map[string]early     // request ID → withdrawal that came before its push
	lastPrune time.Time
	sub       *nats.Subscription
	closed    bool
	// prevReconnect is the connection's reconnect handler before Start
	// chained the device's sync onto it; Close puts it back.
	prevReconnect nats.ConnHandler
}

// eventBuffer absorbs bursts without blocking NATS delivery.
const eventBuffer = 256

// seenPush is what a device keeps of a push it raised a prompt for.
type seenPush struct {
	expires      time.Time
	withdrawHash string
	// broker is the broker process holding the request, from the push's
	// answer subject: a sync asks it whether the prompt is still wanted.
	broker string
}

// early is a withdrawal that arrived before its push (a sync can race the
// live withdrawal); it is checked against the push when that comes.
type early struct {
	token string
	until time.Time
}

// maxEarly bounds the withdrawals kept while their pushes are awaited, so
// a flood of bogus ones cannot grow without end.
const maxEarly = 1024

// NewDevice prepares a device on nc, which must be connected. Call Start to
// begin receiving. Start chains a sync of missed pushes onto nc's reconnect
// handler; a handler set on nc afterwards must call the one it replaces.
func NewDevice(nc *nats.Conn, cfg DeviceConfig) (*Device, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize || len(cfg.BrokerKey) != ed25519.PublicKeySize || cfg.LegalID == "" {
		return nil, errors.New("device needs its legal ID, its Ed25519 key and the broker's public key")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	d := &Device{
		nc: nc, cfg: cfg,
		id:        identity.DeviceIDOf(cfg.Key.Public().(ed25519.PublicKey)),
		events:    make(chan Event, eventBuffer),
		seen:      make(map[string]seenPush),
		withdrawn: make(map[string]time.Time),
		early:     make(map[string]early),
	}
	return d, nil
}

// ID is the device ID used in subjects.
func (d *Device) ID() string { return d.id }

// Events delivers prompts and withdrawals. It is closed by Close.
func (d *Device) Events() <-chan Event { return d.events }

// Start subscribes to live pushes, then fetches any pushed while the
// device was away. Subscribing first means nothing falls between the two.
// An error wrapping ErrSync means the device is receiving, but the missed
// pushes could not be fetched yet.
func (d *Device) Start(ctx context.Context) error {
	sub, err := d.nc.Subscribe(PushSubject(d.id), d.handlePush)
	if err != nil {
		return fmt.Errorf("subscribe to pushes: %w", err)
	}
	prev := d.nc.ReconnectHandler()
	d.mu.Lock()
	d.sub, d.prevReconnect = sub, prev
	d.mu.Unlock()
	d.nc.SetReconnectHandler(func(c *nats.Conn) {
		if prev != nil {
			prev(c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.RequestTimeout)
		defer cancel()
		if err := d.Sync(ctx); err != nil {
			d.cfg.Logger.Warn("sync after reconnect failed", "err", err)
		}
	})
	return d.Sync(ctx)
}

// Sync asks every broker for what this device missed: each sends its
// pending pushes for the device again, and withdraws the prompts the device
// still shows for requests that ended meanwhile. Both arrive as Events,
// like live ones. Sync returns once a broker has heard it.
func (d *Device) Sync(ctx context.Context) error {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	m, err := d.nc.RequestWithContext(ctx, SyncSubject(d.id), marshal(syncRequest{Held: d.held()}))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSync, err)
	}
	var receipt syncReceipt
	if err := json.Unmarshal(m.Data, &receipt); err != nil {
		return fmt.Errorf("%w: receipt: %w", ErrSync, err)
	}
	return nil
}

// held lists the prompts the device shows: raised, not withdrawn, not
// answered, not expired; at most maxHeld of them, the latest to expire
// first.
func (d *Device) held() []heldPrompt {
	now := time.Now()
	type prompt struct {
		heldPrompt
		expires time.Time
	}
	var all []prompt
	d.mu.Lock()
	for id, p := range d.seen {
		if _, gone := d.withdrawn[id]; gone || !now.Before(p.expires) || p.broker == "" {
			continue
		}
		all = append(all, prompt{heldPrompt{RequestID: id, Broker: p.broker}, p.expires})
	}
	d.mu.Unlock()
	slices.SortFunc(all, func(a, b prompt) int { return b.expires.Compare(a.expires) })
	out := make([]heldPrompt, 0, min(len(all), maxHeld))
	for _, p := range all[:min(len(all), maxHeld)] {
		out = append(out, p.heldPrompt)
	}
	return out
}

func (d *Device) handlePush(m *nats.Msg) {
	switch kind := m.Header.Get(headerKind); kind {
	case kindPush:
		sig, err := decodeSignature(m.Header.Get(headerSignature))
		if err != nil {
			d.cfg.Logger.Warn("push without a valid signature header dropped", "err", err)
			return
		}
		d.receivePush(m.Data, sig)
	case kindWithdraw:
		var w Withdrawal
		if err := json.Unmarshal(m.Data, &w); err != nil {
			d.cfg.Logger.Warn("malformed withdrawal dropped", "err", err)
			return
		}
		d.withdraw(w)
	default:
		d.cfg.Logger.Warn("message of unknown kind dropped", "kind", kind)
	}
}

func (d *Device) receivePush(raw, sig []byte) {
	if err := verifyMessage(d.cfg.BrokerKey, kindPush, raw, sig); err != nil {
		d.cfg.Logger.Warn("push not signed by the broker dropped", "err", err)
		return
	}
	var push Push
	if err := json.Unmarshal(raw, &push); err != nil {
		d.cfg.Logger.Warn("malformed push dropped", "err", err)
		return
	}
	exp, err := push.ExpiresAt()
	if err != nil || push.Version != ProtocolVersion || push.LegalID != d.cfg.LegalID {
		d.cfg.Logger.Warn("push for another identity or protocol dropped", "request", push.RequestID)
		return
	}
	now := time.Now()
	if now.After(exp) {
		return
	}
	d.mu.Lock()
	d.prune(now)
	_, dup := d.seen[push.RequestID]
	_, gone := d.withdrawn[push.RequestID]
	if e, ok := d.early[push.RequestID]; ok && !gone {
		delete(d.early, push.RequestID)
		if tokenMatches(e.token, push.WithdrawHash) {
			d.withdrawn[push.RequestID] = now.Add(time.Hour)
			gone = true
		}
	}
	if !dup && !gone {
		// A subject that is not an answer subject leaves broker "", and the
		// prompt out of syncs.
		_, broker, _ := parseAnswerSubject(push.AnswerSubject)
		d.seen[push.RequestID] = seenPush{expires: exp, withdrawHash: push.WithdrawHash, broker: broker}
	}
	d.mu.Unlock()
	if dup || gone {
		return
	}
	d.emit(Event{Prompt: &Prompt{Push: push, Raw: raw}})
	d.report(push, StageDelivered)
}

// Shown tells the broker holding the request that the person now sees the
// prompt; the relying party may tell its user so.
func (d *Device) Shown(p Prompt) { d.report(p.Push, StageShown) }

// report sends a receipt, fire-and-forget: a lost one only leaves the
// relying party's hint behind.
func (d *Device) report(push Push, stage Stage) {
	m := message(push.AnswerSubject, kindReceipt, marshal(receipt{RequestID: push.RequestID, Stage: stage}))
	if err := d.nc.PublishMsg(m); err != nil {
		d.cfg.Logger.Debug("receipt not sent", "request", push.RequestID, "err", err)
	}
}

// withdraw ends a prompt if the withdrawal's token is the one its signed
// push committed to; a withdrawal that does not match changes nothing.
func (d *Device) withdraw(w Withdrawal) {
	now := time.Now()
	d.mu.Lock()
	d.prune(now)
	if _, already := d.withdrawn[w.RequestID]; already {
		d.mu.Unlock()
		return
	}
	p, prompted := d.seen[w.RequestID]
	switch {
	case prompted && tokenMatches(w.Token, p.withdrawHash):
		// Remembered past the prompt's expiry, so a push resent by a
		// sync that races the withdrawal cannot raise it again.
		d.withdrawn[w.RequestID] = now.Add(time.Hour)
	case prompted:
		d.mu.Unlock()
		d.cfg.Logger.Warn("withdrawal with the wrong token dropped", "request", w.RequestID)
		return
	default:
		if len(d.early) < maxEarly {
			d.early[w.RequestID] = early{token: w.Token, until: now.Add(time.Hour)}
		}
	}
	d.mu.Unlock()
	if prompted {
		d.emit(Event{Withdrawal: &w})
	}
}

// pruneEvery spaces out the sweeps of what the device remembers, so that
// a message costs a map look-up rather than a walk over every entry.
const pruneEvery = time.Minute

// prune forgets expired prompts and old withdrawals; d.mu is held.
func (d *Device) prune(now time.Time) {
	if now.Sub(d.lastPrune) < pruneEvery {
		return
	}
	d.lastPrune = now
	for id, p := range d.seen {
		if now.After(p.expires.Add(time.Hour)) {
			delete(d.seen, id)
		}
	}
	for id, until := range d.withdrawn {
		if now.After(until) {
			delete(d.withdrawn, id)
		}
	}
	for id, e := range d.early {
		if now.After(e.until) {
			delete(d.early, id)
		}
	}
}

// emit never blocks: a callback in flight when Close runs finds the device
// closed under the same lock that closes the channel.
func (d *Device) emit(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case d.events <- e:
	default:
		d.cfg.Logger.Warn("event dropped: the device is not reading its events")
	}
}

// ErrNeedsMatch: an approval of a prompt with number matching must pick
// one of its MatchChoices.
var ErrNeedsMatch = errors.New("this request needs the number the requester shows: pick one of the choices")

// ErrWrongNumber: the broker accepted an approval whose number was not the
// one the requester shows; the request ended as a denial.
var ErrWrongNumber = errors.New("that was not the number the requester shows: the request was denied")

// Answer signs the decision on a prompt and sends it to the broker holding
// the request. It returns nil only if the broker accepted it; the prompt is
// then over, and no withdrawal for it follows (the person's other devices
// get one). A prompt that needs a number is answered with AnswerMatch.
func (d *Device) Answer(ctx context.Context, p Prompt, decision Decision) error {
	return d.AnswerMatch(ctx, p, decision, "")
}

// AnswerMatch is Answer with the number the person picked, for a prompt
// whose push has MatchChoices: an approval must pick one of them (else
// ErrNeedsMatch, nothing sent), a denial need not. When the broker finds
// the number wrong, the answer still ended the request, as a denial, and
// AnswerMatch returns ErrWrongNumber.
func (d *Device) AnswerMatch(ctx context.Context, p Prompt, decision Decision, match string) error {
	switch {
	case !p.Push.NeedsMatch() && match != "":
		return errors.New("this request offers no numbers to pick")
	case p.Push.NeedsMatch() && decision == Approve && !slices.Contains(p.Push.MatchChoices, match):
		return ErrNeedsMatch
	}
	ctx, cancel := d.bound(ctx)
	defer cancel()
	a := Answer{
		Version: ProtocolVersion, RequestID: p.Push.RequestID, LegalID: p.Push.LegalID, Decision: decision, Match: match,
		Signature: ed25519.Sign(d.cfg.Key, AnswerForm(p.Push, p.Raw, decision, match)),
	}
	reply, err := d.sendAnswer(ctx, p.Push.AnswerSubject, a)
	if err != nil {
		return err
	}
	// A push resent by a racing sync must not raise the prompt again, and
	// the next sync need not ask about it.
	d.mu.Lock()
	d.withdrawn[p.Push.RequestID] = time.Now().Add(time.Hour)
	d.mu.Unlock()
	if reply.WrongNumber {
		return ErrWrongNumber
	}
	return nil
}

// SendAnswer sends an answer as given. Answer is what devices use; this
// exists so tests and tools can send answers a real device never would.
func (d *Device) SendAnswer(ctx context.Context, subject string, a Answer) error {
	_, err := d.sendAnswer(ctx, subject, a)
	return err
}

func (d *Device) sendAnswer(ctx context.Context, subject string, a Answer) (AnswerReply, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	m, err := d.nc.RequestWithContext(ctx, subject, marshal(a))
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return AnswerReply{}, &RefusedError{Reason: "the request is no longer pending"}
		}
		return AnswerReply{}, fmt.Errorf("send answer: %w", err)
	}
	var r AnswerReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return AnswerReply{}, fmt.Errorf("answer receipt: %w", err)
	}
	if !r.Accepted {
		return r, &RefusedError{Reason: r.Error}
	}
	return r, nil
}

func (d *Device) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d.cfg.RequestTimeout)
}

// Close stops receiving and closes Events. The NATS connection stays open:
// it belongs to the caller.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	close(d.events)
	d.nc.SetReconnectHandler(d.prevReconnect)
	if d.sub != nil {
		return d.sub.Unsubscribe()
	}
	return nil
}
