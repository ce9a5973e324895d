package service

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// storeObserver hears how long each identity store operation took
// (metrics.Metrics is one). unavailable says the store failed, rather
// than refusing what was asked (not found, a conflict).
type storeObserver interface {
	StoreOperation(op string, d time.Duration, unavailable bool)
}

// timedStore times every operation of the store it wraps, whichever store
// that is: the embedded one and MongoDB are timed alike, at the broker's
// side, network included.
type timedStore struct {
	identity.Store
	obs storeObserver
}

func (s timedStore) done(op string, start time.Time, err error) {
	s.obs.StoreOperation(op, time.Since(start), errors.Is(err, identity.ErrUnavailable))
}

func (s timedStore) Create(ctx context.Context, id identity.Identity) error {
	start := time.Now()
	err := s.Store.Create(ctx, id)
	s.done("create", start, err)
	return err
}

func (s timedStore) Get(ctx context.Context, id string) (identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.Get(ctx, id)
	s.done("get", start, err)
	return out, err
}

func (s timedStore) GetByPublicKey(ctx context.Context, key ed25519.PublicKey) (identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.GetByPublicKey(ctx, key)
	s.done("get-by-key", start, err)
	return out, err
}

func (s timedStore) FindValid(ctx context.Context, pnr, country string, at time.Time) ([]identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.FindValid(ctx, pnr, country, at)
	s.done("find-valid", start, err)
	return out, err
}

func (s timedStore) FindPerson(ctx context.Context, pnr, country string) ([]identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.FindPerson(ctx, pnr, country)
	s.done("find-person", start, err)
	return out, err
}

func (s timedStore) Countries(ctx context.Context) ([]string, error) {
	start := time.Now()
	out, err := s.Store.Countries(ctx)
	s.done("countries", start, err)
	return out, err
}

func (s timedStore) List(ctx context.Context, q identity.Query) ([]identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.List(ctx, q)
	s.done("list", start, err)
	return out, err
}

func (s timedStore) Transition(ctx context.Context, id string, c identity.Change) (identity.Identity, error) {
	start := time.Now()
	out, err := s.Store.Transition(ctx, id, c)
	s.done("transition", start, err)
	return out, err
}

func (s timedStore) PurgeApplications(ctx context.Context, appliedBefore time.Time) (int, error) {
	start := time.Now()
	n, err := s.Store.PurgeApplications(ctx, appliedBefore)
	s.done("purge", start, err)
	return n, err
}

func (s timedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.done("ping", start, err)
	return err
}
