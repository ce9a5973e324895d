// Package guard keeps the abuse controls every broker replica shares, in
// JetStream key-value buckets so that they hold whichever replica a caller
// reaches and survive restarts: the blocks that follow a person's "not me",
// and the nonces of signed requests, so none is accepted twice.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	BlocksBucket = "MFA_BLOCKS"
	NoncesBucket = "MFA_NONCES"
)

// Blocklist records which callers may not ask which people, until when.
// Reads are answered from memory, which a watcher keeps in step with the
// bucket, so checking a request costs no round trip.
type Blocklist struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	entries map[string]time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewBlocklist opens (or creates) the blocks bucket. Entries outlive their
// block by nothing: the bucket forgets them after maxBlock.
func NewBlocklist(ctx context.Context, nc *nats.Conn, maxBlock time.Duration, replicas int, log *slog.Logger) (*Blocklist, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BlocksBucket,
		Description: "callers blocked from asking a person after the person answered 'not me'",
		TTL:         maxBlock,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("blocks bucket: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch blocks: %w", err)
	}
	b := &Blocklist{kv: kv, log: log, entries: make(map[string]time.Time), cancel: cancel, done: make(chan struct{})}
	// The watcher first replays every current entry, then a nil marks the
	// end of the replay: only then is the cache complete.
	ready := make(chan struct{})
	go b.follow(w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		b.Close()
		return nil, fmt.Errorf("load blocks: %w", ctx.Err())
	}
	return b, nil
}

func (b *Blocklist) follow(w jetstream.KeyWatcher, ready chan struct{}) {
	defer close(b.done)
	defer w.Stop()
	signalled := false
	for e := range w.Updates() {
		if e == nil {
			if !signalled {
				close(ready)
				signalled = true
			}
			continue
		}
		b.mu.Lock()
		switch e.Operation() {
		case jetstream.KeyValuePut:
			if until, err := parseUnixNano(e.Value()); err == nil {
				b.entries[e.Key()] = until
			}
		default:
			delete(b.entries, e.Key())
		}
		b.mu.Unlock()
	}
	if !signalled {
		close(ready)
	}
}

// Block keeps key blocked until the given time.
func (b *Blocklist) Block(ctx context.Context, key string, until time.Time) error {
	if _, err := b.kv.Put(ctx, key, []byte(strconv.FormatInt(until.UnixNano(), 10))); err != nil {
		return fmt.Errorf("record block: %w", err)
	}
	// Seen here at once; other replicas see it through their watchers.
	b.mu.Lock()
	b.entries[key] = until
	b.mu.Unlock()
	return nil
}

// Blocked reports whether key is blocked at now, and until when.
func (b *Blocklist) Blocked(key string, now time.Time) (time.Time, bool) {
	b.mu.RLock()
	until, ok := b.entries[key]
	b.mu.RUnlock()
	if !ok || !now.Before(until) {
		return time.Time{}, false
	}
	return until, true
}

// Close stops following the bucket.
func (b *Blocklist) Close() {
	b.cancel()
	<-b.done
}

func parseUnixNano(v []byte) (time.Time, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n), nil
}

// ReplayGuard remembers every nonce a signed request used, for as long as
// such a request could still be accepted, so none is accepted twice.
type ReplayGuard struct {
	kv jetstream.KeyValue
}

// NewReplayGuard opens (or creates) the nonces bucket; entries live for
// remember, which must exceed the time a signed request stays acceptable.
func NewReplayGuard(ctx context.Context, nc *nats.Conn, remember time.Duration, replicas int) (*ReplayGuard, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      NoncesBucket,
		Description: "nonces of signed MFA requests, so that none is accepted twice",
		TTL:         remember,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("nonces bucket: %w", err)
	}
	return &ReplayGuard{kv: kv}, nil
}

// FirstUse records key and reports whether it was new. Creating the key is
// atomic in JetStream, so of two replicas racing with one request exactly
// one sees it as new.
func (g *ReplayGuard) FirstUse(ctx context.Context, key string) (bool, error) {
	_, err := g.kv.Create(ctx, key, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("record nonce: %w", err)
}
