package bus_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
)

// approvals is what a broker's operator approved: peer keys by ID.
type approvals struct {
	mu    sync.Mutex
	peers map[string]ed25519.PublicKey
}

func (a *approvals) ApprovedPeer(key ed25519.PublicKey) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, k := range a.peers {
		if k.Equal(key) {
			return id, true
		}
	}
	return "", false
}

func (a *approvals) ApprovedPeers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for id := range a.peers {
		ids = append(ids, id)
	}
	return ids
}

func (a *approvals) set(peers map[string]ed25519.PublicKey) {
	a.mu.Lock()
	a.peers = peers
	a.mu.Unlock()
}

// fedBroker is a broker's bus that federates.
type fedBroker struct {
	*bustest.Bus
	id  string
	dir *approvals
}

func peerID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

func startFederating(t *testing.T) *fedBroker {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := peerID(key.Public().(ed25519.PublicKey))
	dir := &approvals{peers: map[string]ed25519.PublicKey{}}
	return &fedBroker{Bus: bustest.StartFederating(t, key, id, dir), id: id, dir: dir}
}

func (b *fedBroker) peer() bus.Peer {
	return bus.Peer{ID: b.id, Key: b.Key.Public().(ed25519.PublicKey), LeafURL: fmt.Sprintf("nats-leaf://127.0.0.1:%d", b.Server.LeafPort())}
}

// approve makes b federate with exactly these peers.
func (b *fedBroker) approve(t *testing.T, peers ...*fedBroker) {
	t.Helper()
	keys := map[string]ed25519.PublicKey{}
	var list []bus.Peer
	for _, p := range peers {
		keys[p.id] = p.Key.Public().(ed25519.PublicKey)
		list = append(list, p.peer())
	}
	b.dir.set(keys)
	if err := b.Server.SetPeers(b.Creds, b.id, list); err != nil {
		t.Fatal(err)
	}
}

// fedConn is b's own connection in peer's account.
func (b *fedBroker) fedConn(t *testing.T, peer *fedBroker) *nats.Conn {
	t.Helper()
	return bustest.Connect(t, b.URL, b.Creds.FederationConnectOptions(peer.id)...)
}

// TestFederationLink: two brokers that approved each other are linked, in
// an account of each other's alone: their federation connections talk
// across, the one's JetStream mirrors the other's bucket, and nothing of
// either's own traffic or buckets crosses.
func TestFederationLink(t *testing.T) {
	t.Parallel()
	a, b := startFederating(t), startFederating(t)
	a.approve(t, b)
	b.approve(t, a)
	poll.Until(t, "the link up on both sides", func() bool { return a.Server.LinkUp(b.id) && b.Server.LinkUp(a.id) })

	aFed, bFed := a.fedConn(t, b), b.fedConn(t, a)
	if _, err := bFed.Subscribe("mfa.fed.request", func(m *nats.Msg) { m.Respond(append([]byte("B saw "), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	bFed.Flush()
	poll.Until(t, "a request across the link answered", func() bool {
		r, err := aFed.Request("mfa.fed.request", []byte("hello"), time.Second)
		return err == nil && string(r.Data) == "B saw hello"
	})

	// The global accounts stay apart: a push published on A reaches
	// neither of B's accounts, nor does B's own connection hear A's.
	var mu sync.Mutex
	var crossed []string
	var probed atomic.Bool
	for name, nc := range map[string]*nats.Conn{"B's federation account": bFed, "B's global account": b.BrokerConn()} {
		if _, err := nc.Subscribe(">", func(m *nats.Msg) {
			switch {
			case strings.HasPrefix(m.Subject, "mfa.push"):
				mu.Lock()
				crossed = append(crossed, name+": "+string(m.Data))
				mu.Unlock()
			case m.Subject == "mfa.fed.probe":
				probed.Store(true)
			}
		}); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	// A learns of B's new interest across the link a moment after B has
	// it: until a probe arrives, a publish on A would find no one to go to.
	poll.Until(t, "B's interest known on A", func() bool {
		aFed.Publish("mfa.fed.probe", nil)
		aFed.Flush()
		return probed.Load()
	})
	a.Conn.Publish("mfa.push.device", []byte("a push on A"))
	aFed.Publish("mfa.push.device", []byte("a push in B's account on A"))
	// The barrier: a request across the link after both publishes; the
	// link is ordered, so the first publish would have come before it.
	if _, err := aFed.Request("mfa.fed.request", []byte("barrier"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// What A published in B's account on A arrives in B's account on B,
	// the link's one purpose; A's own push arrives nowhere.
	poll.Until(t, "the federated publish across", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(crossed) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, l := range crossed {
		if l != "B's federation account: a push in B's account on A" {
			t.Fatalf("crossed the link: %s", l)
		}
	}

	ctx := context.Background()
	jsB, _ := jetstream.New(bFed)
	share, err := jsB.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "SHARE"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := share.Put(ctx, "ref", []byte("a reference")); err != nil {
		t.Fatal(err)
	}
	jsA, _ := jetstream.New(aFed)
	mirror, err := jsA.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "FROM_B", Mirror: &jetstream.StreamSource{Name: "SHARE", Domain: b.id}})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "B's bucket mirrored at A", func() bool {
		e, err := mirror.Get(ctx, "ref")
		return err == nil && string(e.Value()) == "a reference"
	})
	// B's own buckets are not reachable from its link with A.
	jsBG, _ := jetstream.New(b.BrokerConn())
	if _, err := jsBG.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "OWN"}); err != nil {
		t.Fatal(err)
	}
	across, _ := jetstream.NewWithDomain(aFed, b.id)
	if _, err := across.KeyValue(ctx, "OWN"); err == nil {
		t.Fatal("B's own bucket is reachable from A")
	}
}

// TestFederationRefusals: a leaf-node link from a broker not approved, or
// made with a device's key, is refused; a peer removed is cut off.
func TestFederationRefusals(t *testing.T) {
	t.Parallel()
	a, b, c := startFederating(t), startFederating(t), startFederating(t)
	// B approves A, and C approves B but B never approved C.
	b.approve(t, a)
	a.approve(t, b)
	c.approve(t, b)
	b.approve(t, a) // again: nothing changes
	poll.Until(t, "A and B linked", func() bool { return a.Server.LinkUp(b.id) })
	// A's link with C would be solicited by whichever sorts first; B
	// approved neither direction with C, so no link forms: the barrier is
	// a link that does form later.
	d := startFederating(t)
	d.approve(t, b)
	b.approve(t, a, d)
	poll.Until(t, "B and D linked", func() bool { return b.Server.LinkUp(d.id) })
	if b.Server.LinkUp(c.id) || c.Server.LinkUp(b.id) {
		t.Fatal("C is linked with B, which never approved it")
	}

	// Removed: B drops A; the link goes down and does not come back.
	b.approve(t, d)
	poll.Until(t, "the link with A down", func() bool { return !a.Server.LinkUp(b.id) && !b.Server.LinkUp(a.id) })
	// The barrier again: D's link, re-made by a fresh approval, is up
	// while A's stays down.
	d.approve(t)
	d.approve(t, b)
	poll.Until(t, "B and D linked again", func() bool { return b.Server.LinkUp(d.id) && d.Server.LinkUp(b.id) })
	if a.Server.LinkUp(b.id) {
		t.Fatal("A's link came back after B removed it")
	}

	// A device's key on the leaf-node port is not a peer.
	devKey, _ := identity.GenerateKey()
	b.Identity("phone@legal.b.test", devKey, identity.Approved)
	if nc, err := bustest.DeviceConn(fmt.Sprintf("nats://127.0.0.1:%d", b.Server.LeafPort()), devKey, nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a device connected on the federation port")
	}
}
