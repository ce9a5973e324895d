package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// startFederatingBroker is a broker that federates: its own domain, and a
// leaf-node listener on a random port.
func startFederatingBroker(t testing.TB, domain string, tweak ...func(*config)) *testBroker {
	t.Helper()
	return startBroker(t, append([]func(*config){func(c *config) {
		c.Domain, c.FederationListen = domain, "127.0.0.1:0"
	}}, tweak...)...)
}

// peerStatus runs a peer command with --json and reads the peer it prints.
func (tb *testBroker) peerCommand(args ...string) federation.PeerStatus {
	tb.t.Helper()
	out, err := tb.operator(append([]string{"peer"}, append(args, "--json")...)...)
	if err != nil {
		tb.t.Fatalf("peer %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var p federation.PeerStatus
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		tb.t.Fatalf("peer %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return p
}

func (tb *testBroker) peers() []federation.PeerStatus {
	tb.t.Helper()
	out, err := tb.operator("peer", "list", "--json")
	if err != nil {
		tb.t.Fatalf("peer list: %v: %s", err, out)
	}
	var ps []federation.PeerStatus
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		tb.t.Fatalf("peer list: %v: %s", err, out)
	}
	return ps
}

func (tb *testBroker) peer(id string) (federation.PeerStatus, bool) {
	for _, p := range tb.peers() {
		if p.ID == id {
			return p, true
		}
	}
	return federation.PeerStatus{}, false
}

// peerWith makes a and b peers, as their operators would: each adds the
// other, checks the fingerprint, and approves; each shares its references
// when share says so. It returns their peer IDs and waits for the link.
func peerWith(t testing.TB, a, b *testBroker, aShares, bShares bool) (aID, bID string) {
	t.Helper()
	pb := a.peerCommand("add", b.url(""))
	pa := b.peerCommand("add", a.url(""))
	bKey, err := identity.ParsePublicKey(b.info.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Fingerprint != federation.Fingerprint(bKey) {
		t.Fatalf("a was shown fingerprint %s for b", pb.Fingerprint)
	}
	a.peerCommand("approve", pb.ID)
	b.peerCommand("approve", pa.ID)
	if aShares {
		a.peerCommand("share", pb.ID)
	}
	if bShares {
		b.peerCommand("share", pa.ID)
	}
	poll.For(t, 15*time.Second, func() error {
		for _, side := range []struct {
			tb *testBroker
			id string
		}{{a, pb.ID}, {b, pa.ID}} {
			if p, ok := side.tb.peer(side.id); !ok || !p.LinkUp {
				return fmt.Errorf("link to %s down", side.id)
			}
		}
		return nil
	})
	return pa.ID, pb.ID
}

// awaitReferences waits until tb has n references from peer.
func (tb *testBroker) awaitReferences(peerID string, n int) {
	tb.t.Helper()
	poll.For(tb.t, 10*time.Second, func() error {
		if p, ok := tb.peer(peerID); !ok || p.References != n {
			return fmt.Errorf("%d references from %s, want %d", p.References, peerID, n)
		}
		return nil
	})
}

func TestFederatedApprove(t *testing.T) {
	t.Parallel()
	a := startFederatingBroker(t, "a.test")
	b := startFederatingBroker(t, "b.test")
	_, bID := peerWith(t, a, b, true, true)
	d := b.person("19800101-1234", "SE", notifytest.Always(notify.Approve))
	a.awaitReferences(bID, 1)
	o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19800101-1234", COUNTRY: "SE", Timeout: 20, Reason: "Federated sign in"}, "application/json")
	if o.status != 200 || o.code != "approved" {
		t.Fatalf("%d %s: %s", o.status, o.code, o.message)
	}
	p := d.NextPrompt()
	if p.Push.Requester.Via != "a.test" {
		t.Errorf("the device was not told the request came via a.test: %+v", p.Push.Requester)
	}
}
