// Package guard keeps the abuse controls every broker replica shares, in
// JetStream key-value buckets so that they hold whichever replica a caller
// reaches and survive restarts: the blocks that follow a person's "not me",
// and the nonces of signed requests, so none is accepted twice.
package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
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

// Block is one caller blocked from asking one person. Key names both by
// keyed hashes (the broker's "<caller>.<person>"); nothing in a block is
// personal data in the clear.
type Block struct {
	Key string `json:"-"`
	// Since is when the person answered "not me", RequestID to which
	// request; Until is when the block ends.
	Since     time.Time `json:"Since"`
	Until     time.Time `json:"Until"`
	RequestID string    `json:"RequestId,omitempty"`
}

// Blocklist records which callers may not ask which people, until when.
// Reads are answered from memory, which a watcher keeps in step with the
// bucket, so checking a request costs no round trip, and a block recorded
// or removed through any replica reaches every other.
type Blocklist struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	entries map[string]Block
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
	b := &Blocklist{kv: kv, log: log, entries: make(map[string]Block), cancel: cancel, done: make(chan struct{})}
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
			if blk, err := decodeBlock(e.Key(), e.Value(), e.Created()); err == nil {
				b.entries[e.Key()] = blk
			} else {
				b.log.Warn("unreadable block ignored", "key", e.Key(), "err", err)
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

// decodeBlock reads a block as stored: JSON, or the bare Unix nanoseconds
// of its end that brokers before Since and RequestId wrote.
func decodeBlock(key string, v []byte, stored time.Time) (Block, error) {
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return Block{Key: key, Since: stored, Until: time.Unix(0, n)}, nil
	}
	var blk Block
	if err := json.Unmarshal(v, &blk); err != nil {
		return Block{}, err
	}
	blk.Key = key
	return blk, nil
}

// Block records blk; its key stays blocked until blk.Until.
func (b *Blocklist) Block(ctx context.Context, blk Block) error {
	v, err := json.Marshal(blk)
	if err != nil {
		return fmt.Errorf("record block: %w", err)
	}
	if _, err := b.kv.Put(ctx, blk.Key, v); err != nil {
		return fmt.Errorf("record block: %w", err)
	}
	// Seen here at once; other replicas see it through their watchers.
	b.mu.Lock()
	b.entries[blk.Key] = blk
	b.mu.Unlock()
	return nil
}

// Blocked reports whether key is blocked at now, and until when.
func (b *Blocklist) Blocked(key string, now time.Time) (time.Time, bool) {
	b.mu.RLock()
	blk, ok := b.entries[key]
	b.mu.RUnlock()
	if !ok || !now.Before(blk.Until) {
		return time.Time{}, false
	}
	return blk.Until, true
}

// List returns the blocks in force at now, ordered by key.
func (b *Blocklist) List(now time.Time) []Block {
	b.mu.RLock()
	out := make([]Block, 0, len(b.entries))
	for _, blk := range b.entries {
		if now.Before(blk.Until) {
			out = append(out, blk)
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y Block) int { return strings.Compare(x.Key, y.Key) })
	return out
}

// InForce counts the blocks in force at now, without copying them: a
// metrics scrape reads it.
func (b *Blocklist) InForce(now time.Time) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, blk := range b.entries {
		if now.Before(blk.Until) {
			n++
		}
	}
	return n
}

// ErrNoBlock: there is no such block in force.
var ErrNoBlock = errors.New("no such block")

// Unblock lifts the block on key, on every replica. Lifting a block that
// is not in force is ErrNoBlock.
func (b *Blocklist) Unblock(ctx context.Context, key string, now time.Time) error {
	if _, blocked := b.Blocked(key, now); !blocked {
		return fmt.Errorf("%w: %s", ErrNoBlock, key)
	}
	// A delete marker, not a purge: a replica whose watcher is behind
	// still learns of it.
	if err := b.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("lift block: %w", err)
	}
	b.mu.Lock()
	delete(b.entries, key)
	b.mu.Unlock()
	return nil
}

// Close stops following the bucket.
func (b *Blocklist) Close() {
	b.cancel()
	<-b.done
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
