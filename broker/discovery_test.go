package broker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCountries is a store's Countries whose answers a test scripts.
type fakeCountries struct {
	mu    sync.Mutex
	calls int
	list  []string
	err   error
}

func (f *fakeCountries) fetch(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.list, f.err
}

func (f *fakeCountries) set(list []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list, f.err = list, err
}

func (f *fakeCountries) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestCountryCache: the federation document's countries are asked of the
// store at most once a minute when it answers, and once every few seconds
// when it does not; a failure serves the last good list, stale, and fails
// only when there never was one.
func TestCountryCache(t *testing.T) {
	t.Parallel()
	down := errors.New("store down")
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	type step struct {
		at        time.Duration // since t0
		list      []string      // what the store answers from now on
		err       error
		want      []string
		wantErr   bool
		wantCalls int // calls of the store so far
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"cached for a minute", []step{
			{at: 0, list: []string{"SE"}, want: []string{"SE"}, wantCalls: 1},
			{at: 30 * time.Second, list: []string{"NO", "SE"}, want: []string{"SE"}, wantCalls: 1},
			{at: countriesTTL - time.Nanosecond, want: []string{"SE"}, wantCalls: 1},
			{at: countriesTTL, want: []string{"NO", "SE"}, wantCalls: 2},
		}},
		{"a failure serves the last good list", []step{
			{at: 0, list: []string{"SE"}, want: []string{"SE"}, wantCalls: 1},
			{at: countriesTTL, err: down, want: []string{"SE"}, wantCalls: 2},
			// Not retried at once: the store is spared while it is down.
			{at: countriesTTL + time.Second, want: []string{"SE"}, wantCalls: 2},
			{at: countriesTTL + countriesRetry, list: []string{"DK"}, want: []string{"DK"}, wantCalls: 3},
		}},
		{"a failure with nothing to serve", []step{
			{at: 0, err: down, wantErr: true, wantCalls: 1},
			{at: time.Second, list: []string{"SE"}, wantErr: true, wantCalls: 1},
			{at: countriesRetry, want: []string{"SE"}, wantCalls: 2},
		}},
		{"a clock that went back refreshes", []step{
			{at: time.Hour, list: []string{"SE"}, want: []string{"SE"}, wantCalls: 1},
			{at: 0, list: []string{"NO"}, want: []string{"NO"}, wantCalls: 2},
		}},
		{"empty is an answer", []step{
			{at: 0, want: nil, wantCalls: 1},
			{at: time.Second, list: []string{"SE"}, want: nil, wantCalls: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cc countryCache
			store := &fakeCountries{}
			for i, s := range tc.steps {
				if s.list != nil || s.err != nil {
					store.set(s.list, s.err)
				}
				got, err := cc.get(context.Background(), t0.Add(s.at), store.fetch, slog.New(slog.DiscardHandler))
				if (err != nil) != s.wantErr || !slices.Equal(got, s.want) {
					t.Fatalf("step %d: %q, %v; want %q, error %v", i, got, err, s.want, s.wantErr)
				}
				if n := store.count(); n != s.wantCalls {
					t.Fatalf("step %d: the store was asked %d times, want %d", i, n, s.wantCalls)
				}
			}
		})
	}
}

// TestCountryCacheSharesRefresh: requests that find the cache stale at
// once share one call of the store, and one caller going away fails
// neither the call nor the others.
func TestCountryCacheSharesRefresh(t *testing.T) {
	t.Parallel()
	var cc countryCache
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context) ([]string, error) {
		calls.Add(1)
		<-release
		// The refresh's context is not the first caller's, which is
		// cancelled by now.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return []string{"SE"}, nil
	}
	now := time.Now()
	first, cancelFirst := context.WithCancel(context.Background())
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ctx := context.Background()
		if i == 0 {
			ctx = first
		}
		wg.Go(func() {
			got, err := cc.get(ctx, now, fetch, slog.New(slog.DiscardHandler))
			if err == nil && !slices.Equal(got, []string{"SE"}) {
				err = errors.New("wrong list")
			}
			errs <- err
		})
	}
	// Let every caller reach the refresh, then drop the first.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	cancelFirst()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Callers that arrived after the refresh ended found the list cached.
	if c := calls.Load(); c != 1 {
		t.Errorf("the store was asked %d times, want 1", c)
	}
}
