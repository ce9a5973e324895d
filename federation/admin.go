package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// PeerStatus is a peer as the operator sees it: what was decided here,
// and how the link stands.
type PeerStatus struct {
	Peer
	Fingerprint string `json:"Fingerprint"`
	// LinkUp tells that both operators approved and the link is up;
	// References is how many references the peer shares with this broker.
	LinkUp     bool `json:"LinkUp"`
	References int  `json:"References"`
}

// Decision is what an operator decides about a peer.
type Decision int

// The decisions about a peer. Withdraw undoes an approval: the link ends,
// and the peer is kept to approve again.
const (
	Approve Decision = iota + 1
	Withdraw
	StartSharing
	StopSharing
)

// Errors of the operator's decisions, which the operator endpoints map
// to statuses.
var (
	// ErrNoChange: the peer is already as the decision would make it.
	ErrNoChange = errors.New("the peer is already so")
	// ErrNotApproved: sharing with a peer needs it approved first.
	ErrNotApproved = errors.New("the peer is not approved")
	// ErrDiscovery: the broker to add could not be fetched, or its
	// documents do not make it a peer (ErrNotMFACapable, ErrBadDiscovery,
	// ErrNotFederating are wrapped in it).
	ErrDiscovery = errors.New("cannot peer")
	// ErrNotFederating: the broker is MFA-capable but takes no peers.
	ErrNotFederating = errors.New("the broker does not federate: its federation document has no LeafUrl")
)

// discoveryTimeout bounds fetching a peer's discovery documents.
const discoveryTimeout = 10 * time.Second

// AddPeer fetches a broker's discovery documents and keeps it as a peer,
// not approved: the operator compares its fingerprint with the one the
// other operator reads out before approving it.
func (f *Federation) AddPeer(ctx context.Context, url string) (PeerStatus, error) {
	doc, err := Discover(ctx, &http.Client{Timeout: discoveryTimeout}, url)
	if err != nil {
		return PeerStatus{}, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	if doc.PeerID == f.me {
		return PeerStatus{}, ErrSelfPeering
	}
	if doc.LeafURL == "" {
		return PeerStatus{}, fmt.Errorf("%w: %s: %w", ErrDiscovery, url, ErrNotFederating)
	}
	key, err := identity.ParsePublicKey(doc.PublicKey)
	if err != nil {
		return PeerStatus{}, fmt.Errorf("%w: %s: the federation document's key: %w", ErrDiscovery, url, err)
	}
	p := Peer{ID: doc.PeerID, Domain: doc.Domain, PublicKey: key, URL: strings.TrimRight(url, "/"), LeafURL: doc.LeafURL}
	if err := f.cfg.Peers.Add(ctx, p, f.cfg.Now()); err != nil {
		return PeerStatus{}, err
	}
	return f.status(p), nil
}

// Peers lists the peers and their links.
func (f *Federation) Peers() []PeerStatus {
	var out []PeerStatus
	for _, p := range f.cfg.Peers.List() {
		out = append(out, f.status(p))
	}
	return out
}

func (f *Federation) status(p Peer) PeerStatus {
	s := PeerStatus{Peer: p, Fingerprint: p.Fingerprint()}
	if p.Approved {
		s.LinkUp = f.LinkUp(p.ID)
		s.References = f.cfg.Index.Count(p.ID)
	}
	return s
}

// DecidePeer records an operator's decision about a peer; the link and the
// sharing follow within seconds, on every replica.
func (f *Federation) DecidePeer(ctx context.Context, id string, d Decision) (PeerStatus, error) {
	p, err := f.cfg.Peers.Update(ctx, id, f.cfg.Now(), func(p *Peer) error {
		switch d {
		case Approve:
			if p.Approved {
				return ErrNoChange
			}
			p.Approved = true
		case Withdraw:
			if !p.Approved {
				return ErrNoChange
			}
			p.Approved, p.Share = false, false
		case StartSharing:
			if !p.Approved {
				return fmt.Errorf("%w: approve %s before sharing references with it", ErrNotApproved, p.ID)
			}
			if p.Share {
				return ErrNoChange
			}
			p.Share = true
		case StopSharing:
			if !p.Share {
				return ErrNoChange
			}
			p.Share = false
		default:
			return fmt.Errorf("unknown decision %d", d)
		}
		return nil
	})
	if err != nil {
		return PeerStatus{}, err
	}
	f.kick(ctx)
	return f.status(p), nil
}

// RemovePeer forgets a peer: the link ends and what it shared is dropped.
func (f *Federation) RemovePeer(ctx context.Context, id string) error {
	if err := f.cfg.Peers.Remove(ctx, id); err != nil {
		return err
	}
	f.kick(ctx)
	return nil
}

// kick applies the operator's decision here at once, rather than when the
// watcher passes it on.
func (f *Federation) kick(ctx context.Context) {
	if err := f.reconcile(ctx); err != nil {
		f.cfg.Logger.Warn("federation: peers not all set up", "err", err)
	}
}
