package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// federated is A and B peered, each sharing with the other.
type federated struct {
	a, b     *testBroker
	aID, bID string
}

func startFederation(t *testing.T) federated {
	t.Helper()
	a := startFederatingBroker(t, "a.test")
	b := startFederatingBroker(t, "b.test")
	aID, bID := peerWith(t, a, b, true, true)
	return federated{a: a, b: b, aID: aID, bID: bID}
}

// personAtB makes an approved identity at B and waits until A holds its
// reference.
func (f federated) personAtB(pnr, country string, decide notifytest.Decider) *notifytest.Device {
	f.a.t.Helper()
	before := 0
	if p, ok := f.a.peer(f.bID); ok {
		before = p.References
	}
	d := f.b.person(pnr, country, decide)
	f.a.awaitReferences(f.bID, before+1)
	return d
}

// TestFederatedMFA: at A, a request for a person whose identity is at B
// ends as a local one would, in every encoding, and the evidence verifies
// offline against the key B publishes.
func TestFederatedMFA(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	a, b := f.a, f.b
	approver := f.personAtB("19800101-0001", "SE", notifytest.Always(notify.Approve))
	denier := f.personAtB("19800101-0002", "SE", notifytest.Always(notify.Deny))
	silent := f.personAtB("19800101-0003", "SE", nil)
	rpID, rpKey := a.requester()
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			for _, accept := range allAccepts {
				m := mfaBody{PNR: "19800101-0001", COUNTRY: "SE", Timeout: 30, Reason: "Federated sign in (" + enc + ", " + accept + ")"}
				o := a.postMFA(context.Background(), enc, m, accept)
				if o.status != http.StatusOK || o.code != "approved" {
					t.Fatalf("%s: %d %s (%s), want 200 approved", accept, o.status, o.code, o.message)
				}
				p := approver.NextPrompt()
				if r := p.Push.Requester; r.Via != "a.test" || r.Verified || p.Push.Reason != m.Reason {
					t.Fatalf("the device at B was shown %+v, %q", r, p.Push.Reason)
				}
				if !strings.HasPrefix(accept, "text/html") {
					verifyEvidence(t, b, o, approver, m.Reason, notify.Approve)
				}
			}

			m := mfaBody{PNR: "19800101-0002", COUNTRY: "SE", Timeout: 30, Reason: "Federated payment"}
			o := a.postMFA(context.Background(), enc, m, "application/json")
			if o.status != http.StatusForbidden || o.code != "denied" {
				t.Fatalf("denial: %d %s (%s)", o.status, o.code, o.message)
			}
			verifyEvidence(t, b, o, denier, m.Reason, notify.Deny)

			o = a.postMFA(context.Background(), enc, mfaBody{PNR: "19800101-0003", COUNTRY: "SE", Timeout: 1, Reason: "Nobody answers"}, "text/plain")
			if o.status != http.StatusRequestTimeout || o.code != "timeout" {
				t.Fatalf("timeout: %d %s (%s)", o.status, o.code, o.message)
			}
			p := silent.NextPrompt()
			poll.Until(t, "withdrawal at B after the timeout", func() bool { return len(silent.WithdrawalsFor(p.Push.RequestID)) == 1 })

			// Superseded: a second request for the person replaces the
			// first, at B, which holds the person's pending request.
			first := make(chan outcome, 1)
			go func() {
				first <- a.postMFA(context.Background(), enc, mfaBody{PNR: "19800101-0003", COUNTRY: "SE", Timeout: 30, Reason: "First"}, "application/json")
			}()
			p = silent.NextPrompt()
			if p.Push.Reason != "First" {
				t.Fatalf("prompt %q", p.Push.Reason)
			}
			o = a.postMFA(context.Background(), enc, mfaBody{PNR: "19800101-0003", COUNTRY: "SE", Timeout: 1, Reason: "Second"}, "application/json")
			if o.code != "timeout" {
				t.Fatalf("second request: %d %s (%s)", o.status, o.code, o.message)
			}
			if o := <-first; o.status != http.StatusConflict || o.code != "superseded" {
				t.Fatalf("first request: %d %s (%s), want 409 superseded", o.status, o.code, o.message)
			}
			silent.NextPrompt() // the second's

			// The caller going away at A withdraws the prompt at B.
			ctx, cancel := context.WithCancel(context.Background())
			gone := make(chan struct{})
			go func() {
				defer close(gone)
				ct, body := mfaBody{PNR: "19800101-0003", COUNTRY: "SE", Timeout: 30, Reason: "Leaving"}.encode(enc)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.url("/MFA"), strings.NewReader(body))
				req.Header.Set("Content-Type", ct)
				if resp, err := a.client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			p = silent.NextPrompt()
			cancel()
			<-gone
			poll.Until(t, "withdrawal at B after the caller left A", func() bool {
				ws := silent.WithdrawalsFor(p.Push.RequestID)
				return len(ws) == 1 && ws[0].Why == notify.WhyCancelled
			})
			poll.Until(t, "nothing pending at A or B", func() bool { return a.srv.Pending() == 0 && b.srv.Pending() == 0 })

			// A signed request is verified at A, and shown verified via A.
			m = mfaBody{PNR: "19800101-0001", COUNTRY: "SE", Timeout: 30, Reason: "Signed at A", LegalId: rpID}
			sign(rpKey, &m)
			o = a.postMFA(context.Background(), enc, m, "application/json")
			if o.code != "approved" {
				t.Fatalf("signed request: %d %s (%s)", o.status, o.code, o.message)
			}
			if r := approver.NextPrompt().Push.Requester; !r.Verified || r.LegalID != rpID || r.Name != "Example Bank AB" || r.Via != "a.test" {
				t.Fatalf("the device at B was shown requester %+v", r)
			}

			// Orders do not reach a peer's people, and say so.
			ct, body := mfaBody{PNR: "19800101-0001", COUNTRY: "SE", Timeout: 30, Reason: "An order"}.encode(enc)
			r := a.do(http.MethodPost, "/Orders", ct, "application/json", strings.NewReader(body))
			if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "federated broker, which orders do not reach") {
				t.Fatalf("an order for B's person at A: %d %s", r.status, r.body)
			}
		})
	}
	// The refused orders pushed nothing: B's own request is the next
	// prompt.
	b.barrier(approver, "19800101-0001", "SE")
}

// TestFederatedNotMe: "not me" at B blocks A's caller at B, as locally.
func TestFederatedNotMe(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	victim := f.personAtB("19440404-0001", "SE", notifytest.Always(notify.NotMe))
	m := mfaBody{PNR: "19440404-0001", COUNTRY: "SE", Timeout: 30, Reason: "Suspicious"}
	o := f.a.postMFA(context.Background(), "json", m, "application/json")
	if o.status != http.StatusForbidden || o.code != "denied-not-me" || o.evidence["Decision"] != "not-me" {
		t.Fatalf("got %d %s %v", o.status, o.code, o.evidence)
	}
	verifyEvidence(t, f.b, o, victim, m.Reason, notify.NotMe)
	o = f.a.postMFA(context.Background(), "xml", m, "application/json")
	if o.status != http.StatusForbidden || o.code != "blocked" {
		t.Fatalf("the same caller again: %d %s (%s), want 403 blocked", o.status, o.code, o.message)
	}
	victim.NextPrompt() // the first request's
	f.b.barrier(victim, "19440404-0001", "SE")
}

// TestFederatedPersonOnBothBrokers: a person with identities at A and at
// B gets both devices asked; the first answer wins, the other withdraws.
func TestFederatedPersonOnBothBrokers(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	atA := f.a.person("19330303-0001", "NO", nil)
	atB := f.personAtB("19330303-0001", "NO", notifytest.Always(notify.Approve))
	o := f.a.postMFA(context.Background(), "form", mfaBody{PNR: "19330303-0001", COUNTRY: "NO", Timeout: 30, Reason: "Both"}, "application/json")
	if o.code != "approved" || o.evidence["LegalId"] != atB.LegalID {
		t.Fatalf("got %s from %s, want approved by the identity at B", o.code, o.evidence["LegalId"])
	}
	verifyEvidence(t, f.b, o, atB, "Both", notify.Approve)
	p := atA.NextPrompt()
	poll.Until(t, "the device at A told to withdraw", func() bool { return len(atA.WithdrawalsFor(p.Push.RequestID)) == 1 })

	// And asked at B, where the identity at A is the remote one.
	atB2 := f.b.person("19330303-0002", "NO", nil)
	atA2 := f.a.person("19330303-0002", "NO", notifytest.Always(notify.Approve))
	f.b.awaitReferences(f.aID, 2)
	o = f.b.postMFA(context.Background(), "json", mfaBody{PNR: "19330303-0002", COUNTRY: "NO", Timeout: 30, Reason: "Other way"}, "application/json")
	if o.code != "approved" || o.evidence["LegalId"] != atA2.LegalID {
		t.Fatalf("at B: got %s from %s, want approved by the identity at A", o.code, o.evidence["LegalId"])
	}
	verifyEvidence(t, f.a, o, atA2, "Other way", notify.Approve)
	p = atB2.NextPrompt()
	poll.Until(t, "the device at B told to withdraw", func() bool { return len(atB2.WithdrawalsFor(p.Push.RequestID)) == 1 })
}

// brokerProcess is a broker run as a process of its own, as in
// production, so that a test can kill it.
type brokerProcess struct {
	*testBroker
	args []string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
}

// startBrokerProcess runs a federating broker on fixed free ports, so that
// it comes back where its peers expect it after a restart.
func startBrokerProcess(t *testing.T, domain string) *brokerProcess {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	bp := &brokerProcess{
		args: []string{"--data-dir", dataDir, "--domain", domain, "--http-addr", freeAddr(t),
			"--nats-listen", freeAddr(t), "--federation-listen", freeAddr(t), "--log-format", "json"},
		out: &syncbuf.Buffer{},
	}
	bp.testBroker = &testBroker{t: t, cfg: config{Config: service.Config{DataDir: dataDir}}, logs: bp.out, client: http.DefaultClient}
	bp.httpURL = "http://" + bp.args[5]
	bp.start()
	t.Cleanup(func() {
		bp.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", domain, bp.out.String())
		}
	})
	return bp
}

func (bp *brokerProcess) start() {
	bp.t.Helper()
	bp.cmd = exec.Command(os.Args[0], bp.args...)
	bp.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	bp.cmd.Stdout, bp.cmd.Stderr = bp.out, bp.out
	if err := bp.cmd.Start(); err != nil {
		bp.t.Fatal(err)
	}
	poll.For(bp.t, 30*time.Second, func() error {
		resp, err := http.Get(bp.url("/Broker"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&bp.info)
	})
}

// kill ends the process at once, as a crash or a pulled cable would: no
// answer to anything pending.
func (bp *brokerProcess) kill() {
	if bp.cmd != nil && bp.cmd.Process != nil {
		bp.cmd.Process.Kill()
		bp.cmd.Wait()
		bp.cmd = nil
	}
}

// TestFederatedPeerDown: with B gone, A answers 503 peer-unavailable
// within 2 seconds, for a request pending when B went and for new ones;
// once B is back, A reaches B's people again by itself.
func TestFederatedPeerDown(t *testing.T) {
	t.Parallel()
	a := startFederatingBroker(t, "a.test")
	b := startBrokerProcess(t, "b.test")
	_, bID := peerWith(t, a, b.testBroker, true, true)
	approver := b.unstartedPerson("19700707-0001", "FI", notifytest.Always(notify.Approve))
	approver.Start()
	silent := b.person("19700707-0002", "FI", nil)
	a.awaitReferences(bID, 2)
	if o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19700707-0001", COUNTRY: "FI", Timeout: 30, Reason: "Before"}, "application/json"); o.code != "approved" {
		t.Fatalf("before: %d %s (%s)", o.status, o.code, o.message)
	}

	pending := make(chan outcome, 1)
	go func() {
		pending <- a.postMFA(context.Background(), "xml", mfaBody{PNR: "19700707-0002", COUNTRY: "FI", Timeout: 60, Reason: "In flight"}, "application/json")
	}()
	silent.NextPrompt()
	killed := time.Now()
	b.kill()
	o := <-pending
	if took := time.Since(killed); o.status != http.StatusServiceUnavailable || o.code != "peer-unavailable" || took > 2*time.Second {
		t.Fatalf("in flight when B died: %d %s (%s) after %v, want 503 peer-unavailable within 2s", o.status, o.code, o.message, took)
	} else {
		t.Logf("pending request answered %v after B was killed", took)
	}
	start := time.Now()
	o = a.postMFA(context.Background(), "form", mfaBody{PNR: "19700707-0001", COUNTRY: "FI", Timeout: 30, Reason: "While down"}, "text/plain")
	if took := time.Since(start); o.status != http.StatusServiceUnavailable || o.code != "peer-unavailable" || took > 2*time.Second {
		t.Fatalf("B down: %d %s (%s) after %v, want 503 peer-unavailable within 2s", o.status, o.code, o.message, took)
	}

	b.start()
	back := time.Now()
	again := b.deviceFor(approver.LegalID, approver.Key, notifytest.Always(notify.Approve))
	again.Start()
	poll.For(t, 30*time.Second, func() error {
		if p, ok := a.peer(bID); !ok || !p.LinkUp {
			return fmt.Errorf("link down")
		}
		return nil
	})
	o = a.postMFA(context.Background(), "json", mfaBody{PNR: "19700707-0001", COUNTRY: "FI", Timeout: 30, Reason: "After"}, "application/json")
	if o.code != "approved" {
		t.Fatalf("after B came back: %d %s (%s)", o.status, o.code, o.message)
	}
	t.Logf("B back and serving A's requests %v after its restart", time.Since(back))

	// And B's changes reach A again: the mirror of B's references was
	// made anew, and is followed.
	if out, err := b.operator("identity", "obsolete", approver.LegalID); err != nil {
		t.Fatalf("obsolete: %v: %s", err, out)
	}
	took := poll.For(t, 10*time.Second, func() error {
		o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19700707-0001", COUNTRY: "FI", Timeout: 5, Reason: "Obsoleted"}, "application/json")
		if o.code != "unknown-person" || a.askedDevices(o.requestID) != 0 {
			return fmt.Errorf("%d %s", o.status, o.code)
		}
		return nil
	})
	t.Logf("a change at B reached A %v after it was made, %v after B's restart", took, time.Since(back))
}

// TestFederatedAskerDown: when the broker that asked goes away, the home
// broker withdraws the prompt: nobody is left to hear the answer.
func TestFederatedAskerDown(t *testing.T) {
	t.Parallel()
	a := startBrokerProcess(t, "a.test")
	b := startFederatingBroker(t, "b.test")
	_, bID := peerWith(t, a.testBroker, b, true, true)
	silent := b.person("19710101-0001", "IS", nil)
	a.awaitReferences(bID, 1)
	go func() {
		ct, body := mfaBody{PNR: "19710101-0001", COUNTRY: "IS", Timeout: 60, Reason: "Asker dies"}.encode("json")
		if resp, err := http.Post(a.url("/MFA"), ct, strings.NewReader(body)); err == nil {
			resp.Body.Close()
		}
	}()
	p := silent.NextPrompt()
	if p.Push.Requester.Via != "a.test" {
		t.Fatalf("prompt %+v", p.Push.Requester)
	}
	a.kill()
	took := poll.Within(t, 5*time.Second, "withdrawal at B after A died", func() bool { return len(silent.WithdrawalsFor(p.Push.RequestID)) == 1 })
	t.Logf("prompt withdrawn %v after the asking broker died", took)
	poll.Until(t, "nothing pending at B", func() bool { return b.srv.Pending() == 0 })
}

// askedDevices is how many devices the broker's log says it asked for a
// request: identities of its own and its peers'.
func (tb *testBroker) askedDevices(requestID string) int {
	tb.t.Helper()
	for _, line := range strings.Split(tb.logs.String(), "\n") {
		var e struct {
			Msg, Request string
			Devices      *int
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "http" && e.Request == requestID && e.Devices != nil {
			return *e.Devices
		}
	}
	tb.t.Fatalf("no access log line for request %s", requestID)
	return 0
}

// TestFederatedRevocation: what B decides reaches A within 5 seconds: an
// identity obsoleted or compromised, sharing stopped; and what A decides
// takes effect at once.
func TestFederatedRevocation(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	a, b := f.a, f.b
	var people []*notifytest.Device
	for i := range 3 {
		people = append(people, f.personAtB(fmt.Sprintf("19600606-000%d", i), "DE", notifytest.Always(notify.Approve)))
	}
	ask := func(i int) outcome {
		return a.postMFA(context.Background(), "json", mfaBody{PNR: fmt.Sprintf("19600606-000%d", i), COUNTRY: "DE", Timeout: 10, Reason: "Still there?"}, "application/json")
	}
	for i := range people {
		if o := ask(i); o.code != "approved" {
			t.Fatalf("person %d before: %d %s (%s)", i, o.status, o.code, o.message)
		}
	}
	// A answers from its copy of B's references: 404 without asking B.
	gone := func(i int) func() error {
		return func() error {
			o := ask(i)
			if o.status != http.StatusNotFound || o.code != "unknown-person" {
				return fmt.Errorf("%d %s (%s)", o.status, o.code, o.message)
			}
			if n := a.askedDevices(o.requestID); n != 0 {
				return fmt.Errorf("404, but A still asked %d devices", n)
			}
			return nil
		}
	}
	for i, verb := range []string{"obsolete", "compromise"} {
		if out, err := b.operator("identity", verb, people[i].LegalID); err != nil {
			t.Fatalf("%s: %v: %s", verb, err, out)
		}
		t.Logf("%s at B reached A in %v", verb, poll.For(t, 5*time.Second, gone(i)))
	}
	if o := ask(2); o.code != "approved" {
		t.Fatalf("the third person: %d %s (%s)", o.status, o.code, o.message)
	}
	b.peerCommand("unshare", f.aID)
	t.Logf("unshare at B reached A in %v", poll.For(t, 5*time.Second, gone(2)))
	if p, _ := a.peer(f.bID); p.References != 0 || !p.LinkUp {
		t.Fatalf("after unshare A has %d references from B, link up %v", p.References, p.LinkUp)
	}

	// Sharing again brings the references back; B still asks A's people.
	b.peerCommand("share", f.aID)
	a.awaitReferences(f.bID, 3)
	if o := ask(2); o.code != "approved" {
		t.Fatalf("shared again: %d %s (%s)", o.status, o.code, o.message)
	}

	// B withdraws its approval: the link ends on both sides.
	b.peerCommand("withdraw", f.aID)
	took := poll.For(t, 5*time.Second, func() error {
		pa, _ := b.peer(f.aID)
		pb, _ := a.peer(f.bID)
		if pa.LinkUp || pb.LinkUp {
			return fmt.Errorf("link up at B %v, at A %v", pa.LinkUp, pb.LinkUp)
		}
		return nil
	})
	t.Logf("withdrawal at B ended the link in %v", took)
	if o := ask(2); o.status != http.StatusServiceUnavailable || o.code != "peer-unavailable" {
		t.Fatalf("B withdrew: %d %s (%s), want 503 peer-unavailable", o.status, o.code, o.message)
	}
	// A removes B: its references go with it.
	if out, err := a.operator("peer", "remove", f.bID); err != nil {
		t.Fatalf("remove: %v: %s", err, out)
	}
	poll.For(t, 5*time.Second, gone(2))
	if _, ok := a.peer(f.bID); ok {
		t.Fatal("B still listed at A")
	}
}

// federationConn connects, with the broker's own credentials, into the
// account its NATS server keeps for a peer: where the peer's link arrives.
func (tb *testBroker) federationConn(peerID string) *nats.Conn {
	tb.t.Helper()
	nc, err := nats.Connect(tb.info.NATSURL, tb.credentials().FederationConnectOptions(peerID)...)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(nc.Close)
	return nc
}

// TestFederationIsolation: a link carries federation subjects only. A
// broker peered with A but not with B never learns B's references, and
// cannot reach B's people through A; A's credentials open nothing on B's
// NATS; and from A's end of the link, B's devices and JetStream are out of
// reach.
func TestFederationIsolation(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	a, b := f.a, f.b
	c := startFederatingBroker(t, "c.test")
	_, cID := peerWith(t, a, c, true, true)
	atB := f.personAtB("19550505-0001", "PL", notifytest.Always(notify.Approve))
	atA := a.person("19550505-0002", "PL", notifytest.Always(notify.Approve))
	c.awaitReferences(f.aID, 1)

	// C reaches A's person, never B's, and holds nothing of B's.
	if o := c.postMFA(context.Background(), "json", mfaBody{PNR: "19550505-0002", COUNTRY: "PL", Timeout: 10, Reason: "C to A"}, "application/json"); o.code != "approved" || o.evidence["LegalId"] != atA.LegalID {
		t.Fatalf("C asking A's person: %d %s (%s)", o.status, o.code, o.message)
	}
	if o := c.postMFA(context.Background(), "json", mfaBody{PNR: "19550505-0001", COUNTRY: "PL", Timeout: 10, Reason: "C to B"}, "application/json"); o.status != http.StatusNotFound || o.code != "unknown-person" {
		t.Fatalf("C asking B's person: %d %s (%s), want 404 unknown-person", o.status, o.code, o.message)
	}
	if ps := c.peers(); len(ps) != 1 || ps[0].ID != f.aID || ps[0].References != 1 {
		t.Fatalf("C's peers: %+v", ps)
	}
	if _, ok := b.peer(cID); ok {
		t.Fatal("B knows C")
	}

	// A's credentials on B's NATS: the broker's, and the one A uses in
	// its own account for B, are both refused.
	aCreds := a.credentials()
	for name, opts := range map[string][]nats.Option{
		"broker":                          aCreds.ConnectOptions(),
		"federation":                      aCreds.FederationConnectOptions(f.bID),
		"federation for A's account at B": aCreds.FederationConnectOptions(f.aID),
	} {
		if nc, err := nats.Connect(b.info.NATSURL, append(opts, nats.MaxReconnects(0))...); err == nil {
			nc.Close()
			t.Errorf("A's %s credentials connected to B's NATS", name)
		}
	}

	// From A's end of the link: B's JetStream shows only the buckets of
	// A's account there, and nothing published reaches B's devices.
	link := a.federationConn(f.bID)
	js, err := jetstream.NewWithDomain(link, f.bID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if names.Err() != nil {
		t.Fatal(names.Err())
	}
	for _, n := range streams {
		if n != "KV_"+federation.ShareBucket && n != "KV_"+federation.RefsBucket {
			t.Errorf("A sees stream %s in B's JetStream", n)
		}
	}
	if len(streams) == 0 {
		t.Error("A sees no stream in B's JetStream: the check proves nothing")
	}
	if _, err := js.Stream(ctx, "MFA_ORDERS"); err == nil {
		t.Error("A reached B's orders")
	}
	var leaked atomic.Int32
	if _, err := link.Subscribe(">", func(m *nats.Msg) {
		forgedHere := strings.Contains(string(m.Data), "Forged through the link") // its own publish, echoed
		if (strings.HasPrefix(m.Subject, "mfa.push.") || strings.HasPrefix(m.Subject, "mfa.answer.")) && !forgedHere {
			leaked.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	forged := notify.Push{RequestID: notify.NewRequestID(), LegalID: atB.LegalID, Reason: "Forged through the link"}
	body, _ := json.Marshal(forged)
	deviceID := identity.DeviceIDOf(atB.Key.Public().(ed25519.PublicKey))
	if err := link.Publish(notify.PushSubject(deviceID), body); err != nil {
		t.Fatal(err)
	}
	link.Flush()
	// B's own request is the next prompt the device shows, and its push
	// was not seen from the link.
	b.barrier(atB, "19550505-0001", "PL")
	link.Flush()
	if n := leaked.Load(); n != 0 {
		t.Errorf("%d pushes or answers of B's seen from A's end of the link", n)
	}
}

// TestFederationKeepsNumbersHome captures every message on both ends of
// the A–B link while references are shared and requests for a known
// number are asked, approved, denied and timed out: the number is in none
// of them, nor in either broker's log.
func TestFederationKeepsNumbersHome(t *testing.T) {
	t.Parallel()
	const pnr, country = "19501212-9876", "SE"
	a := startFederatingBroker(t, "a.test")
	b := startFederatingBroker(t, "b.test")
	// The spies listen before anything is shared: the first references
	// are captured too.
	aID, bID := peerWith(t, a, b, false, false)
	var captured syncbuf.Buffer
	for _, spy := range []*nats.Conn{a.federationConn(bID), b.federationConn(aID)} {
		if _, err := spy.Subscribe(">", func(m *nats.Msg) {
			fmt.Fprintf(&captured, "%s %s %s %v\n", m.Subject, m.Reply, m.Data, m.Header)
		}); err != nil {
			t.Fatal(err)
		}
		spy.Flush()
	}
	a.peerCommand("share", bID)
	b.peerCommand("share", aID)
	d := b.person(pnr, country, func(p notify.Prompt) (notify.Decision, bool) {
		switch p.Push.Reason {
		case "Approve":
			return notify.Approve, true
		case "Deny":
			return notify.Deny, true
		}
		return "", false
	})
	a.awaitReferences(bID, 1)
	for _, tc := range []struct{ reason, code string }{{"Approve", "approved"}, {"Deny", "denied"}, {"Wait", "timeout"}} {
		for _, enc := range allEncodings {
			o := a.postMFA(context.Background(), enc, mfaBody{PNR: pnr, COUNTRY: country, Timeout: 1, Reason: tc.reason}, "application/json")
			if o.code != tc.code {
				t.Fatalf("%s/%s: %d %s (%s)", tc.reason, enc, o.status, o.code, o.message)
			}
			d.NextPrompt()
		}
	}
	// The barrier: a last message every spy must have seen, so that all
	// before it were captured.
	for _, spy := range []*nats.Conn{a.federationConn(bID)} {
		spy.Publish("mfa.fed.barrier", []byte("end"))
		spy.Flush()
	}
	poll.Until(t, "the barrier captured on both ends", func() bool {
		return strings.Count(captured.String(), "mfa.fed.barrier") == 2
	})
	all := captured.String()
	for _, want := range []string{"mfa.fed.ask." + bID, d.LegalID} {
		if !strings.Contains(all, want) {
			t.Fatalf("the capture lacks %q: it proves nothing\n%s", want, all)
		}
	}
	digits := strings.ReplaceAll(pnr, "-", "")
	for name, text := range map[string]string{"the link": all, "A's log": a.logs.String(), "B's log": b.logs.String()} {
		for _, form := range []string{pnr, digits, digits[2:], base64.StdEncoding.EncodeToString([]byte(pnr))} {
			if strings.Contains(text, form) {
				t.Errorf("%s holds the personal number as %q", name, form)
			}
		}
	}
}

// TestPeeringTakesBothOperators: nothing flows until both operators have
// approved each other, a broker that is not MFA-capable is refused, and
// a broker cannot peer with itself.
func TestPeeringTakesBothOperators(t *testing.T) {
	t.Parallel()
	a := startFederatingBroker(t, "a.test")
	b := startFederatingBroker(t, "b.test")
	plain := startBroker(t) // does not federate
	notMFA := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notMFA.Close)
	for _, tc := range []struct{ url, want string }{
		{notMFA.URL, "MFA"},
		{plain.url(""), "does not federate"},
		{a.url(""), "itself"},
	} {
		out, err := a.operator("peer", "add", tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("peer add %s: %v: %q, want an error saying %q", tc.url, err, out, tc.want)
		}
	}
	if ps := a.peers(); len(ps) != 0 {
		t.Fatalf("refused peers kept: %+v", ps)
	}

	b.person("19900909-0001", "SE", notifytest.Always(notify.Approve))
	pb := a.peerCommand("add", b.url(""))
	pa := b.peerCommand("add", a.url(""))
	// What B's operator reads out from their own list is what A's
	// operator was shown when adding B.
	if out, err := b.operator("peer", "list"); err != nil || !strings.Contains(out, "fingerprint "+pb.Fingerprint+"\n") || !strings.Contains(out, "this broker "+pb.ID) {
		t.Fatalf("B's peer list does not show B's fingerprint %s: %v\n%s", pb.Fingerprint, err, out)
	}
	a.peerCommand("approve", pb.ID)
	a.peerCommand("share", pb.ID)
	if out, err := b.operator("peer", "share", pa.ID); err == nil || !strings.Contains(err.Error(), "approve") {
		t.Fatalf("sharing with a peer not approved: %v: %s", err, out)
	}
	o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19900909-0001", COUNTRY: "SE", Timeout: 5, Reason: "Too early"}, "application/json")
	if o.status != http.StatusNotFound || o.code != "unknown-person" {
		t.Fatalf("before B approved: %d %s (%s), want 404", o.status, o.code, o.message)
	}
	if p, _ := a.peer(pb.ID); p.LinkUp || p.References != 0 {
		t.Fatalf("before B approved, A's view of B: %+v", p)
	}
	b.peerCommand("approve", pa.ID)
	b.peerCommand("share", pa.ID)
	a.awaitReferences(pb.ID, 1)
	if o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19900909-0001", COUNTRY: "SE", Timeout: 5, Reason: "Now"}, "application/json"); o.code != "approved" {
		t.Fatalf("after both approved: %d %s (%s)", o.status, o.code, o.message)
	}
	if out, err := plain.operator("peer", "list"); err == nil || !strings.Contains(err.Error(), "does not federate") {
		t.Errorf("peer list on a broker that does not federate: %v: %q", err, out)
	}
}

// TestFederationRefusesForgeries sends B, from A's end of the link, a
// genuine ask captured there and replayed, and copies altered after
// signing: none pushes anything. A peer's requests are limited by a budget
// of its own.
func TestFederationRefusesForgeries(t *testing.T) {
	t.Parallel()
	a := startFederatingBroker(t, "a.test")
	b := startFederatingBroker(t, "b.test", func(c *config) { c.CallerRate = broker.Rate{Events: 3, Per: time.Hour} })
	_, bID := peerWith(t, a, b, true, true)
	d := b.person("19660606-0001", "EE", notifytest.Always(notify.Approve))
	a.awaitReferences(bID, 1)
	link := a.federationConn(bID)
	asks := make(chan []byte, 8)
	if _, err := link.Subscribe("mfa.fed.ask."+bID, func(m *nats.Msg) { asks <- m.Data }); err != nil {
		t.Fatal(err)
	}
	link.Flush()
	ask := func(reason string) outcome {
		return a.postMFA(context.Background(), "json", mfaBody{PNR: "19660606-0001", COUNTRY: "EE", Timeout: 30, Reason: reason}, "application/json")
	}
	if o := ask("Genuine"); o.code != "approved" {
		t.Fatalf("genuine: %d %s (%s)", o.status, o.code, o.message)
	}
	d.NextPrompt()
	genuine := <-asks

	alter := func(field string, value any) []byte {
		var m map[string]any
		if err := json.Unmarshal(genuine, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		out, _ := json.Marshal(m)
		return out
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"replayed", genuine},
		{"another Reason", alter("Reason", "Transfer everything")},
		{"another identity", alter("LegalId", "someone-else@legal.b.test")},
		{"re-targeted", alter("To", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")},
		{"from another broker", alter("From", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")},
		{"later expiry", alter("Expires", time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))},
		{"unsigned", alter("Signature", nil)},
		{"not JSON", []byte("<Ask/>")},
	} {
		m, err := link.Request("mfa.fed.ask."+bID, tc.body, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var reply federation.AskReply
		if err := json.Unmarshal(m.Data, &reply); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, m.Data)
		}
		if reply.Code == "approved" || reply.Decision != "" || len(reply.SignedData) != 0 {
			t.Errorf("%s: B answered %+v", tc.name, reply)
		}
	}
	// Nothing was pushed for any of them: B's own next request is the
	// device's next prompt.
	b.barrier(d, "19660606-0001", "EE")

	// The peer's budget: three requests an hour, one used.
	for i := range 2 {
		if o := ask(fmt.Sprintf("Within budget %d", i)); o.code != "approved" {
			t.Fatalf("within budget: %d %s (%s)", o.status, o.code, o.message)
		}
		d.NextPrompt()
	}
	if o := ask("Over budget"); o.status != http.StatusTooManyRequests || o.code != "rate-limited" {
		t.Fatalf("over the peer's budget: %d %s (%s), want 429 rate-limited", o.status, o.code, o.message)
	}
}

// TestFederationOnMongoDB: brokers keeping their identities in MongoDB
// share them, and are asked across, as the embedded store's are.
func TestFederationOnMongoDB(t *testing.T) {
	t.Parallel()
	onMongo := func(c *config) { c.MongoDBURI = mongotest.Start(t); c.MongoDBTimeout = 30 * time.Second }
	a := startFederatingBroker(t, "a.test", onMongo)
	b := startFederatingBroker(t, "b.test", onMongo)
	aID, bID := peerWith(t, a, b, true, true)
	atB := b.person("19770707-0001", "SE", notifytest.Always(notify.Approve))
	atA := a.person("19770707-0002", "SE", notifytest.Always(notify.Approve))
	a.awaitReferences(bID, 1)
	b.awaitReferences(aID, 1)
	if o := a.postMFA(context.Background(), "xml", mfaBody{PNR: "19770707-0001", COUNTRY: "SE", Timeout: 30, Reason: "A to B"}, ""); o.code != "approved" {
		t.Fatalf("A to B: %d %s (%s)", o.status, o.code, o.message)
	} else {
		verifyEvidence(t, b, o, atB, "A to B", notify.Approve)
	}
	if o := b.postMFA(context.Background(), "json", mfaBody{PNR: "19770707-0002", COUNTRY: "SE", Timeout: 30, Reason: "B to A"}, ""); o.code != "approved" {
		t.Fatalf("B to A: %d %s (%s)", o.status, o.code, o.message)
	} else {
		verifyEvidence(t, a, o, atA, "B to A", notify.Approve)
	}
	for _, tb := range []*testBroker{a, b} {
		if !strings.Contains(tb.logs.String(), `"store":"mongodb"`) {
			t.Fatal("a broker does not run on MongoDB")
		}
	}
}

// TestFederationIgnoresForgedReferences writes into B's share bucket, as
// only B may, references that B did not sign: one signed by another key,
// one that names another home. A ignores both and logs it; the genuine
// reference written after them is the only one A takes.
func TestFederationIgnoresForgedReferences(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	a, b := f.a, f.b
	f.personAtB("19880808-0001", "SE", notifytest.Always(notify.Approve))
	js, err := jetstream.New(b.federationConn(f.aID))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	share, err := js.KeyValue(ctx, federation.ShareBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := share.Get(ctx, "lookup-key")
	if err != nil {
		t.Fatal(err)
	}
	lookup, err := base64.StdEncoding.DecodeString(string(entry.Value()))
	if err != nil {
		t.Fatal(err)
	}
	forger, _ := identity.GenerateKey()
	deviceKey, _ := identity.GenerateKey()
	now := time.Now()
	forgedIdentity := identity.Identity{
		ID: "forged@legal.b.test", State: identity.Approved, PublicKey: deviceKey.Public().(ed25519.PublicKey),
		Properties: []identity.Property{{Name: "PNR", Value: "19880808-0002"}, {Name: "COUNTRY", Value: "SE"}},
		From:       now.Add(-time.Hour), To: now.Add(time.Hour), Version: 1,
	}
	forged, _ := federation.NewReference(forgedIdentity, forger, federation.LookupKey(lookup))
	forgedIdentity.ID = "other-home@legal.b.test"
	otherHome, _ := federation.NewReference(forgedIdentity, forger, federation.LookupKey(lookup))
	otherHome.Home = f.aID // names A as its home, though it came from B
	for _, ref := range []federation.Reference{forged, otherHome} {
		key := "r." + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(ref.LegalID))
		if _, err := share.Put(ctx, key, ref.Encode()); err != nil {
			t.Fatal(err)
		}
	}
	f.personAtB("19880808-0003", "SE", notifytest.Always(notify.Approve)) // waits for 2 references
	if p, _ := a.peer(f.bID); p.References != 2 {
		t.Fatalf("A holds %d references from B, want the 2 genuine ones", p.References)
	}
	if n := strings.Count(a.logs.String(), "a reference from the peer ignored"); n != 2 {
		t.Fatalf("A logged %d ignored references, want 2", n)
	}
	if o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19880808-0002", COUNTRY: "SE", Timeout: 5, Reason: "Forged"}, "application/json"); o.code != "unknown-person" {
		t.Fatalf("the forged identity's number: %d %s (%s), want 404", o.status, o.code, o.message)
	}
}

// externalNATS is a nats-server of the operator's, configured from what
// nats-config prints for a broker, as a file it can be reloaded from.
type externalNATS struct {
	t       *testing.T
	srv     *natsserver.Server
	file    string
	head    string // listen and JetStream, the operator's own part
	dataDir string
}

func startExternalNATS(t *testing.T, dataDir, leafListen string) *externalNATS {
	t.Helper()
	x := &externalNATS{t: t, file: filepath.Join(t.TempDir(), "nats.conf"), dataDir: dataDir}
	x.writeConfig(leafListen) // creates the broker key, and so the domain
	key, err := identity.ReadKeyFile(filepath.Join(dataDir, "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	x.head = fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q, domain: %s }\n",
		filepath.Join(t.TempDir(), "js"), api.PeerID(key.Public().(ed25519.PublicKey)))
	x.writeConfig(leafListen)
	opts, err := natsserver.ProcessConfigFile(x.file)
	if err != nil {
		b, _ := os.ReadFile(x.file)
		t.Fatalf("the configuration does not load: %v\n%s", err, b)
	}
	opts.NoLog, opts.NoSigs = true, true
	if x.srv, err = natsserver.NewServer(opts); err != nil {
		t.Fatal(err)
	}
	go x.srv.Start()
	if !x.srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the configured NATS server did not start")
	}
	t.Cleanup(func() { x.srv.Shutdown(); x.srv.WaitForShutdown() })
	return x
}

// writeConfig writes what nats-config prints now, after the operator's
// own part.
func (x *externalNATS) writeConfig(leafListen string) {
	x.t.Helper()
	var conf bytes.Buffer
	if err := run(context.Background(), []string{"nats-config", "--data-dir", x.dataDir, "--federation-listen", leafListen}, &conf, &conf, func(string) string { return "" }); err != nil {
		x.t.Fatalf("nats-config: %v\n%s", err, conf.String())
	}
	if err := os.WriteFile(x.file, []byte(x.head+conf.String()), 0o600); err != nil {
		x.t.Fatal(err)
	}
}

// reconfigure prints the configuration anew and reloads the server, as
// the operator does after deciding about a peer.
func (x *externalNATS) reconfigure(leafListen string) {
	x.t.Helper()
	x.writeConfig(leafListen)
	if err := x.srv.Reload(); err != nil {
		b, _ := os.ReadFile(x.file)
		x.t.Fatalf("reload: %v\n%s", err, b)
	}
}

// TestFederationOnExternalNATS: brokers on NATS servers of their own,
// configured with nats-config, federate once their operators have put the
// peers in the servers' configuration; a second replica of a broker,
// sharing its key and servers, asks the peer's people from the same
// references.
func TestFederationOnExternalNATS(t *testing.T) {
	t.Parallel()
	type side struct {
		nats    *externalNATS
		leaf    string
		dataDir string
	}
	sides := map[string]*side{}
	for _, name := range []string{"a", "b"} {
		s := &side{leaf: freeAddr(t), dataDir: filepath.Join(t.TempDir(), "data")}
		s.nats = startExternalNATS(t, s.dataDir, s.leaf)
		sides[name] = s
	}
	onExternal := func(s *side, dataDir string) func(*config) {
		return func(c *config) {
			url := s.nats.srv.ClientURL()
			c.DataDir, c.NATSURL, c.NATSDeviceURL = dataDir, url, url
			c.BrokerKeyFile = filepath.Join(s.dataDir, "broker.key")
			c.FederationURL = "nats-leaf://" + s.leaf
			c.NATSListen = "127.0.0.1:1" // must not be used
		}
	}
	a := startBroker(t, func(c *config) { c.Domain = "a.test" }, onExternal(sides["a"], sides["a"].dataDir))
	b := startBroker(t, func(c *config) { c.Domain = "b.test" }, onExternal(sides["b"], sides["b"].dataDir))
	if a.srv.EmbeddedNATS() || b.srv.EmbeddedNATS() {
		t.Fatal("an embedded NATS server was started despite --nats-url")
	}
	pb := a.peerCommand("add", b.url(""))
	pa := b.peerCommand("add", a.url(""))
	if pb.LeafURL != "nats-leaf://"+sides["b"].leaf {
		t.Fatalf("B's federation document gives leaf URL %q", pb.LeafURL)
	}
	a.peerCommand("approve", pb.ID)
	b.peerCommand("approve", pa.ID)
	a.peerCommand("share", pb.ID)
	b.peerCommand("share", pa.ID)
	for _, s := range sides {
		s.nats.reconfigure(s.leaf)
	}
	d := b.person("19740404-0001", "SE", notifytest.Always(notify.Approve))
	poll.For(t, 30*time.Second, func() error {
		if p, ok := a.peer(pb.ID); !ok || !p.LinkUp || p.References != 1 {
			return fmt.Errorf("A's view of B: %+v", p)
		}
		return nil
	})
	o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19740404-0001", COUNTRY: "SE", Timeout: 30, Reason: "Across external NATS"}, "application/json")
	if o.code != "approved" {
		t.Fatalf("A to B: %d %s (%s)", o.status, o.code, o.message)
	}
	verifyEvidence(t, b, o, d, "Across external NATS", notify.Approve)
	if p := d.NextPrompt(); p.Push.Requester.Via != "a.test" {
		t.Fatalf("the device at B was shown %+v", p.Push.Requester)
	}

	// A second replica of A: same key and servers, a data directory of
	// its own. It knows B as a peer, and finds B's person, at once.
	a2 := startBroker(t, func(c *config) { c.Domain = "a.test" }, onExternal(sides["a"], filepath.Join(t.TempDir(), "replica")))
	poll.For(t, 30*time.Second, func() error {
		if p, ok := a2.peer(pb.ID); !ok || !p.LinkUp || p.References != 1 {
			return fmt.Errorf("the replica's view of B: %+v", p)
		}
		return nil
	})
	o = a2.postMFA(context.Background(), "xml", mfaBody{PNR: "19740404-0001", COUNTRY: "SE", Timeout: 30, Reason: "From the replica"}, "application/json")
	if o.code != "approved" {
		t.Fatalf("replica of A to B: %d %s (%s)", o.status, o.code, o.message)
	}
	d.NextPrompt()

	// Removing the peer: the link's buckets go, and the configuration
	// printed next has no account for it.
	a.operator("peer", "remove", pb.ID)
	poll.For(t, 10*time.Second, func() error {
		if o := a.postMFA(context.Background(), "json", mfaBody{PNR: "19740404-0001", COUNTRY: "SE", Timeout: 5, Reason: "Removed"}, "application/json"); o.code != "unknown-person" {
			return fmt.Errorf("after removal: %d %s", o.status, o.code)
		}
		return nil
	})
	var conf bytes.Buffer
	if err := run(context.Background(), []string{"nats-config", "--data-dir", sides["a"].dataDir, "--federation-listen", sides["a"].leaf}, &conf, &conf, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(conf.String(), bus.FederationAccount(pb.ID)) {
		t.Fatalf("nats-config still configures the removed peer:\n%s", conf.String())
	}
}
