package guard_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/guard"
	"github.com/legalmfa/mfa/internal/poll"
)

// TestBlocklistIsShared: a block recorded through one broker's connection
// is seen by another broker's, and by a broker that starts later.
func TestBlocklistIsShared(t *testing.T) {
	t.Parallel()
	b := bustest.Start(t)
	ctx := context.Background()
	a, err := guard.NewBlocklist(ctx, b.BrokerConn(), time.Hour, 1, bustest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	other, err := guard.NewBlocklist(ctx, b.BrokerConn(), time.Hour, 1, bustest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	now := time.Now()
	if _, blocked := a.Blocked("caller.person", now); blocked {
		t.Fatal("blocked before any block")
	}
	if err := a.Block(ctx, guard.Block{Key: "caller.person", Since: now, Until: now.Add(time.Minute), RequestID: "r1"}); err != nil {
		t.Fatal(err)
	}
	if _, blocked := a.Blocked("caller.person", now); !blocked {
		t.Fatal("not blocked where it was recorded")
	}
	poll.Until(t, "the block seen by the other broker", func() bool { _, blocked := other.Blocked("caller.person", now); return blocked })
	if _, blocked := other.Blocked("caller.person", now.Add(2*time.Minute)); blocked {
		t.Fatal("still blocked after the block ended")
	}
	if _, blocked := other.Blocked("caller.other", now); blocked {
		t.Fatal("a block spread to another key")
	}
	late, err := guard.NewBlocklist(ctx, b.BrokerConn(), time.Hour, 1, bustest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, blocked := late.Blocked("caller.person", now); !blocked {
		t.Fatal("a broker starting later does not see the block")
	}
	if l := late.List(now); len(l) != 1 || l[0].Key != "caller.person" || l[0].RequestID != "r1" || !l[0].Since.Equal(now) {
		t.Fatalf("the block as listed: %+v", l)
	}
	// Lifted through one broker, it is lifted for all.
	if err := other.Unblock(ctx, "caller.person", now); err != nil {
		t.Fatal(err)
	}
	for _, list := range []*guard.Blocklist{a, late} {
		poll.Until(t, "the lifted block gone everywhere", func() bool { _, blocked := list.Blocked("caller.person", now); return !blocked })
	}
	if err := other.Unblock(ctx, "caller.person", now); !errors.Is(err, guard.ErrNoBlock) {
		t.Fatalf("lifting it again: %v, want ErrNoBlock", err)
	}
}

// TestReplayGuardRace: replicas racing with the same nonce; exactly one wins.
func TestReplayGuardRace(t *testing.T) {
	t.Parallel()
	b := bustest.Start(t)
	ctx := context.Background()
	var guards []*guard.ReplayGuard
	for i := 0; i < 4; i++ {
		g, err := guard.NewReplayGuard(ctx, b.BrokerConn(), time.Hour, 1)
		if err != nil {
			t.Fatal(err)
		}
		guards = append(guards, g)
	}
	for round := 0; round < 10; round++ {
		key := "nonce-" + string(rune('a'+round))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(g *guard.ReplayGuard) {
				defer wg.Done()
				first, err := g.FirstUse(ctx, key)
				if err != nil {
					t.Error(err)
				}
				if first {
					wins.Add(1)
				}
			}(guards[i%len(guards)])
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d first uses of one nonce", round, wins.Load())
		}
	}
}
