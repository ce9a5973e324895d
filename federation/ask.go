package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/api"
)

// Remote is a person's identity at a peer: where to ask.
type Remote struct {
	Peer Peer
	Ref  Reference
}

// Find returns the identities the peers that share with this broker hold
// for a person, valid at now, on peers whose link is up or not: a peer
// that cannot be reached is the caller's outcome to report.
func (f *Federation) Find(country, pnr string, now time.Time) ([]Remote, error) {
	f.mu.Lock()
	peers := make(map[string]Peer, len(f.links))
	ids := make([]string, 0, len(f.links))
	for id, l := range f.links {
		peers[id] = l.current()
		ids = append(ids, id)
	}
	f.mu.Unlock()
	refs, err := f.cfg.Index.Find(country, pnr, ids)
	if err != nil {
		return nil, err
	}
	var out []Remote
	for _, r := range refs {
		if p, ok := peers[r.Home]; ok && r.ValidAt(now) {
			out = append(out, Remote{Peer: p, Ref: r})
		}
	}
	return out, nil
}

// LinkUp reports whether the link with a peer was up when last looked at.
func (f *Federation) LinkUp(peerID string) bool {
	f.mu.Lock()
	l := f.links[peerID]
	f.mu.Unlock()
	if l == nil {
		return false
	}
	up, _ := l.state()
	return up
}

// linkCheck is how often a link's state is looked at, and linkDownAfter
// how long it may be down before the requests across it are given up:
// together under the 2 seconds a caller waits at most to learn that a
// peer is unavailable.
const (
	linkCheck     = 250 * time.Millisecond
	linkDownAfter = 750 * time.Millisecond
)

// Ask asks the home broker of a remote identity, and returns its verified
// reply: ErrPeerUnavailable when the peer cannot be reached or its link
// drops, ctx's error when the caller goes away (the home broker is told to
// withdraw).
func (f *Federation) Ask(ctx context.Context, r Remote, req AskRequest) (AskReply, error) {
	f.mu.Lock()
	l := f.links[r.Peer.ID]
	f.mu.Unlock()
	if l == nil {
		return AskReply{}, fmt.Errorf("%w: %s (%s) is not linked", ErrPeerUnavailable, r.Peer.ID, r.Peer.Domain)
	}
	up, dropped := l.state()
	if !up && f.linkUp(l) {
		// Back since the watcher looked.
		l.markUp()
		up, dropped = l.state()
	}
	if !up {
		return AskReply{}, fmt.Errorf("%w: the link with %s (%s) is down", ErrPeerUnavailable, r.Peer.ID, r.Peer.Domain)
	}
	req.Version, req.From, req.To, req.LegalID, req.Via = ProtocolVersion, f.me, r.Peer.ID, r.Ref.LegalID, f.cfg.Domain
	req.sign(f.cfg.Key)
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A drop of the link ends the wait in under 2 seconds, not at the
	// timeout.
	go func() {
		select {
		case <-actx.Done():
		case <-dropped:
			cancel(fmt.Errorf("%w: the link with %s dropped", ErrPeerUnavailable, r.Peer.ID))
		}
	}()
	m, err := l.nc.RequestWithContext(actx, askSubject(r.Peer.ID), mustJSON(req))
	if err != nil {
		if cause := context.Cause(actx); errors.Is(cause, ErrPeerUnavailable) {
			return AskReply{}, cause
		}
		if ctx.Err() != nil {
			f.sendCancel(l, r.Peer.ID, req.RequestID)
			return AskReply{}, ctx.Err()
		}
		if errors.Is(err, nats.ErrNoResponders) {
			return AskReply{}, fmt.Errorf("%w: %s does not answer", ErrPeerUnavailable, r.Peer.ID)
		}
		return AskReply{}, fmt.Errorf("%w: %w", ErrPeerUnavailable, err)
	}
	var reply AskReply
	if err := decodeStrict(m.Data, &reply); err != nil {
		return AskReply{}, err
	}
	if err := reply.check(r.Peer.PublicKey, req, r.Ref); err != nil {
		f.cfg.Logger.Warn("federation: a reply from the peer refused", "peer", r.Peer.ID, "request", req.RequestID, "err", err)
		return AskReply{}, err
	}
	return reply, nil
}

func (f *Federation) sendCancel(l *link, home, requestID string) {
	c := cancelMessage{RequestID: requestID, From: f.me, To: home}
	c.Signature = ed25519.Sign(f.cfg.Key, c.form())
	if err := l.nc.Publish(cancelSubject(home), mustJSON(c)); err != nil {
		f.cfg.Logger.Debug("federation: cancel not sent", "request", requestID, "err", err)
	}
}

// maxServedPerPeer bounds the requests a peer may have waiting here at
// once, whatever its rate: a flood from one peer cannot take every
// pending slot.
const maxServedPerPeer = 10_000

// serve answers a peer's request to ask one of this broker's people.
func (f *Federation) serve(l *link, m *nats.Msg) {
	now := f.cfg.Now()
	var req AskRequest
	err := decodeStrict(m.Data, &req)
	if err == nil {
		err = req.check(l.key, f.me, now)
	}
	if err == nil && !l.current().Share {
		err = fmt.Errorf("%w: this broker does not share its references with %s", ErrBadMessage, l.id)
	}
	ctx, cancel := context.WithDeadline(context.Background(), req.Expires)
	if err == nil {
		err = l.begin(req.RequestID, req.Expires, cancel, now)
	}
	if err != nil {
		cancel()
		f.cfg.Logger.Info("federation: a request from the peer refused", "peer", l.id, "err", err)
		f.respond(l, m, req, AskReply{Code: api.CodeMalformed, Message: "The federation request was refused: " + err.Error()})
		return
	}
	go func() {
		defer l.end(req.RequestID)
		defer cancel()
		reply := f.cfg.Home.ServePeer(ctx, l.current(), req)
		f.respond(l, m, req, reply)
	}()
}

// respond addresses and countersigns a reply.
func (f *Federation) respond(l *link, m *nats.Msg, req AskRequest, reply AskReply) {
	reply.Version, reply.RequestID, reply.From, reply.To = ProtocolVersion, req.RequestID, f.me, l.id
	reply.sign(f.cfg.Key)
	if m.Reply == "" {
		return
	}
	if err := m.Respond(mustJSON(reply)); err != nil {
		f.cfg.Logger.Debug("federation: reply not sent", "peer", l.id, "err", err)
	}
}

// seenSweep is how often the IDs of expired requests are forgotten.
const seenSweep = 10 * time.Second

// begin registers a request served for the peer; a request ID seen
// before, or one past the peer's share, is refused. An ID is remembered
// until its request expires: after that, check refuses the request for
// being expired.
func (l *link) begin(id string, expires time.Time, cancel context.CancelFunc, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.pruneAt) {
		for seen, until := range l.seen {
			if now.After(until) {
				delete(l.seen, seen)
			}
		}
		l.pruneAt = now.Add(seenSweep)
	}
	if _, replayed := l.seen[id]; replayed {
		return fmt.Errorf("%w: request %s was asked before", ErrBadMessage, id)
	}
	if len(l.serving) >= maxServedPerPeer {
		return fmt.Errorf("%w: %d requests of this peer are waiting already", ErrBadMessage, maxServedPerPeer)
	}
	l.seen[id] = expires
	l.serving[id] = cancel
	return nil
}

func (l *link) end(id string) {
	l.mu.Lock()
	delete(l.serving, id)
	l.mu.Unlock()
}

// cancelServed withdraws a request the peer asked, when its caller went
// away.
func (f *Federation) cancelServed(l *link, m *nats.Msg) {
	var c cancelMessage
	if err := decodeStrict(m.Data, &c); err != nil || c.From != l.id || c.To != f.me {
		return
	}
	if err := ed25519Verify(l.key, c.form(), c.Signature); err != nil {
		return
	}
	l.mu.Lock()
	cancel := l.serving[c.RequestID]
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func ed25519Verify(pub ed25519.PublicKey, form, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, form, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}
