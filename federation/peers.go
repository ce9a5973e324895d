package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PeersBucket is where a broker keeps its peers, shared by its replicas.
const PeersBucket = "MFA_PEERS"

// Errors of peering.
var (
	ErrNoPeer      = errors.New("no such peer")
	ErrPeerExists  = errors.New("the peer is known already")
	ErrSelfPeering = errors.New("a broker cannot peer with itself")
)

// Peer is another broker, as this broker's operator knows it: what its
// discovery documents said when it was added, and what the operator
// decided. Nothing flows until the operators of both have approved the
// other; this broker's references flow to it only when Share is set too.
type Peer struct {
	ID        string            `json:"Id"`
	Domain    string            `json:"Domain"`
	PublicKey ed25519.PublicKey `json:"PublicKey"`
	// URL is the peer's base URL, where its discovery documents are;
	// LeafURL is where its NATS server takes federation links.
	URL     string    `json:"Url"`
	LeafURL string    `json:"LeafUrl"`
	Added   time.Time `json:"Added"`
	// Approved is this operator's approval; Share, this operator's
	// decision to share this broker's identity references with the peer
	// (the spec's second approval).
	Approved bool      `json:"Approved"`
	Share    bool      `json:"Share"`
	Changed  time.Time `json:"Changed"`
}

// Fingerprint is what operators compare out of band before approving: the
// peer ID, which is a hash of the broker key, grouped for reading aloud.
func (p Peer) Fingerprint() string { return Fingerprint(p.PublicKey) }

// Fingerprint groups a broker key's peer ID in fours.
func Fingerprint(key ed25519.PublicKey) string {
	id := api.PeerID(key)
	var groups []string
	for i := 0; i < len(id); i += 4 {
		groups = append(groups, id[i:min(i+4, len(id))])
	}
	return strings.Join(groups, "-")
}

// Peers is the broker's list of peers, kept in a JetStream bucket its
// replicas share and read from memory, which a watcher keeps in step.
type Peers struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	peers   map[string]Peer
	changed []chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// OpenPeers opens (or creates) the peers bucket and loads it.
func OpenPeers(ctx context.Context, nc *nats.Conn, replicas int, log *slog.Logger) (*Peers, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      PeersBucket,
		Description: "the brokers this one federates with, and what its operator decided",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("peers bucket: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch peers: %w", err)
	}
	p := &Peers{kv: kv, log: log, peers: map[string]Peer{}, cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	go p.follow(w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		p.Close()
		return nil, fmt.Errorf("load peers: %w", ctx.Err())
	}
	return p, nil
}

func (p *Peers) follow(w jetstream.KeyWatcher, ready chan struct{}) {
	defer close(p.done)
	defer w.Stop()
	loaded := false
	for e := range w.Updates() {
		if e == nil {
			if !loaded {
				loaded = true
				close(ready)
			}
			continue
		}
		p.mu.Lock()
		switch e.Operation() {
		case jetstream.KeyValuePut:
			var peer Peer
			if err := json.Unmarshal(e.Value(), &peer); err != nil || peer.ID != e.Key() {
				p.log.Warn("unreadable peer record ignored", "peer", e.Key(), "err", err)
			} else {
				p.peers[peer.ID] = peer
			}
		default:
			delete(p.peers, e.Key())
		}
		listeners := slices.Clone(p.changed)
		p.mu.Unlock()
		if loaded {
			for _, ch := range listeners {
				select {
				case ch <- struct{}{}:
				default: // a change is pending already
				}
			}
		}
	}
	if !loaded {
		close(ready)
	}
}

// Changed signals after every change to the peers, from any replica;
// several changes may be one signal.
func (p *Peers) Changed() <-chan struct{} {
	ch := make(chan struct{}, 1)
	p.mu.Lock()
	p.changed = append(p.changed, ch)
	p.mu.Unlock()
	return ch
}

// Close stops following the bucket.
func (p *Peers) Close() {
	p.cancel()
	<-p.done
}

// List is every peer, by ID.
func (p *Peers) List() []Peer {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]Peer, 0, len(p.peers))
	for _, peer := range p.peers {
		out = append(out, peer)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get is one peer.
func (p *Peers) Get(id string) (Peer, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	peer, ok := p.peers[id]
	if !ok {
		return Peer{}, fmt.Errorf("%w: %s", ErrNoPeer, id)
	}
	return peer, nil
}

// ApprovedPeer is the approved peer whose broker key this is; the NATS
// callout admits its link.
func (p *Peers) ApprovedPeer(key ed25519.PublicKey) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	peer, ok := p.peers[api.PeerID(key)]
	if !ok || !peer.Approved || !peer.PublicKey.Equal(key) {
		return "", false
	}
	return peer.ID, true
}

// ApprovedPeers lists the approved peers' IDs.
func (p *Peers) ApprovedPeers() []string {
	var ids []string
	for _, peer := range p.List() {
		if peer.Approved {
			ids = append(ids, peer.ID)
		}
	}
	return ids
}

// Add stores a peer found by discovery, not approved, sharing nothing.
func (p *Peers) Add(ctx context.Context, peer Peer, now time.Time) error {
	peer.Approved, peer.Share = false, false
	peer.Added, peer.Changed = now.UTC(), now.UTC()
	v, err := json.Marshal(peer)
	if err != nil {
		return err
	}
	if _, err := p.kv.Create(ctx, peer.ID, v); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s (%s)", ErrPeerExists, peer.ID, peer.Domain)
		}
		return fmt.Errorf("store peer: %w", err)
	}
	p.remember(peer)
	return nil
}

// Update changes a peer with change, which reports what it changed, as a
// compare-and-set on the stored record: two operators deciding at once
// never both win silently.
func (p *Peers) Update(ctx context.Context, id string, now time.Time, change func(*Peer) error) (Peer, error) {
	e, err := p.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Peer{}, fmt.Errorf("%w: %s", ErrNoPeer, id)
	}
	if err != nil {
		return Peer{}, fmt.Errorf("read peer: %w", err)
	}
	var peer Peer
	if err := json.Unmarshal(e.Value(), &peer); err != nil {
		return Peer{}, fmt.Errorf("read peer: %w", err)
	}
	if err := change(&peer); err != nil {
		return Peer{}, err
	}
	peer.Changed = now.UTC()
	v, err := json.Marshal(peer)
	if err != nil {
		return Peer{}, err
	}
	if _, err := p.kv.Update(ctx, id, v, e.Revision()); err != nil {
		return Peer{}, fmt.Errorf("store peer (changed meanwhile? try again): %w", err)
	}
	p.remember(peer)
	return peer, nil
}

// Remove forgets a peer: its link is cut, and nothing more flows.
func (p *Peers) Remove(ctx context.Context, id string) error {
	if _, err := p.Get(id); err != nil {
		return err
	}
	// A delete marker rather than a purge, so that a replica whose
	// watcher is behind still learns of it.
	if err := p.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("remove peer: %w", err)
	}
	p.mu.Lock()
	delete(p.peers, id)
	p.mu.Unlock()
	return nil
}

// remember makes a write visible here at once; other replicas see it
// through their watchers.
func (p *Peers) remember(peer Peer) {
	p.mu.Lock()
	p.peers[peer.ID] = peer
	p.mu.Unlock()
}
