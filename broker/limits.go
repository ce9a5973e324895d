package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/legalmfa/mfa/guard"
)

// Rate is how many events are allowed per period; the burst is as large
// as the count, so a quiet caller may use a whole period's worth at once.
// A zero Rate means no limit.
type Rate struct {
	Events int
	Per    time.Duration
}

// ParseRate reads "N/duration" such as "6/1m", or "0" for no limit.
func ParseRate(s string) (Rate, error) {
	if strings.TrimSpace(s) == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	events, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || events < 1 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration such as 6/1m, or 0 for no limit", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration such as 6/1m, or 0 for no limit", s)
	}
	return Rate{Events: events, Per: d}, nil
}

func (r Rate) String() string {
	if r.Events == 0 {
		return "0"
	}
	return strconv.Itoa(r.Events) + "/" + r.Per.String()
}

// keyedLimiter is one token bucket per key. Idle buckets are forgotten
// once they would be full again, so memory follows the active keys.
type keyedLimiter struct {
	rate    Rate
	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(r Rate) *keyedLimiter {
	return &keyedLimiter{rate: r, buckets: make(map[string]*bucket)}
}

// sweepEvery bounds how often idle buckets are looked for.
const sweepEvery = 4096

// take spends one event for every key, all or none, and returns how long
// to wait when any of them is used up.
func (l *keyedLimiter) take(now time.Time, keys ...string) time.Duration {
	_, wait := l.reserve(now, keys...)
	return wait
}

// reserve is take, and returns a function that gives the events back: a
// request charged up front to one budget can be moved to another once it
// is known whose it is.
func (l *keyedLimiter) reserve(now time.Time, keys ...string) (refund func(), wait time.Duration) {
	nothing := func() {}
	if l == nil || l.rate.Events == 0 {
		return nothing, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%sweepEvery == 0 {
		for k, b := range l.buckets {
			if now.Sub(b.last) > l.rate.Per {
				delete(l.buckets, k)
			}
		}
	}
	reservations := make([]*rate.Reservation, 0, len(keys))
	for _, k := range keys {
		b := l.buckets[k]
		if b == nil {
			every := rate.Every(l.rate.Per / time.Duration(l.rate.Events))
			b = &bucket{lim: rate.NewLimiter(every, l.rate.Events)}
			l.buckets[k] = b
		}
		b.last = now
		r := b.lim.ReserveN(now, 1)
		reservations = append(reservations, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait > 0 {
		for _, r := range reservations {
			r.CancelAt(now)
		}
		return nothing, wait
	}
	return func() {
		for _, r := range reservations {
			r.CancelAt(now)
		}
	}, 0
}

// Blocklist records which callers may not ask which people, under keys
// "<caller hash>.<person hash>". The broker's is shared by every replica
// (guard.Blocklist); operators list and lift blocks.
type Blocklist interface {
	Block(ctx context.Context, b guard.Block) error
	Blocked(key string, now time.Time) (time.Time, bool)
	List(now time.Time) []guard.Block
	Unblock(ctx context.Context, key string, now time.Time) error
}

// ReplayGuard tells whether a signed request's nonce is used for the first
// time (guard.ReplayGuard).
type ReplayGuard interface {
	FirstUse(ctx context.Context, key string) (bool, error)
}

// WithCallerRate limits requests per caller: per requester identity for
// signed requests, per remote address otherwise.
func WithCallerRate(r Rate) Option { return func(b *Broker) { b.callerLimit = newKeyedLimiter(r) } }

// WithIdentityRate limits pushes per identity, against push fatigue: r
// for requests nobody signed, signed for requests a verified requester
// signed. The budgets are apart, so that anyone who knows a person's
// number and sends unsigned requests cannot spend the one a bank's signed
// requests need.
func WithIdentityRate(r, signed Rate) Option {
	return func(b *Broker) { b.identityLimit, b.signedIdentityLimit = newKeyedLimiter(r), newKeyedLimiter(signed) }
}

// WithApplyRate limits identity applications per remote address, apart
// from MFA requests: a person applies once per device.
func WithApplyRate(r Rate) Option { return func(b *Broker) { b.applyLimit = newKeyedLimiter(r) } }

// WithOpenApplications lets anyone apply for an identity (POST /Identities)
// when open; closed, applications are refused and identities come another
// way (an operator's enrolment).
func WithOpenApplications(open bool) Option { return func(b *Broker) { b.applicationsClosed = !open } }

// WithBodyMemory bounds the request bodies all requests together may hold
// in memory while they are read: a request that would pass it is answered
// 503 too-busy at once, however slowly its body was coming.
func WithBodyMemory(bytes int64) Option {
	return func(b *Broker) {
		if bytes > 0 {
			b.bodies = semaphore.NewWeighted(bytes)
		}
	}
}

// WithNotMeBlock blocks a caller from asking a person again for d after
// the person answered "not me", recording blocks in list.
func WithNotMeBlock(list Blocklist, d time.Duration) Option {
	return func(b *Broker) { b.blocks, b.notMeBlock = list, d }
}

// WithReplayGuard makes signed requests usable once, and only within
// window of the time they say they were signed.
func WithReplayGuard(g ReplayGuard, window time.Duration) Option {
	return func(b *Broker) { b.replays, b.signatureWindow = g, window }
}

// WithMaxPending bounds the MFA requests waiting at once; more get 503.
func WithMaxPending(n int) Option { return func(b *Broker) { b.maxPending = n } }

// retryAfter rounds a wait up to whole seconds, at least one.
func retryAfter(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
