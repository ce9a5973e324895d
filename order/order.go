// Package order keeps the asynchronous orders of POST /Orders where every
// broker replica sees them: a JetStream key-value bucket. The replica that
// pushed an order runs it and writes how far it has got and how it ended;
// any replica answers a collect or a cancel from the bucket, and one
// watcher per replica wakes the collects waiting there and hands cancels to
// the replica running the order.
//
// An order is stored under the SHA-256 of its reference, never the
// reference itself: the reference is the relying party's bearer secret,
// and a look-up by its hash takes the same time however close a guess is.
// Nothing in an order is personal data: no PNR, no Reason.
package order

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/api"
)

// Bucket is the name of the orders bucket.
const Bucket = "MFA_ORDERS"

// ErrNotFound: no order has this reference, or it ended longer ago than
// it is kept.
var ErrNotFound = errors.New("no such order")

// ErrUnavailable: the bucket could not be read or written.
var ErrUnavailable = errors.New("the order store is unavailable")

// State is an order as stored. Pending while Ended is zero.
type State struct {
	RequestID string `json:"RequestId"`
	// Requester is the LegalId of a signed order, whose signature its
	// collects and cancels must carry; "" for an unsigned one.
	Requester string `json:"Requester,omitempty"`
	// Holder names the broker process running the order, for operators
	// tracing a lost one in the bucket.
	Holder      string    `json:"Holder"`
	Expires     time.Time `json:"Expires"`
	NumberMatch string    `json:"NumberMatch,omitempty"`
	Hint        api.Hint  `json:"Hint,omitempty"`
	// Cancel asks the holder to end the order as cancelled.
	Cancel bool `json:"Cancel,omitempty"`
	// Ended is when the outcome was written; Outcome is the answer /MFA
	// would have given.
	Ended   time.Time     `json:"Ended,omitzero"`
	Outcome *api.Response `json:"Outcome,omitempty"`
}

// Pending reports whether the order has not ended.
func (s State) Pending() bool { return s.Ended.IsZero() }

// Config is how long orders are kept.
type Config struct {
	// MaxTimeout is the longest an order may be pending.
	MaxTimeout time.Duration
	// Retention is how long an ended order can still be collected.
	Retention time.Duration
	// LostAfter is how long past its expiry a pending order is taken for
	// lost: its holder stopped without writing an outcome.
	LostAfter time.Duration
	Replicas  int
	Logger    *slog.Logger
	// Now is the clock of expiries and retention; nil is time.Now.
	Now func() time.Time
}

// Book is one replica's view of the shared orders.
type Book struct {
	kv       jetstream.KeyValue
	cfg      Config
	instance string

	mu sync.Mutex
	// waiters are the collects waiting here for a change, by key; each
	// hears the revision of every write.
	waiters map[string]map[chan uint64]struct{}
	// running are the orders this process runs, by key: the cancel of
	// each one's wait.
	running map[string]context.CancelFunc

	stopWatch context.CancelFunc
	watching  chan struct{}
}

// Open opens (or creates) the orders bucket and starts following it.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Book, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "asynchronous MFA orders: where each stands, and how it ended",
		// Every write renews an entry's age; an order's last write is its
		// outcome, or, for one whose holder died, its last hint. Either
		// way it is kept past every use: pending, then lost, then
		// retained.
		TTL:      cfg.MaxTimeout + cfg.LostAfter + cfg.Retention + time.Minute,
		Storage:  jetstream.FileStorage,
		Replicas: max(cfg.Replicas, 1),
		History:  1,
	})
	if err != nil {
		return nil, fmt.Errorf("orders bucket: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	// Only updates: a collect waits for a change after it looked.
	w, err := kv.WatchAll(wctx, jetstream.UpdatesOnly())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch orders: %w", err)
	}
	b := &Book{
		kv: kv, cfg: cfg, instance: strings.ToLower(rand.Text()[:16]),
		waiters:   make(map[string]map[chan uint64]struct{}),
		running:   make(map[string]context.CancelFunc),
		stopWatch: cancel,
		watching:  make(chan struct{}),
	}
	go b.follow(w)
	return b, nil
}

// Close stops following the bucket. Collects waiting here return what
// they last saw.
func (b *Book) Close() {
	b.stopWatch()
	<-b.watching
}

// NewRef makes an order reference: 128 random bits, api.IsOrderRef.
func NewRef() string { return strings.ToLower(rand.Text()) }

// key is where an order is stored: the hex SHA-256 of its reference.
func key(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(sum[:])
}

// Create stores a new order, held by this process.
func (b *Book) Create(ctx context.Context, ref string, s State) error {
	s.Holder = b.instance
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode order: %w", err)
	}
	if _, err := b.kv.Create(ctx, key(ref), v); err != nil {
		return fmt.Errorf("%w: create order: %w", ErrUnavailable, err)
	}
	return nil
}

// Get reads an order as a collect sees it: a pending order long past its
// expiry is lost, and an order that ended longer than the retention ago
// is ErrNotFound.
func (b *Book) Get(ctx context.Context, ref string) (State, error) {
	s, _, err := b.get(ctx, key(ref))
	if err != nil {
		return State{}, err
	}
	return b.seen(s)
}

func (b *Book) get(ctx context.Context, k string) (State, uint64, error) {
	e, err := b.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return State{}, 0, ErrNotFound
	case err != nil:
		return State{}, 0, fmt.Errorf("%w: read order: %w", ErrUnavailable, err)
	}
	var s State
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return State{}, 0, fmt.Errorf("read order: %w", err)
	}
	return s, e.Revision(), nil
}

// seen applies the clock to a stored order.
func (b *Book) seen(s State) (State, error) {
	now := b.cfg.Now()
	if s.Pending() {
		lostAt := s.Expires.Add(b.cfg.LostAfter)
		if now.Before(lostAt) {
			return s, nil
		}
		s.Ended, s.Hint = lostAt, ""
		s.Outcome = &api.Response{Code: api.CodeOrderLost, RequestID: s.RequestID,
			Message: "The broker replica holding the order stopped before it ended; whether the person answered is not known. Place a new order."}
	}
	if now.Sub(s.Ended) > b.cfg.Retention {
		return State{}, ErrNotFound
	}
	return s, nil
}

// Modify changes an order with change, which reports whether it changed
// anything, and writes it back only if no one else wrote it meanwhile
// (else it reads again and asks change again). It returns the order as
// stored in the end.
func (b *Book) Modify(ctx context.Context, ref string, change func(*State) bool) (State, error) {
	k := key(ref)
	for {
		s, rev, err := b.get(ctx, k)
		if err != nil {
			return State{}, err
		}
		if !change(&s) {
			return s, nil
		}
		v, err := json.Marshal(s)
		if err != nil {
			return State{}, fmt.Errorf("encode order: %w", err)
		}
		_, err = b.kv.Update(ctx, k, v, rev)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return State{}, fmt.Errorf("%w: write order: %w", ErrUnavailable, err)
		}
		// Someone else wrote first (jetstream reports a wrong revision as
		// ErrKeyExists): read again.
		if ctx.Err() != nil {
			return State{}, ctx.Err()
		}
	}
}

// Await is a collect that waits: it returns the order at once if it has
// ended, wait is up, or its hint is not seen (the hint the caller saw
// last, "" for none); otherwise at its first change, when wait ends, or
// when it would be taken for lost.
func (b *Book) Await(ctx context.Context, ref string, wait time.Duration, seen api.Hint) (State, error) {
	k := key(ref)
	changes := b.watch(k)
	defer b.unwatch(k, changes)
	stored, rev, err := b.get(ctx, k)
	if err != nil {
		return State{}, err
	}
	s, err := b.seen(stored)
	if err != nil || !s.Pending() || wait <= 0 || (seen != "" && s.Hint != seen) {
		return s, err
	}
	wait = min(wait, s.Expires.Add(b.cfg.LostAfter).Sub(b.cfg.Now()))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case r := <-changes:
			if r <= rev {
				// A write this collect has already read, heard late.
				continue
			}
		case <-timer.C:
		case <-ctx.Done():
			return s, ctx.Err()
		}
		return b.Get(ctx, ref)
	}
}

// watch registers a waiter for writes to key.
func (b *Book) watch(k string) chan uint64 {
	ch := make(chan uint64, 1)
	b.mu.Lock()
	if b.waiters[k] == nil {
		b.waiters[k] = make(map[chan uint64]struct{})
	}
	b.waiters[k][ch] = struct{}{}
	b.mu.Unlock()
	return ch
}

// notify hands a waiter the latest revision without waiting for it: an
// unread older one is replaced. Only the watcher sends, so the channel
// cannot fill up between taking the old value and putting the new.
func notify(ch chan uint64, rev uint64) {
	select {
	case ch <- rev:
	case old := <-ch:
		ch <- max(old, rev)
	}
}

func (b *Book) unwatch(k string, ch chan uint64) {
	b.mu.Lock()
	delete(b.waiters[k], ch)
	if len(b.waiters[k]) == 0 {
		delete(b.waiters, k)
	}
	b.mu.Unlock()
}

// Run registers an order this process runs: a cancel written to it, by
// any replica, calls cancel. done unregisters it.
func (b *Book) Run(ref string, cancel context.CancelFunc) (done func()) {
	k := key(ref)
	b.mu.Lock()
	b.running[k] = cancel
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.running, k)
		b.mu.Unlock()
	}
}

// Running is how many orders this process runs.
func (b *Book) Running() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.running)
}

// follow hears every write to the bucket, from every replica: it wakes
// the collects waiting for that order here, and if this process runs the
// order and the write asks to cancel it, cancels its wait.
func (b *Book) follow(w jetstream.KeyWatcher) {
	defer close(b.watching)
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		k := e.Key()
		b.mu.Lock()
		for ch := range b.waiters[k] {
			notify(ch, e.Revision())
		}
		cancel := b.running[k]
		b.mu.Unlock()
		if cancel == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		var s State
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			b.cfg.Logger.Warn("unreadable order ignored", "err", err)
			continue
		}
		if s.Cancel && s.Pending() {
			cancel()
		}
	}
}
