package order_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/order"
)

// clock is a settable time shared by the books of a test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) cfg() order.Config {
	return order.Config{MaxTimeout: 5 * time.Minute, Retention: 10 * time.Minute, LostAfter: 15 * time.Second, Replicas: 1, Logger: bustest.Quiet(), Now: c.now}
}
func open(t *testing.T, b *bustest.Bus, c *clock) *order.Book {
	t.Helper()
	book, err := order.Open(context.Background(), b.BrokerConn(), c.cfg())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(book.Close)
	return book
}

func pending(c *clock) order.State {
	return order.State{RequestID: "abcdefghijklmnopqrstuvwxyz", Holder: "replica-a", Expires: c.now().Add(time.Minute), Hint: api.HintPushed}
}

func TestCreateGetModify(t *testing.T) {
	t.Parallel()
	b, c := bustest.Start(t), newClock()
	book := open(t, b, c)
	ctx := context.Background()
	ref := order.NewRef()
	if !api.IsOrderRef(ref) {
		t.Fatalf("reference %q is not of the documented form", ref)
	}
	if _, err := book.Get(ctx, ref); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("before it exists: %v", err)
	}
	if err := book.Create(ctx, ref, pending(c)); err != nil {
		t.Fatal(err)
	}
	if err := book.Create(ctx, ref, pending(c)); err == nil {
		t.Fatal("the same reference was created twice")
	}
	s, err := book.Get(ctx, ref)
	if err != nil || !s.Pending() || s.Hint != api.HintPushed || s.RequestID != "abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("got %+v, %v", s, err)
	}
	// Two replicas modify at once: each change is applied once, to what
	// the other wrote (no write is lost).
	other := open(t, b, c)
	var wg sync.WaitGroup
	for _, bk := range []*order.Book{book, other} {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := bk.Modify(ctx, ref, func(s *order.State) bool { s.NumberMatch += "x"; return true }); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if s, _ := other.Get(ctx, ref); s.NumberMatch != strings.Repeat("x", 10) {
		t.Fatalf("after 10 concurrent changes: %q", s.NumberMatch)
	}
	// A change that changes nothing writes nothing.
	before, _ := book.Get(ctx, ref)
	if _, err := book.Modify(ctx, ref, func(*order.State) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if after, _ := book.Get(ctx, ref); after.NumberMatch != before.NumberMatch {
		t.Fatal("changed")
	}
}

// TestReferenceIsNotStored: the bucket holds the reference's hash, so
// whoever can read the bucket still cannot collect or cancel.
func TestReferenceIsNotStored(t *testing.T) {
	t.Parallel()
	b, c := bustest.Start(t), newClock()
	book := open(t, b, c)
	ref := order.NewRef()
	if err := book.Create(context.Background(), ref, pending(c)); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), order.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range keys.Keys() {
		n++
		e, err := kv.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, ref) || strings.Contains(string(e.Value()), ref) {
			t.Fatalf("the reference is in the bucket: %s = %s", k, e.Value())
		}
	}
	if n != 1 {
		t.Fatalf("%d keys", n)
	}
}

// TestLostAndRetained: a pending order long past its expiry is lost; an
// ended one is collectable for the retention, then not found.
func TestLostAndRetained(t *testing.T) {
	t.Parallel()
	b := bustest.Start(t)
	cases := []struct {
		name  string
		end   bool
		after time.Duration
		want  api.Code // "" pending; "-" not found
	}{
		{"pending before expiry", false, 30 * time.Second, ""},
		{"pending just past expiry", false, time.Minute + 10*time.Second, ""},
		{"lost", false, time.Minute + 16*time.Second, api.CodeOrderLost},
		{"lost and retained", false, time.Minute + 15*time.Second + 9*time.Minute, api.CodeOrderLost},
		{"lost and forgotten", false, time.Minute + 15*time.Second + 11*time.Minute, "-"},
		{"ended and retained", true, 9 * time.Minute, api.CodeApproved},
		{"ended and forgotten", true, 11 * time.Minute, "-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			book := open(t, b, c)
			ctx := context.Background()
			ref := order.NewRef()
			if err := book.Create(ctx, ref, pending(c)); err != nil {
				t.Fatal(err)
			}
			if tc.end {
				if _, err := book.Modify(ctx, ref, func(s *order.State) bool {
					s.Ended, s.Hint, s.Outcome = c.now(), "", &api.Response{Code: api.CodeApproved, RequestID: s.RequestID}
					return true
				}); err != nil {
					t.Fatal(err)
				}
			}
			c.advance(tc.after)
			s, err := book.Get(ctx, ref)
			switch {
			case tc.want == "-":
				if !errors.Is(err, order.ErrNotFound) {
					t.Fatalf("got %+v, %v; want not found", s, err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.want == "":
				if !s.Pending() {
					t.Fatalf("ended: %+v", s.Outcome)
				}
			case s.Pending() || s.Outcome.Code != tc.want || s.Outcome.RequestID != "abcdefghijklmnopqrstuvwxyz":
				t.Fatalf("got %+v", s)
			}
		})
	}
}

// TestAwait: a waiting collect returns at the first write after it looked,
// on any replica, and not before; at once when the order has ended; and
// when its wait is up.
func TestAwait(t *testing.T) {
	t.Parallel()
	b, c := bustest.Start(t), newClock()
	collector, holder := open(t, b, c), open(t, b, c)
	ctx := context.Background()
	ref := order.NewRef()
	if err := holder.Create(ctx, ref, pending(c)); err != nil {
		t.Fatal(err)
	}
	type result struct {
		s   order.State
		err error
		at  time.Time
	}
	ch := make(chan result, 1)
	go func() {
		s, err := collector.Await(ctx, ref, time.Minute, "")
		ch <- result{s, err, time.Now()}
	}()
	// The collect must be waiting before the write, or it reads the write
	// and returns at once: either way it returns the new hint, which is
	// what this test checks; the wait is what TestAwaitWaits checks.
	wrote := time.Now()
	if _, err := holder.Modify(ctx, ref, func(s *order.State) bool { s.Hint = api.HintShown; return true }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || r.s.Hint != api.HintShown {
			t.Fatalf("got %+v, %v", r.s, r.err)
		}
		t.Logf("collect returned %v after the write", r.at.Sub(wrote))
	case <-time.After(poll.Patience):
		t.Fatal("the collect did not return after the write")
	}

	// Ended: at once, whatever the wait.
	if _, err := holder.Modify(ctx, ref, func(s *order.State) bool {
		s.Ended, s.Outcome = c.now(), &api.Response{Code: api.CodeDenied}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the outcome readable", func() bool { s, _ := collector.Get(ctx, ref); return !s.Pending() })
	start := time.Now()
	if s, err := collector.Await(ctx, ref, time.Minute, ""); err != nil || s.Outcome.Code != api.CodeDenied {
		t.Fatalf("ended order: %+v, %v", s, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("an ended order's collect waited %v", d)
	}
}

// TestAwaitWaits: a collect of an unchanging order returns when its wait
// is up, with the order as it was, unless its caller saw another hint;
// one whose caller leaves returns then.
func TestAwaitWaits(t *testing.T) {
	t.Parallel()
	b, c := bustest.Start(t), newClock()
	book := open(t, b, c)
	ctx := context.Background()
	ref := order.NewRef()
	if err := book.Create(ctx, ref, pending(c)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := book.Await(ctx, ref, 300*time.Millisecond, "")
	if err != nil || !s.Pending() || s.Hint != api.HintPushed {
		t.Fatalf("got %+v, %v", s, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("returned after %v, before its wait was up", d)
	}
	// A caller that saw another hint than the order's gets the order at
	// once; one that saw this hint waits.
	start = time.Now()
	if s, err := book.Await(ctx, ref, time.Hour, api.HintDelivered); err != nil || s.Hint != api.HintPushed {
		t.Fatalf("seen another hint: %+v, %v", s, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a caller who saw another hint waited %v", d)
	}
	start = time.Now()
	if _, err := book.Await(ctx, ref, 300*time.Millisecond, api.HintPushed); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("a caller who saw this hint returned after %v", d)
	}
	gone, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := book.Await(gone, ref, time.Hour, ""); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("caller gone: %v", err)
		}
	case <-time.After(poll.Patience):
		t.Fatal("the collect outlived its caller")
	}
}

// TestCancelReachesTheHolder: a cancel written through one replica cancels
// the wait of the replica running the order, and only that order's.
func TestCancelReachesTheHolder(t *testing.T) {
	t.Parallel()
	b, c := bustest.Start(t), newClock()
	holder, other := open(t, b, c), open(t, b, c)
	ctx := context.Background()
	refs := []string{order.NewRef(), order.NewRef(), order.NewRef()}
	var cancelled [3]atomic.Bool
	for i, ref := range refs {
		if err := holder.Create(ctx, ref, pending(c)); err != nil {
			t.Fatal(err)
		}
		done := holder.Run(ref, func() { cancelled[i].Store(true) })
		t.Cleanup(done)
	}
	if holder.Running() != 3 {
		t.Fatalf("running %d", holder.Running())
	}
	write := func(ref string, change func(*order.State)) {
		t.Helper()
		if _, err := other.Modify(ctx, ref, func(s *order.State) bool { change(s); return true }); err != nil {
			t.Fatal(err)
		}
	}
	write(refs[0], func(s *order.State) { s.Cancel = true })
	poll.Until(t, "the holder cancelled", cancelled[0].Load)
	// A hint to the second order, then, as a barrier, a cancel of the
	// third: the holder hears writes in order, so once the third is
	// cancelled it has heard the hint, which must have cancelled nothing.
	write(refs[1], func(s *order.State) { s.Hint = api.HintShown })
	write(refs[2], func(s *order.State) { s.Cancel = true })
	poll.Until(t, "the barrier order cancelled", cancelled[2].Load)
	if cancelled[1].Load() {
		t.Fatal("a hint cancelled an order")
	}
	// A cancel of an order that has ended cancels nothing either.
	write(refs[1], func(s *order.State) { s.Ended, s.Outcome = c.now(), &api.Response{Code: api.CodeApproved} })
	write(refs[1], func(s *order.State) { s.Cancel = true })
	barrier := order.NewRef()
	if err := holder.Create(ctx, barrier, pending(c)); err != nil {
		t.Fatal(err)
	}
	var barrierCancelled atomic.Bool
	t.Cleanup(holder.Run(barrier, func() { barrierCancelled.Store(true) }))
	write(barrier, func(s *order.State) { s.Cancel = true })
	poll.Until(t, "the second barrier order cancelled", barrierCancelled.Load)
	if cancelled[1].Load() {
		t.Fatal("the cancel of an ended order cancelled its wait")
	}
}
