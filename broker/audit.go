package broker

import (
	"context"
	"errors"
	"net/netip"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// Auditor keeps the audit trail of decisions; audit.Writer is one.
type Auditor interface {
	Record(e audit.Event) error
}

// WithAudit records every decision that changes what a person or a
// relying party can do in a: MFA outcomes (of requests that reached the
// person's devices: refusals before a push change nothing, and recording
// them would let a flood of refused requests cost a disk write each), "not
// me" reports and their blocks, and operators' actions on identities,
// peers and blocks. Each is recorded before the caller hears of it.
func WithAudit(a Auditor) Option { return func(b *Broker) { b.auditor = a } }

// record writes e to the audit trail. A failure is logged and the
// decision stands: the trail's own health is for readiness to report.
func (b *Broker) record(e audit.Event) {
	if b.auditor == nil {
		return
	}
	if err := b.auditor.Record(e); err != nil {
		b.log.Error("audit event not recorded", "kind", e.Kind, "request", e.Request, "err", err)
	}
}

// recordMFA records how a request pushed to the person's devices ended:
// with a device's answer, or without one (a.err), answered code.
func (b *Broker) recordMFA(call *mfaCall, a answer, code api.Code, order bool) {
	e := audit.Event{
		Kind: audit.KindMFA, Request: call.rec.requestID, Order: order, Person: call.rec.pnr,
		Remote: call.fc.remoteIP, Code: auditCode(a.err, code), Peer: a.peerID, Domain: a.peerDomain,
	}
	if call.req.Signed() {
		e.Requester = call.req.LegalID
	}
	if a.err == nil {
		e.Decision, e.Device = string(a.out.Decision), a.out.LegalID
	}
	b.record(e)
}

// recordPeerMFA records how a request asked on behalf of a peer ended.
// What the peer says of its caller is kept only when well formed: a peer
// cannot write free text, such as a personal number, into the trail.
func (b *Broker) recordPeerMFA(peer federation.Peer, req federation.AskRequest, person string, out notify.Outcome, err error, code api.Code) {
	e := audit.Event{
		Kind: audit.KindPeerMFA, Request: req.RequestID, Person: person,
		Code: auditCode(err, code), Peer: peer.ID, Domain: peer.Domain,
	}
	r := req.Requester
	if r.Verified && identity.ValidateID(r.LegalID) == nil {
		e.Requester = r.LegalID
	}
	if ip, perr := netip.ParseAddr(r.RemoteIP); perr == nil {
		e.Remote = ip.String()
	}
	if err == nil {
		e.Decision, e.Device = string(out.Decision), out.LegalID
	}
	b.record(e)
}

// callerGone is the code recorded for a caller that went away before the
// outcome, and was answered nothing; the metrics call it the same.
const callerGone = "caller-gone"

// auditCode is the outcome code an ended request is recorded with: the
// one its caller was answered, or callerGone.
func auditCode(err error, code api.Code) string {
	if errors.Is(err, context.Canceled) && code != api.CodeCancelled {
		return callerGone
	}
	return string(code)
}

// personOf is the keyed hash of an identity's person, "" for an identity
// without PNR and COUNTRY.
func (b *Broker) personOf(id identity.Identity) string {
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	if pnr == "" || country == "" {
		return ""
	}
	return b.pnrHash.sum(country, pnr)
}
