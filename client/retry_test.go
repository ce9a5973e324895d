package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// refuse answers the first n requests of method as the broker does when it
// is busy (429 rate-limited, or 503 too-busy), with Retry-After: after.
func refuse(method string, n, status int, after string) func(http.ResponseWriter, *http.Request, int) bool {
	return func(w http.ResponseWriter, r *http.Request, i int) bool {
		if r.Method != method || i > n {
			return false
		}
		code := api.CodeRateLimited
		if status == http.StatusServiceUnavailable {
			code = api.CodeTooBusy
		}
		answer(w, status, after, api.Response{Code: code, Message: "busy"})
		return true
	}
}

// TestCollectRetried: a collect or cancel answered 429 or 503 is tried
// again after the answer's Retry-After, and the last attempt reaches the
// real broker (which knows no such order: not-found, from the broker
// itself). With the real clock the pause is really taken.
func TestCollectRetried(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	for _, c := range []struct {
		name   string
		method string
		status int
		n      int
	}{
		{"collect after 429", http.MethodGet, http.StatusTooManyRequests, 2},
		{"collect after 503", http.MethodGet, http.StatusServiceUnavailable, 1},
		{"cancel after 429", http.MethodDelete, http.StatusTooManyRequests, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newProxy(t, b.url, refuse(c.method, c.n, c.status, "1"))
			clock := &fakeClock{}
			cl := newClient(t, p.URL, client.WithClock(clock))
			var err error
			if c.method == http.MethodGet {
				_, err = cl.Collect(context.Background(), unknownRef, 0)
			} else {
				err = cl.Cancel(context.Background(), unknownRef)
			}
			var e *client.Error
			if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &e) || e.Status != http.StatusNotFound {
				t.Fatalf("%v, want the broker's not-found", err)
			}
			if seen, fwd := p.counts(c.method); seen != c.n+1 || fwd != 1 {
				t.Errorf("the proxy saw %d and passed on %d, want %d and 1", seen, fwd, c.n+1)
			}
			if want := slices.Repeat([]time.Duration{time.Second}, c.n); !slices.Equal(clock.Waits(), want) {
				t.Errorf("waited %v, want %v", clock.Waits(), want)
			}
		})
	}
	t.Run("real clock", func(t *testing.T) {
		t.Parallel()
		p := newProxy(t, b.url, refuse(http.MethodGet, 1, http.StatusTooManyRequests, "1"))
		start := time.Now()
		_, err := newClient(t, p.URL).Collect(context.Background(), unknownRef, 0)
		if !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("retried after %s, before the Retry-After of 1 s", d)
		}
	})
}

// TestPostNotRetried: a 429 or 503 answer to POST /MFA or POST /Orders is
// the caller's error, with its RetryAfter; the request went once.
func TestPostNotRetried(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	for _, c := range []struct {
		name   string
		status int
		orders bool
		html   bool
		want   error
	}{
		{"MFA 429", http.StatusTooManyRequests, false, false, client.ErrRateLimited},
		{"MFA 503", http.StatusServiceUnavailable, false, false, client.ErrTooBusy},
		{"MFA 503 from a load balancer", http.StatusServiceUnavailable, false, true, client.ErrUnexpectedResponse},
		{"Orders 429", http.StatusTooManyRequests, true, false, client.ErrRateLimited},
		{"Orders 503", http.StatusServiceUnavailable, true, false, client.ErrTooBusy},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inject := refuse(http.MethodPost, 1000, c.status, "1")
			if c.html {
				inject = func(w http.ResponseWriter, r *http.Request, _ int) bool {
					w.Header().Set("Content-Type", "text/html")
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(c.status)
					w.Write([]byte("<h1>503 Service Unavailable</h1>"))
					return true
				}
			}
			p := newProxy(t, b.url, inject)
			clock := &fakeClock{}
			cl := newClient(t, p.URL, client.WithClock(clock), client.WithRetry(client.RetryPolicy{MaxAttempts: 10, MaxWait: time.Hour}))
			var err error
			if c.orders {
				_, err = cl.Order(context.Background(), request("19791231-1234"))
			} else {
				_, err = cl.MFA(context.Background(), request("19791231-1234"))
			}
			var e *client.Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Status != c.status || e.RetryAfter != time.Second {
				t.Fatalf("%v (%+v), want %v with RetryAfter 1 s", err, e, c.want)
			}
			if seen, _ := p.counts(http.MethodPost); seen != 1 {
				t.Errorf("the POST was sent %d times", seen)
			}
			if len(clock.Waits()) != 0 {
				t.Errorf("the client waited %v", clock.Waits())
			}
		})
	}
}

// TestRetryLimits: retries stop at MaxAttempts, before a Retry-After that
// would take the total wait past MaxWait, and before one that would
// outlive the context; a collect whose answer is the order's final
// outcome (order-lost, or a 503 outcome with the Order) is not retried.
func TestRetryLimits(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	final := func(code api.Code, withOrder bool) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, _ int) bool {
			ans := api.Response{Code: code, Message: "over"}
			if withOrder {
				ans.Order = &api.Order{Ref: unknownRef, Expires: "2026-01-01T00:00:00Z"}
			}
			answer(w, http.StatusServiceUnavailable, "1", ans)
			return true
		}
	}
	for _, c := range []struct {
		name     string
		inject   func(http.ResponseWriter, *http.Request, int) bool
		policy   client.RetryPolicy
		deadline time.Duration
		attempts int
		want     error
	}{
		{"attempts", refuse(http.MethodGet, 1000, http.StatusTooManyRequests, "1"), client.RetryPolicy{MaxAttempts: 4}, 0, 4, client.ErrRateLimited},
		{"default attempts", refuse(http.MethodGet, 1000, http.StatusServiceUnavailable, "1"), client.RetryPolicy{}, 0, client.DefaultRetryPolicy.MaxAttempts, client.ErrTooBusy},
		{"total wait", refuse(http.MethodGet, 1000, http.StatusTooManyRequests, "4"), client.RetryPolicy{MaxAttempts: 10, MaxWait: 10 * time.Second}, 0, 3, client.ErrRateLimited},
		{"retry after past the wait", refuse(http.MethodGet, 1000, http.StatusTooManyRequests, "60"), client.RetryPolicy{MaxAttempts: 10, MaxWait: 10 * time.Second}, 0, 1, client.ErrRateLimited},
		{"retry after past the context", refuse(http.MethodGet, 1000, http.StatusTooManyRequests, "60"), client.RetryPolicy{MaxAttempts: 10, MaxWait: time.Hour}, 30 * time.Second, 1, client.ErrRateLimited},
		{"order lost", final(api.CodeOrderLost, false), client.RetryPolicy{MaxAttempts: 10}, 0, 1, client.ErrOrderLost},
		{"ended shutting down", final(api.CodeShuttingDown, true), client.RetryPolicy{MaxAttempts: 10}, 0, 1, client.ErrShuttingDown},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newProxy(t, b.url, c.inject)
			clock := &fakeClock{}
			cl := newClient(t, p.URL, client.WithClock(clock), client.WithRetry(c.policy))
			ctx := context.Background()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			_, err := cl.Collect(ctx, unknownRef, 0)
			if !errors.Is(err, c.want) {
				t.Fatalf("%v, want %v", err, c.want)
			}
			if seen, _ := p.counts(http.MethodGet); seen != c.attempts {
				t.Errorf("%d attempts, want %d", seen, c.attempts)
			}
			if n := len(clock.Waits()); n != c.attempts-1 {
				t.Errorf("waited %d times, want %d", n, c.attempts-1)
			}
		})
	}
}

// TestPostRetriedOnlyBeforeSending: a POST whose connection could not be
// made is sent again (the broker cannot have seen it) and approved; one
// whose connection broke after it was sent is not.
func TestPostRetriedOnlyBeforeSending(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)

	t.Run("dial failed", func(t *testing.T) {
		t.Parallel()
		pnr, dev := b.person(t, notifytest.Always(notify.Approve))
		var dials atomic.Int64
		var d net.Dialer
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
			}
			return d.DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		clock := &fakeClock{}
		cl := b.client(t, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithClock(clock))
		if _, err := cl.MFA(context.Background(), request(pnr)); err != nil {
			t.Fatal(err)
		}
		if dials.Load() != 2 || len(clock.Waits()) != 1 || dev.PromptCount() != 1 {
			t.Errorf("%d dials, waits %v, %d prompts; want 2, one, 1", dials.Load(), clock.Waits(), dev.PromptCount())
		}
	})

	t.Run("connection broke after sending", func(t *testing.T) {
		t.Parallel()
		var got atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		clock := &fakeClock{}
		_, err := newClient(t, srv.URL, client.WithClock(clock), client.WithRetry(client.RetryPolicy{MaxAttempts: 10})).MFA(context.Background(), request("19791231-1234"))
		if err == nil || errors.As(err, new(*client.Error)) {
			t.Fatalf("%v, want a transport error", err)
		}
		if got.Load() != 1 || len(clock.Waits()) != 0 {
			t.Errorf("the server got the POST %d times; waits %v", got.Load(), clock.Waits())
		}
	})
}

// TestCollectEndsWithContext: a long poll ends at once when its context
// does, however long it asked to wait.
func TestCollectEndsWithContext(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	arrived := make(chan struct{}, 1)
	// The proxy holds collects until the client goes away, as a broker
	// holds the long poll of a pending order.
	p := newProxy(t, b.url, func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/Orders/") {
			return false
		}
		if r.URL.Query().Get("wait") != "30" {
			http.Error(w, "wait="+r.URL.Query().Get("wait"), http.StatusBadRequest)
			return true
		}
		arrived <- struct{}{}
		<-r.Context().Done()
		return true
	})
	cl := newClient(t, p.URL)
	for name, wait := range map[string]func(context.Context) error{
		"Collect": func(ctx context.Context) error { _, err := cl.Collect(ctx, unknownRef, time.Hour); return err },
		"Wait":    func(ctx context.Context) error { _, err := cl.Wait(ctx, unknownRef); return err },
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- wait(ctx) }()
		<-arrived
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s ended %s after its context", name, d)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not end with its context", name)
		}
	}
}
