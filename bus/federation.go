package bus

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// How brokers federate on NATS.
//
// Each approved peer has an account of its own on this broker's server,
// FED_<peer ID>. The leaf-node link between the two servers is bound to
// that account on both sides: the soliciting server names it as the
// remote's local account, the accepting server's callout binds the peer's
// leaf connection to it. What the two brokers exchange lives in that
// account alone, the shared references (a JetStream bucket the peer
// mirrors across the link, addressed by the other server's JetStream
// domain, its peer ID) and the federation requests. Nothing of the global
// account, where devices and the broker's own buckets are, is reachable
// from it: no imports or exports join the two. The broker itself works in
// a peer's account through a connection of its own with a key derived for
// that peer.
//
// Of two peers, the one whose peer ID sorts first solicits the link: one
// link per pair, so no message crosses twice.

// Peer is a broker this one federates with, as the bus needs to know it.
type Peer struct {
	// ID is the peer's ID (api.PeerID of Key): its account's name and its
	// JetStream domain.
	ID  string
	Key ed25519.PublicKey
	// LeafURL is where the peer takes leaf-node links; used when this
	// broker solicits.
	LeafURL string
}

// FederationAccount is the account a peer's link and business live in.
func FederationAccount(peerID string) string { return "FED_" + peerID }

// federationLimits bound what a peer can store in its account here: the
// references it mirrors from this broker (a few hundred bytes each; a
// million fit) and what it creates itself, which is nothing the broker
// needs.
var federationLimits = map[string]server.JetStreamAccountLimits{"": {
	MaxMemory: 64 << 20, MaxStore: 4 << 30, MaxStreams: 8, MaxConsumers: 32, MaxAckPending: -1,
}}

// leafReconnect is how soon a dropped link is tried again.
const leafReconnect = 2 * time.Second

// FederationUser is the key this broker works in a peer's account with,
// derived from the broker's key for that peer.
func (c *BrokerCredentials) FederationUser(peerID string) nkeys.KeyPair {
	seed, err := c.user.Seed()
	if err != nil {
		// A key pair made from a seed has it.
		panic(err)
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteSeed, seed)
	if err == nil && len(raw) > 1 {
		raw = raw[1:] // the seed's own type byte
	}
	derived := sha256.Sum256(append([]byte("mfa-federation-user\x00"+peerID+"\x00"), raw...))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, derived[:])
	if err != nil {
		panic(err)
	}
	return kp
}

// FederationConnectOptions authenticate the broker's connection in a
// peer's account.
func (c *BrokerCredentials) FederationConnectOptions(peerID string) []nats.Option {
	kp := c.FederationUser(peerID)
	return []nats.Option{nats.Nkey(mustPublic(kp), kp.Sign), nats.Name("mfa-broker federation " + peerID)}
}

// SetPeers makes the server federate with exactly these peers: an account
// with JetStream for each, a link to each this broker solicits, and none
// for a peer no longer listed (its account's connections end with it).
// It reloads the server's configuration; links already up stay up.
func (e *EmbeddedServer) SetPeers(own *BrokerCredentials, ownID string, peers []Peer) error {
	e.fedMu.Lock()
	defer e.fedMu.Unlock()
	opts := e.opts.Clone()
	opts.Accounts = nil
	opts.LeafNode.Remotes = nil
	seed, err := own.user.Seed()
	if err != nil {
		return err
	}
	for _, p := range slices.SortedFunc(slices.Values(peers), func(a, b Peer) int { return cmpString(a.ID, b.ID) }) {
		opts.Accounts = append(opts.Accounts, server.NewAccount(FederationAccount(p.ID)))
		if ownID >= p.ID {
			continue // the peer solicits
		}
		u, err := url.Parse(p.LeafURL)
		if err != nil || (u.Scheme != "nats-leaf" && u.Scheme != "tls" && u.Scheme != "nats") || u.Host == "" {
			return fmt.Errorf("peer %s: leaf URL %q: want nats-leaf://host:port or tls://host:port", p.ID, p.LeafURL)
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{
			URLs: []*url.URL{u}, Nkey: string(seed), LocalAccount: FederationAccount(p.ID),
			TLS: u.Scheme == "tls",
		})
	}
	if sameFederation(e.opts, opts) {
		// A reload rebuilds the accounts; one that changes nothing is not
		// worth the links' subscriptions being redone.
		return nil
	}
	if err := e.ReloadOptions(opts); err != nil {
		return fmt.Errorf("federation: reconfigure NATS: %w", err)
	}
	// A link this server solicited ends with its remote; one it accepted
	// would stay up in an account no longer configured. The peer's next
	// attempt meets the callout, which no longer admits it.
	for _, old := range e.opts.Accounts {
		if !slices.ContainsFunc(opts.Accounts, func(a *server.Account) bool { return a.Name == old.Name }) {
			e.disconnectLinks(old.Name)
		}
	}
	e.opts = opts
	// A reload turns JetStream off in accounts the configuration does
	// not give it to; the broker's accounts get it back at once.
	var errs []error
	for _, p := range peers {
		acc, err := e.LookupAccount(FederationAccount(p.ID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !acc.JetStreamEnabled() {
			if err := acc.EnableJetStream(federationLimits, nil); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: JetStream: %w", p.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// sameFederation reports whether two configurations have the same peer
// accounts and links.
func sameFederation(a, b *server.Options) bool {
	if len(a.Accounts) != len(b.Accounts) || len(a.LeafNode.Remotes) != len(b.LeafNode.Remotes) {
		return false
	}
	for i := range a.Accounts {
		if a.Accounts[i].Name != b.Accounts[i].Name {
			return false
		}
	}
	for i, r := range a.LeafNode.Remotes {
		o := b.LeafNode.Remotes[i]
		if r.LocalAccount != o.LocalAccount || len(r.URLs) != len(o.URLs) || r.URLs[0].String() != o.URLs[0].String() {
			return false
		}
	}
	return true
}

// disconnectLinks closes the leaf-node links bound to an account.
func (e *EmbeddedServer) disconnectLinks(account string) {
	lz, err := e.Leafz(&server.LeafzOptions{Account: account})
	if err != nil {
		return
	}
	for _, l := range lz.Leafs {
		_ = e.DisconnectClientByID(l.ID) // gone already is as good
	}
}

// LinkUp reports whether the leaf-node link with a peer is connected.
func (e *EmbeddedServer) LinkUp(peerID string) bool {
	lz, err := e.Leafz(&server.LeafzOptions{Account: FederationAccount(peerID)})
	return err == nil && len(lz.Leafs) > 0
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LeafPort is the port the leaf-node listener took, 0 without one.
func (e *EmbeddedServer) LeafPort() int {
	e.fedMu.Lock()
	defer e.fedMu.Unlock()
	return e.opts.LeafNode.Port
}
