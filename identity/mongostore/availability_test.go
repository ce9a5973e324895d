package mongostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
	"github.com/legalmfa/mfa/internal/poll"
)

const (
	logDown = "MongoDB unavailable"
	logUp   = "MongoDB available again"
)

// TestServerDown stops MongoDB under a store: calls fail with
// ErrUnavailable within a bounded time and then at once, one line is logged
// for all of them, and the store recovers by itself when MongoDB is back.
func TestServerDown(t *testing.T) {
	ctx := context.Background()
	srv := mongotest.StartPrivate(t)
	var logs logBuffer
	var events []bool
	var eventsMu sync.Mutex
	s := openURI(t, srv.URI("mfa"), WithLogger(logs.logger()), WithProbeInterval(200*time.Millisecond),
		WithAvailabilityFunc(func(up bool, err error) {
			eventsMu.Lock()
			events = append(events, up)
			eventsMu.Unlock()
		}))
	id := testIdentity(t, "199001011234")
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	_, err := s.FindValid(ctx, "199001011234", "SE", time.Now())
	first := time.Since(start)
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("FindValid with MongoDB stopped: %v, want ErrUnavailable", err)
	}
	if first > 5*time.Second {
		t.Errorf("first failure took %v, want under 5s", first)
	}
	// A failure that did not come from a known outage (a network error)
	// marks the store down at once; one that waited for server selection
	// does too. Either way, from now on calls fail without waiting.
	poll.Within(t, 5*time.Second, "store reports MongoDB unavailable", func() bool { return !s.Available() })
	var slowest time.Duration
	for i := range 50 {
		start := time.Now()
		var err error
		switch i % 5 {
		case 0:
			_, err = s.FindValid(ctx, "199001011234", "SE", time.Now())
		case 1:
			_, err = s.Get(ctx, id.ID)
		case 2:
			err = s.Create(ctx, testIdentity(t, fmt.Sprint(i)))
		case 3:
			_, err = s.Transition(ctx, id.ID, identity.Change{From: identity.Approved, To: identity.Obsoleted})
		case 4:
			err = s.Ping(ctx)
		}
		slowest = max(slowest, time.Since(start))
		if !errors.Is(err, identity.ErrUnavailable) {
			t.Errorf("call %d with MongoDB stopped: %v, want ErrUnavailable", i, err)
		}
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("slowest call while known unavailable took %v, want under 100ms", slowest)
	}
	// The caller's own cancellation is not an outage.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, id.ID); !errors.Is(err, context.Canceled) || errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Get with a cancelled context while unavailable: %v, want context.Canceled only", err)
	}
	time.Sleep(600 * time.Millisecond) // some failed probes
	t.Logf("first failure after %v, then at most %v per call", first.Round(time.Millisecond), slowest)
	if n := logs.count(logDown); n != 1 {
		t.Errorf("%d %q lines for 50 failed calls, want 1:\n%s", n, logDown, logs.String())
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	took := poll.Within(t, 15*time.Second, "Ping after restart", func() bool { return s.Ping(ctx) == nil })
	t.Logf("recovered %v after the restart", took.Round(time.Millisecond))
	got, err := s.FindValid(ctx, "199001011234", "SE", time.Now())
	if err != nil || len(got) != 1 || got[0].ID != id.ID {
		t.Errorf("FindValid after recovery: %v, %v", got, err)
	}
	if err := s.Create(ctx, testIdentity(t, "2")); err != nil {
		t.Errorf("Create after recovery: %v", err)
	}
	if n := logs.count(logUp); n != 1 {
		t.Errorf("%d %q lines, want 1:\n%s", n, logUp, logs.String())
	}
	if n := logs.count(logDown); n != 1 {
		t.Errorf("%d %q lines after recovery, want still 1:\n%s", n, logDown, logs.String())
	}
	eventsMu.Lock()
	defer eventsMu.Unlock()
	if fmt.Sprint(events) != "[false true]" {
		t.Errorf("availability callbacks %v, want [false true]", events)
	}
}

// TestServerDownWithoutTraffic: the health probe notices an outage with no
// calls at all, so a readiness check sees it, and answers at once.
func TestServerDownWithoutTraffic(t *testing.T) {
	srv := mongotest.StartPrivate(t)
	s := openURI(t, srv.URI("mfa"), WithLogger(logBufferDiscard()), WithProbeInterval(100*time.Millisecond), WithHealthInterval(200*time.Millisecond))
	srv.Stop()
	poll.Within(t, 5*time.Second, "store notices the outage", func() bool { return !s.Available() })
	start := time.Now()
	if err := s.Ping(context.Background()); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Ping: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Ping took %v while known unavailable", el)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 15*time.Second, "store notices the recovery", s.Available)
}

func logBufferDiscard() *slog.Logger { return (&logBuffer{}).logger() }

// TestKillServer kills MongoDB with SIGKILL while several goroutines create
// and approve identities: every call that returned nil is there after the
// restart, every failure was ErrUnavailable, and the store recovers.
func TestKillServer(t *testing.T) {
	ctx := context.Background()
	srv := mongotest.StartPrivate(t)
	s := openURI(t, srv.URI("mfa"), WithLogger(logBufferDiscard()), WithProbeInterval(100*time.Millisecond))

	const workers = 6
	var (
		mu       sync.Mutex
		acked    []identity.Identity
		approved = map[string]bool{}
		failures = map[string]int{}
		acks     atomic.Int64
		stop     atomic.Bool
	)
	fail := func(op string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if !errors.Is(err, identity.ErrUnavailable) {
			t.Errorf("%s during the outage: %v, want ErrUnavailable", op, err)
		}
		failures[op]++
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load() && i < 100_000; i++ {
				id := created(t, fmt.Sprintf("%d%06d", w+1, i))
				if err := s.Create(ctx, id); err != nil {
					fail("Create", err)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				acks.Add(1)
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
				if i%2 == 0 {
					if _, err := s.Transition(ctx, id.ID, approval()); err != nil {
						fail("Transition", err)
						continue
					}
					mu.Lock()
					approved[id.ID] = true
					mu.Unlock()
				}
			}
		})
	}
	poll.Within(t, 30*time.Second, "100 acknowledged creates", func() bool { return acks.Load() >= 100 })
	srv.Kill()
	killedAt := acks.Load()
	time.Sleep(500 * time.Millisecond)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 15*time.Second, "recovery after the kill", s.Available)
	time.Sleep(300 * time.Millisecond) // some writes after the recovery
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d creates acknowledged before SIGKILL, %d in all; %d approvals; failures during the outage: %v", killedAt, len(acked), len(approved), failures)
	if failures["Create"]+failures["Transition"] == 0 {
		t.Errorf("no call failed: the kill did not happen during the run")
	}
	for _, want := range acked {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Errorf("acknowledged create of %s lost: %v", want.ID, err)
			continue
		}
		if approved[want.ID] {
			if got.State != identity.Approved {
				t.Errorf("acknowledged approval of %s lost: %s", want.ID, got.State)
			}
			found, err := s.FindValid(ctx, want.Property(identity.PropPNR), "SE", time.Now())
			if err != nil || len(found) != 1 || found[0].ID != want.ID {
				t.Errorf("approved %s not found by FindValid: %v, %v", want.ID, found, err)
			}
		}
	}
	// Nothing stays half done: this broker finished what it started.
	poll.Within(t, 10*time.Second, "no pending changes", func() bool {
		n, err := s.changes.CountDocuments(ctx, bson.D{{Key: "pending", Value: true}})
		return err == nil && n == 0
	})
}

// TestRepairPendingChange plays a broker that died right after committing a
// change: another broker finishes it once it is old enough, and not before.
func TestRepairPendingChange(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.Start(t)
	s := openURI(t, uri, WithHealthInterval(100*time.Millisecond), WithRepairAfter(time.Hour))
	id := created(t, "199001011234")
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The dead broker's commit: the change document, nothing else.
	now := time.Now()
	ch := changeDoc{
		ID: changeID(id.ID, id.Version+1), IdentityID: id.ID, Version: id.Version + 1,
		From: "Created", To: "Approved", At: date(now),
		ValidFrom: optDate(now.Add(-time.Minute)), ValidTo: optDate(now.AddDate(1, 0, 0)),
		Pending: true, Written: date(now.Add(-time.Minute)),
	}
	if _, err := s.changes.InsertOne(ctx, ch); err != nil {
		t.Fatal(err)
	}
	// An operator acting now loses to the committed change.
	_, err := s.Transition(ctx, id.ID, identity.Change{From: identity.Created, To: identity.Rejected, At: now})
	if !errors.Is(err, identity.ErrConflict) || !strings.Contains(err.Error(), "is Approved now, not Created") {
		t.Errorf("Transition against a committed change: %v, want ErrConflict saying it is Approved", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got, _ := s.Get(ctx, id.ID); got.State != identity.Created {
		t.Fatalf("a change pending for less than WithRepairAfter was finished by another broker: %s", got.State)
	}

	s2 := openURI(t, uri, WithHealthInterval(100*time.Millisecond), WithRepairAfter(time.Second))
	poll.Within(t, 10*time.Second, "the change finished", func() bool {
		got, err := s2.Get(ctx, id.ID)
		return err == nil && got.State == identity.Approved
	})
	got, _ := s2.Get(ctx, id.ID)
	if got.Version != id.Version+1 || !got.To.Equal(fromOptDate(ch.ValidTo)) {
		t.Errorf("finished change left %+v", got)
	}
	found, err := s2.FindValid(ctx, "199001011234", "SE", time.Now())
	if err != nil || len(found) != 1 {
		t.Errorf("FindValid after the repair: %v, %v (the reference was not updated)", found, err)
	}
	poll.Within(t, 5*time.Second, "pending flag cleared", func() bool {
		var c changeDoc
		return s2.changes.FindOne(ctx, bson.D{{Key: "_id", Value: ch.ID}}).Decode(&c) == nil && !c.Pending
	})
}

// TestOrphanReference plays a Create that died between its two writes: the
// reference without an identity misleads no lookup, and a retry of the same
// Create succeeds.
func TestOrphanReference(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	id := testIdentity(t, "199001011234")
	ref, _ := reference(id, time.Now())
	ref.Token = newToken()
	if _, err := s.refs.InsertOne(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindValid(ctx, "199001011234", "SE", time.Now()); err != nil || len(got) != 0 {
		t.Errorf("FindValid with an orphan reference: %v, %v; want nothing", got, err)
	}
	if err := s.Create(ctx, id); err != nil {
		t.Fatalf("retried Create: %v", err)
	}
	if got, err := s.FindValid(ctx, "199001011234", "SE", time.Now()); err != nil || len(got) != 1 {
		t.Errorf("FindValid after the retried Create: %v, %v", got, err)
	}

	// A fresh reference of different content is another Create under way:
	// the ID is taken.
	other := testIdentity(t, "199001011235")
	ref2, _ := reference(other, time.Now())
	ref2.PNR, ref2.Token = "1", newToken()
	if _, err := s.refs.InsertOne(ctx, ref2); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, other); !errors.Is(err, identity.ErrDuplicate) {
		t.Errorf("Create while another Create of the ID is under way: %v, want ErrDuplicate", err)
	}
}

// TestLazyOpen starts a store while MongoDB is down: Open succeeds with
// WithLazyOpen, calls fail at once, and the store comes up by itself, with
// its indexes, when MongoDB does.
func TestLazyOpen(t *testing.T) {
	ctx := context.Background()
	srv := mongotest.StartPrivate(t)
	srv.Stop()
	var logs logBuffer
	start := time.Now()
	s := openURI(t, srv.URI("mfa"), WithLazyOpen(), WithOpenTimeout(time.Second), WithProbeInterval(100*time.Millisecond), WithLogger(logs.logger()))
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("lazy Open took %v with an open timeout of 1s", el)
	}
	start = time.Now()
	if err := s.Ping(ctx); !errors.Is(err, identity.ErrUnavailable) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("Ping of a lazily opened store while MongoDB is down: %v after %v", err, time.Since(start))
	}
	if err := s.Create(ctx, testIdentity(t, "1")); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Create: %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 15*time.Second, "lazily opened store available", s.Available)
	if err := s.Create(ctx, testIdentity(t, "1")); err != nil {
		t.Fatal(err)
	}
	names, err := s.ids.Indexes().ListSpecifications(ctx)
	if err != nil || len(names) != 3 {
		t.Errorf("indexes after a lazy open: %v, %v; want 3", names, err)
	}
	if logs.count(logDown) != 1 || logs.count(logUp) != 1 {
		t.Errorf("log:\n%s\nwant one line each for down and up", logs.String())
	}

	// Without WithLazyOpen, Open fails.
	srv.Stop()
	if _, err := Open(ctx, srv.URI("mfa"), WithOpenTimeout(500*time.Millisecond)); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Open while MongoDB is down: %v, want ErrUnavailable", err)
	}
}

// TestIndexConflict: an index of the store's name with other keys is a
// configuration error that Open reports, lazily or not.
func TestIndexConflict(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.Start(t)
	s := openURI(t, uri)
	if err := s.refs.Indexes().DropOne(ctx, "mfa_lookup"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.refs.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "pnr", Value: 1}}, Options: options.Index().SetName("mfa_lookup")}); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]Option{nil, {WithLazyOpen()}} {
		s2, err := Open(ctx, uri, opts...)
		if !errors.Is(err, ErrIndexConflict) || !strings.Contains(err.Error(), CollReferences) {
			t.Errorf("Open with a conflicting index: %v, want ErrIndexConflict naming %s", err, CollReferences)
		}
		if err == nil {
			s2.Close(ctx)
		}
	}
}
