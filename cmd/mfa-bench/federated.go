//go:build linux

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
)

// The brokers of a federated run: A is asked (the relying parties' broker),
// B is the home broker of the people, which holds their identities and
// reaches their devices, and shares its references with A.
const (
	askedName  = "asked broker A"
	askedHost  = "bench.test"
	homeName   = "home broker B"
	homeDomain = "home.bench.test"
)

// openFederated starts the two brokers of --federated, each with its own
// data directory, domain and leaf-node listener, peers them as their
// operators would (each adds the other, checks its fingerprint and
// approves it), and has B share its references with A. It returns A, with
// B as its home.
func openFederated(ctx context.Context, cfg config, logf func(string, ...any)) (*target, error) {
	home, err := startFederating(ctx, cfg, brokerSpec{name: homeName, domain: homeDomain}, cfg.brokerBin, logf)
	if err != nil {
		return nil, err
	}
	asked, err := startFederating(ctx, cfg, brokerSpec{name: askedName, domain: askedHost}, home.binary, logf)
	if err != nil {
		home.close(logf)
		return nil, err
	}
	asked.home = home
	if err := peerBrokers(ctx, asked, home, logf); err != nil {
		asked.close(logf)
		return nil, err
	}
	if _, err := home.admin.DecidePeer(ctx, asked.peerID, "share"); err != nil {
		asked.close(logf)
		return nil, fmt.Errorf("%s shares with %s: %w", homeName, askedName, err)
	}
	logf("%s shares its references with %s", homeName, askedName)
	return asked, nil
}

// startFederating starts a broker that federates: spec's, with a leaf-node
// listener on a free loopback port.
func startFederating(ctx context.Context, cfg config, spec brokerSpec, binary string, logf func(string, ...any)) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	spec.extra = append(spec.extra, "--federation-listen", addr)
	return startTarget(ctx, cfg, spec, binary, logf)
}

// peerBrokers makes a and b approved peers through their operator
// sockets: each adds the other (which fetches its discovery documents),
// checks the fingerprint it is shown against the other's key, and
// approves. It waits for the link to be up on both sides, and records each
// one's peer ID in the target.
func peerBrokers(ctx context.Context, a, b *target, logf func(string, ...any)) error {
	pb, err := a.admin.AddPeer(ctx, b.baseURL)
	if err != nil {
		return fmt.Errorf("%s adds %s: %w", a.name, b.name, err)
	}
	pa, err := b.admin.AddPeer(ctx, a.baseURL)
	if err != nil {
		return fmt.Errorf("%s adds %s: %w", b.name, a.name, err)
	}
	for _, c := range []struct {
		shown  federation.PeerStatus
		of     *target
		shownN string
	}{{pb, b, a.name}, {pa, a, b.name}} {
		info, err := brokerInfo(ctx, c.of.baseURL)
		if err != nil {
			return err
		}
		key, err := identity.ParsePublicKey(info.PublicKey)
		if err != nil {
			return fmt.Errorf("%s's key: %w", c.of.name, err)
		}
		if want := federation.Fingerprint(key); c.shown.Fingerprint != want {
			return fmt.Errorf("%s was shown fingerprint %s for %s, whose key's is %s", c.shownN, c.shown.Fingerprint, c.of.name, want)
		}
	}
	a.peerID, b.peerID = pa.ID, pb.ID
	if _, err := a.admin.DecidePeer(ctx, pb.ID, "approve"); err != nil {
		return fmt.Errorf("%s approves %s: %w", a.name, b.name, err)
	}
	if _, err := b.admin.DecidePeer(ctx, pa.ID, "approve"); err != nil {
		return fmt.Errorf("%s approves %s: %w", b.name, a.name, err)
	}
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		upA, errA := peerStatus(ctx, a, b.peerID)
		upB, errB := peerStatus(ctx, b, a.peerID)
		if errA == nil && errB == nil && upA.LinkUp && upB.LinkUp {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the link between %s and %s is not up within 30 s (%v %v)\n%s log:\n%s\n%s log:\n%s",
				a.name, b.name, errA, errB, a.name, a.logTail(), b.name, b.logTail())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	logf("%s (%s) and %s (%s) approved each other; link up in %s", a.name, b.peerID, b.name, a.peerID, time.Since(start).Round(time.Millisecond))
	return nil
}

// peerStatus is what t's operator socket says of the peer with id.
func peerStatus(ctx context.Context, t *target, id string) (federation.PeerStatus, error) {
	peers, err := t.admin.Peers(ctx)
	if err != nil {
		return federation.PeerStatus{}, err
	}
	for _, p := range peers {
		if p.ID == id {
			return p, nil
		}
	}
	return federation.PeerStatus{}, fmt.Errorf("%s does not list peer %s", t.name, id)
}

// awaitReferences waits until t's peer list shows n references from its
// home broker, and returns how long that took.
func awaitReferences(ctx context.Context, t *target, n int, logf func(string, ...any)) (time.Duration, error) {
	start := time.Now()
	// Sharing is one JetStream write per reference at the home broker;
	// allow for a slow machine.
	within := time.Minute + time.Duration(n)*time.Millisecond
	lastLog := start
	for {
		p, err := peerStatus(ctx, t, t.home.peerID)
		if err == nil && p.References >= n {
			d := time.Since(start)
			logf("%s lists %d references from %s (waited %s)", t.name, p.References, t.home.name, d.Round(time.Millisecond))
			return d, nil
		}
		if time.Since(start) > within {
			return 0, fmt.Errorf("%s lists %d references from %s after %s, want %d (%v)", t.name, p.References, t.home.name, within, n, err)
		}
		if time.Since(lastLog) >= 2*time.Second {
			logf("waiting for references: %s lists %d of %d", t.name, p.References, n)
			lastLog = time.Now()
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
