package broker

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/federation"
)

// PeerAdmin is what the operator decides about peers; federation is one.
type PeerAdmin interface {
	AddPeer(ctx context.Context, url string) (federation.PeerStatus, error)
	Peers() []federation.PeerStatus
	DecidePeer(ctx context.Context, id string, d federation.Decision) (federation.PeerStatus, error)
	RemovePeer(ctx context.Context, id string) error
}

// UsePeerAdmin serves the operator's peer endpoints from a.
func (b *Broker) UsePeerAdmin(a PeerAdmin) { b.peerAdmin = a }

// AdminPeers is the answer to listing peers: this broker as its peers
// know it, which its operator reads out to theirs, and the peers.
type AdminPeers struct {
	Self  AdminSelf               `json:"Self"`
	Peers []federation.PeerStatus `json:"Peers"`
}

// AdminSelf is this broker as peers see it.
type AdminSelf struct {
	ID          string `json:"Id"`
	Domain      string `json:"Domain"`
	Fingerprint string `json:"Fingerprint"`
}

// AddPeerRequest is the body of adding a peer: its base URL, where its
// discovery documents are.
type AddPeerRequest struct {
	URL string `json:"Url"`
}

// peerActions are what an operator may decide about a peer.
var peerActions = map[string]federation.Decision{
	"approve":  federation.Approve,
	"share":    federation.StartSharing,
	"unshare":  federation.StopSharing,
	"withdraw": federation.Withdraw,
}

// peerTimeout bounds adding a peer, which fetches its discovery
// documents.
const peerTimeout = 20 * time.Second

func (b *Broker) noPeers(c *gin.Context) bool {
	if b.peerAdmin != nil {
		return false
	}
	b.fail(c, "", &api.Error{Code: api.CodeNotFound, Message: "this broker does not federate: start it with --federation-listen"})
	return true
}

func (b *Broker) handleAdminPeers(c *gin.Context) {
	if b.noPeers(c) {
		return
	}
	self := AdminSelf{ID: api.PeerID(b.brokerKey), Domain: b.domain, Fingerprint: federation.Fingerprint(b.brokerKey)}
	c.JSON(http.StatusOK, AdminPeers{Self: self, Peers: b.peerAdmin.Peers()})
}

func (b *Broker) handleAdminAddPeer(c *gin.Context) {
	if b.noPeers(c) {
		return
	}
	var req AddPeerRequest
	if err := decodeStrictJSON(c, 4<<10, &req); err != nil {
		b.fail(c, "", err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), peerTimeout)
	defer cancel()
	p, err := b.peerAdmin.AddPeer(ctx, req.URL)
	if err != nil {
		b.fail(c, "", err)
		return
	}
	b.log.Info("peer added by operator", "peer", p.ID, "domain", p.Domain)
	b.record(audit.Event{Kind: audit.KindPeer, Action: "add", Peer: p.ID, Domain: p.Domain})
	c.JSON(http.StatusCreated, p)
}

func (b *Broker) handleAdminDecidePeer(c *gin.Context) {
	if b.noPeers(c) {
		return
	}
	d, ok := peerActions[c.Param("action")]
	if !ok {
		b.fail(c, "", &api.Error{Code: api.CodeNotFound, Message: "no such peer action: approve, share, unshare or withdraw"})
		return
	}
	p, err := b.peerAdmin.DecidePeer(c.Request.Context(), c.Param("id"), d)
	if err != nil {
		b.fail(c, "", err)
		return
	}
	b.log.Info("peer decided by operator", "peer", p.ID, "action", c.Param("action"))
	b.record(audit.Event{Kind: audit.KindPeer, Action: c.Param("action"), Peer: p.ID, Domain: p.Domain})
	c.JSON(http.StatusOK, p)
}

func (b *Broker) handleAdminRemovePeer(c *gin.Context) {
	if b.noPeers(c) {
		return
	}
	id := c.Param("id")
	// Its domain, for the audit trail, while it is still known.
	var domain string
	for _, p := range b.peerAdmin.Peers() {
		if p.ID == id {
			domain = p.Domain
		}
	}
	if err := b.peerAdmin.RemovePeer(c.Request.Context(), id); err != nil {
		b.fail(c, "", err)
		return
	}
	b.log.Info("peer removed by operator", "peer", id)
	b.record(audit.Event{Kind: audit.KindPeer, Action: "remove", Peer: id, Domain: domain})
	c.Status(http.StatusNoContent)
}
