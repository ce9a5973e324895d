package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// ErrPeerUnavailable: the home broker of the person's identity could not
// be reached, or its link dropped while it asked.
var ErrPeerUnavailable = errors.New("the person's home broker is unavailable")

// Federated is what the broker needs of federation: the identities peers
// hold for a person, and a way to ask their home broker.
type Federated interface {
	Find(country, pnr string, now time.Time) ([]federation.Remote, error)
	Ask(ctx context.Context, r federation.Remote, req federation.AskRequest) (federation.AskReply, error)
}

// UseFederation makes the broker ask, beside its own identities, those its
// peers share with it, and tell changed calls after every operator's
// change to an identity. Set it before serving.
func (b *Broker) UseFederation(f Federated, changed func(context.Context, identity.Identity)) {
	b.fed, b.onIdentityChange = f, changed
}

// answer is how one branch of a request ended: a device's answer, or why
// none came. keyBase is where the answering identity's key is published;
// peerID and peerDomain name the home broker of a remote branch.
type answer struct {
	out                notify.Outcome
	err                error
	keyBase            string
	peerID, peerDomain string
}

// askEverywhere asks the person's devices here and their identities' home
// brokers at once; the first answer from a device wins, and every other
// branch is withdrawn. Without an answer, the outcome is the local
// branch's, or else the first remote one's.
func (b *Broker) askEverywhere(ctx context.Context, q notify.Question, remotes []federation.Remote, baseURL string) answer {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan answer, 1+len(remotes))
	n := 0
	if len(q.Targets) > 0 {
		n++
		go func() {
			out, err := b.asker.Ask(ctx, q)
			results <- answer{out: out, err: err, keyBase: baseURL}
		}()
	}
	for _, r := range remotes {
		n++
		go func() {
			reply, err := b.fed.Ask(ctx, r, federation.AskRequest{
				RequestID: q.RequestID, Reason: q.Reason, Requester: q.Requester, Expires: q.Expires,
				MatchChoices: q.MatchChoices, Match: q.Match,
			})
			results <- remoteAnswer(r, q, reply, err)
		}()
	}
	var won *answer
	var first answer
	for i := range n {
		a := <-results
		switch {
		case won != nil:
		case a.err == nil:
			won = &a
			cancel() // the others withdraw
		case i == 0 || (len(q.Targets) > 0 && a.keyBase == baseURL):
			first = a
		}
	}
	if won != nil {
		return *won
	}
	return first
}

// remoteAnswer turns a home broker's verified reply into an answer.
func remoteAnswer(r federation.Remote, q notify.Question, reply federation.AskReply, err error) answer {
	a := answer{keyBase: r.Peer.URL, peerID: r.Peer.ID, peerDomain: r.Peer.Domain}
	switch {
	case errors.Is(err, federation.ErrPeerUnavailable), errors.Is(err, federation.ErrBadMessage):
		a.err = fmt.Errorf("%w: %s: %w", ErrPeerUnavailable, r.Peer.Domain, err)
		return a
	case err != nil:
		a.err = err // the caller went away
		return a
	}
	if reply.Decision != "" {
		a.out = notify.Outcome{
			Decision: notify.Decision(reply.Decision), LegalID: reply.LegalID, PublicKey: r.Ref.PublicKey,
			SignedData: reply.SignedData, Signature: reply.DeviceSignature, Push: reply.Push,
			// Judged here, from the verified answer, as for a local
			// device: not taken from the home broker's word.
			Match: reply.Match, WrongNumber: len(q.MatchChoices) > 0 && reply.Match != q.Match,
		}
		return a
	}
	wait := time.Duration(reply.RetryAfter) * time.Second
	switch reply.Code {
	case api.CodeTimeout:
		a.err = notify.ErrExpired
	case api.CodeSuperseded:
		a.err = notify.ErrSuperseded
	case api.CodeRateLimited:
		a.err = rateLimited("at the person's home broker", wait)
	case api.CodeBlocked:
		a.err = &retryError{err: fmt.Errorf("%w at the person's home broker", ErrBlocked), wait: wait}
	case api.CodeUnknownPerson:
		a.err = ErrUnknownPerson
	case api.CodeTooBusy:
		a.err = &retryError{err: ErrTooBusy, wait: wait}
	default:
		a.err = &retryError{err: fmt.Errorf("%w: %s answered %s: %s", ErrPeerUnavailable, r.Peer.Domain, reply.Code, reply.Message), wait: retryAfterSeconds * time.Second}
	}
	return a
}

// ServePeer asks one of this broker's people on behalf of a federated
// peer, with this broker's own rules: the identity must be held here,
// approved and valid; the peer has a budget of its own, and so has the
// person; "not me" blocks the peer's caller; the wait is at most this
// broker's maximum.
func (b *Broker) ServePeer(ctx context.Context, peer federation.Peer, req federation.AskRequest) federation.AskReply {
	now, start := b.now(), time.Now()
	var waited time.Duration // the person's, once the devices are asked
	refuse := func(err error) federation.AskReply {
		r := b.errorResponse(err, req.RequestID)
		b.observePeer(start, r.Code, waited)
		return federation.AskReply{Code: r.Code, Message: r.Message, RetryAfter: r.RetryAfter}
	}
	if b.shuttingDown.Load() {
		return refuse(ErrShuttingDown)
	}
	if err := api.CheckReason(req.Reason); err != nil {
		return refuse(err)
	}
	id, err := b.registry.Get(ctx, req.LegalID)
	if errors.Is(err, identity.ErrNotFound) || (err == nil && !id.ValidAt(now)) {
		return refuse(ErrUnknownPerson)
	}
	if err != nil {
		return refuse(err)
	}
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	if pnr == "" || country == "" {
		return refuse(ErrUnknownPerson)
	}
	caller := "peer:" + peer.ID
	if wait := b.callerLimit.take(now, caller); wait > 0 {
		b.obs.RateLimited(budgetPeer)
		return refuse(rateLimited("from this peer", wait))
	}
	limit, budget := b.identityLimit, budgetPerson
	if req.Requester.Verified {
		limit, budget = b.signedIdentityLimit, budgetPersonSigned
	}
	if wait := limit.take(now, id.ID); wait > 0 {
		b.obs.RateLimited(budget)
		return refuse(rateLimited("for this person", wait))
	}
	// The peer's caller, as the peer named it: its requester, or its
	// address there.
	blockKey := b.blockKey(caller+"/"+peerCaller(req.Requester), b.pnrHash.sum(country, pnr))
	if b.blocks != nil {
		if until, blocked := b.blocks.Blocked(blockKey, now); blocked {
			b.obs.Blocked()
			return refuse(&retryError{err: ErrBlocked, wait: until.Sub(now)})
		}
	}
	if p, ok := b.asker.(pendingCounter); ok && b.maxPending > 0 && p.Pending() >= b.maxPending {
		return refuse(&retryError{err: ErrTooBusy, wait: retryAfterSeconds * time.Second})
	}
	requester := req.Requester
	// The peer as its operator approved it, not as it names itself.
	requester.Via = peer.Domain
	expires := now.Add(time.Duration(b.decoder.MaxTimeout()) * time.Second)
	if req.Expires.Before(expires) {
		expires = req.Expires
	}
	q := notify.Question{
		RequestID: req.RequestID, Reason: req.Reason, Requester: requester, Expires: expires,
		Targets:      []notify.Target{{LegalID: id.ID, PublicKey: id.PublicKey}},
		MatchChoices: req.MatchChoices, Match: req.Match,
	}
	out, err := b.asker.Ask(ctx, q)
	waited = out.Waited
	if errors.Is(err, context.DeadlineExceeded) {
		// ctx ends at the ask's expiry, the instant the pusher's own timer
		// fires: whichever the pusher saw first, the request timed out.
		err = notify.ErrExpired
	}
	rec := &mfaRecord{requestID: req.RequestID, pnr: b.pnrHash.sum(country, pnr)}
	if err != nil {
		reply := refuse(err)
		b.recordPeerMFA(peer, req, rec.pnr, out, err, reply.Code)
		return reply
	}
	resp := outcomeResponse(out, req.RequestID, "")
	if out.Decision == notify.NotMe {
		b.reportNotMe(blockKey, rec, now)
	}
	b.recordPeerMFA(peer, req, rec.pnr, out, nil, resp.Code)
	b.observePeer(start, resp.Code, out.Waited)
	b.log.Info("federated request answered", "peer", peer.ID, "request", req.RequestID, "person", rec.pnr, "code", resp.Code)
	return federation.AskReply{
		Code: resp.Code, Message: resp.Message, LegalID: out.LegalID, Decision: string(out.Decision),
		SignedData: out.SignedData, DeviceSignature: out.Signature, Push: out.Push, Match: out.Match,
	}
}

// peerCaller names a peer's caller for blocks: its verified requester, or
// its address at the peer.
func peerCaller(r notify.Requester) string {
	if r.Verified {
		return "id:" + r.LegalID
	}
	return "ip:" + r.RemoteIP
}
