package notify_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
)

// rig is the broker's real message bus (embedded nats-server, callout,
// identity store), a broker-side Pusher, and a way to make devices, all on
// random ports.
type rig struct {
	*bustest.Bus
	t      *testing.T
	url    string
	pusher *notify.Pusher
}

// newRig starts the bus and a pusher on the broker's connection, which is
// made with NoEcho as the broker's is: the pusher must not rely on hearing
// its own announcements.
func newRig(t *testing.T) *rig {
	t.Helper()
	b := bustest.Start(t)
	p, err := notify.NewPusher(context.Background(), b.Conn, b.Key, "broker.test", notify.WithLogger(bustest.Quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return &rig{Bus: b, t: t, url: b.URL, pusher: p}
}

// deviceConn connects with a device key's credentials.
func (r *rig) deviceConn(key ed25519.PrivateKey, extra ...nats.Option) (*nats.Conn, error) {
	return bustest.DeviceConn(r.url, key, extra...)
}

type testDevice struct {
	*notify.Device
	target notify.Target
	key    ed25519.PrivateKey
	conn   *nats.Conn
}

// device makes an approved identity with a fresh key and a device for it,
// connected with its own credentials but not yet started.
func (r *rig) device(legalID string) *testDevice {
	r.t.Helper()
	return r.deviceAt(legalID, r.url)
}

// deviceAt is device connecting to url, with extra connection options.
func (r *rig) deviceAt(legalID, url string, extra ...nats.Option) *testDevice {
	r.t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		r.t.Fatal(err)
	}
	r.Identity(legalID, key, identity.Approved)
	nc, err := bustest.DeviceConn(url, key, extra...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	d, err := notify.NewDevice(nc, notify.DeviceConfig{
		LegalID: legalID, Key: key, BrokerKey: r.pusher.PublicKey(), Logger: bustest.Quiet(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { d.Close() })
	return &testDevice{Device: d, key: key, conn: nc, target: notify.Target{LegalID: legalID, PublicKey: key.Public().(ed25519.PublicKey)}}
}

func (r *rig) startedDevice(legalID string) *testDevice {
	d := r.device(legalID)
	if err := d.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return d
}

func question(timeout time.Duration, targets ...*testDevice) notify.Question {
	q := notify.Question{
		RequestID: notify.NewRequestID(),
		Reason:    "Log in to **Example Bank**",
		Requester: notify.Requester{RemoteIP: "192.0.2.7"},
		Expires:   time.Now().Add(timeout),
	}
	for _, d := range targets {
		q.Targets = append(q.Targets, d.target)
	}
	return q
}

type askResult struct {
	out notify.Outcome
	err error
}

func (r *rig) ask(ctx context.Context, q notify.Question) <-chan askResult {
	ch := make(chan askResult, 1)
	go func() {
		out, err := r.pusher.Ask(ctx, q)
		ch <- askResult{out, err}
	}()
	return ch
}

func nextEvent(t *testing.T, d *testDevice) notify.Event {
	t.Helper()
	select {
	case e, ok := <-d.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return notify.Event{}
}

func nextPrompt(t *testing.T, d *testDevice) notify.Prompt {
	t.Helper()
	e := nextEvent(t, d)
	if e.Prompt == nil {
		t.Fatalf("want a prompt, got withdrawal %+v", e.Withdrawal)
	}
	return *e.Prompt
}

func nextWithdrawal(t *testing.T, d *testDevice) notify.Withdrawal {
	t.Helper()
	e := nextEvent(t, d)
	if e.Withdrawal == nil {
		t.Fatalf("want a withdrawal, got prompt %+v", e.Prompt.Push)
	}
	return *e.Withdrawal
}

func result(t *testing.T, ch <-chan askResult) askResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Ask did not return within 10 s")
	}
	return askResult{}
}

func TestDecisionsReachTheBroker(t *testing.T) {
	t.Parallel()
	for _, decision := range []notify.Decision{notify.Approve, notify.Deny, notify.NotMe} {
		t.Run(string(decision), func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			d := r.startedDevice("alice@legal.broker.test")
			q := question(time.Minute, d)
			ch := r.ask(context.Background(), q)
			p := nextPrompt(t, d)
			if p.Push.RequestID != q.RequestID || p.Push.Reason != q.Reason || p.Push.Requester.RemoteIP != "192.0.2.7" {
				t.Fatalf("push does not carry the question: %+v", p.Push)
			}
			if err := d.Answer(context.Background(), p, decision); err != nil {
				t.Fatal(err)
			}
			res := result(t, ch)
			if res.err != nil || res.out.Decision != decision {
				t.Fatalf("Ask = %+v, %v; want %s", res.out, res.err, decision)
			}
			// The evidence verifies with nothing but the device's public key.
			if err := identity.Verify(d.target.PublicKey, res.out.SignedData, res.out.Signature); err != nil {
				t.Fatalf("evidence does not verify: %v", err)
			}
			_, fields, err := identity.ParseSignedForm(res.out.SignedData)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range fields {
				got[f.Name] = f.Value
			}
			if got["RequestId"] != q.RequestID || got["Decision"] != string(decision) || got["LegalId"] != d.target.LegalID {
				t.Fatalf("signed data names %v", got)
			}
			// The receipt told the device; no withdrawal follows.
			noEvent(t, d)
		})
	}
}

// Waited is the part of Ask spent on the person and the device: at least
// the device's pause before answering, and never more than Ask took.
func TestWaitedCoversTheDevice(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.startedDevice("alice@legal.broker.test")
	asked := time.Now()
	ch := r.ask(context.Background(), question(time.Minute, d))
	p := nextPrompt(t, d)
	const think = 30 * time.Millisecond
	time.Sleep(think)
	if err := d.Answer(context.Background(), p, notify.Approve); err != nil {
		t.Fatal(err)
	}
	res := result(t, ch)
	took := time.Since(asked)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.out.Waited < think || res.out.Waited > took {
		t.Fatalf("Waited = %s; want between the device's %s and Ask's %s", res.out.Waited, think, took)
	}
}

func TestTimeoutWithdraws(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.startedDevice("bob@legal.broker.test")
	q := question(300*time.Millisecond, d)
	ch := r.ask(context.Background(), q)
	p := nextPrompt(t, d)
	if res := result(t, ch); !errors.Is(res.err, notify.ErrExpired) {
		t.Fatalf("Ask error = %v, want ErrExpired", res.err)
	}
	if w := nextWithdrawal(t, d); w.Why != notify.WhyTimeout {
		t.Fatalf("withdrawal %+v", w)
	}
	// An answer after expiry changes nothing and is refused.
	if err := d.Answer(context.Background(), p, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("late answer: %v, want ErrRefused", err)
	}
}

func TestCallerGoneWithdraws(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.startedDevice("carol@legal.broker.test")
	ctx, cancel := context.WithCancel(context.Background())
	ch := r.ask(ctx, question(time.Minute, d))
	nextPrompt(t, d)
	cancel()
	if res := result(t, ch); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("Ask error = %v, want context.Canceled", res.err)
	}
	if w := nextWithdrawal(t, d); w.Why != notify.WhyCancelled {
		t.Fatalf("withdrawal %+v", w)
	}
}

func TestLateDeviceGetsPendingPush(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.device("dave@legal.broker.test")
	q := question(time.Minute, d)
	ch := r.ask(context.Background(), q)
	// The push is stored before the device has ever connected.
	poll.Until(t, "one request pending", func() bool { return r.pusher.Pending() == 1 })
	time.Sleep(50 * time.Millisecond)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := nextPrompt(t, d)
	if p.Push.RequestID != q.RequestID {
		t.Fatalf("late device got %s, want %s", p.Push.RequestID, q.RequestID)
	}
	if err := d.Answer(context.Background(), p, notify.Approve); err != nil {
		t.Fatal(err)
	}
	if res := result(t, ch); res.err != nil || res.out.Decision != notify.Approve {
		t.Fatalf("Ask = %+v, %v", res.out, res.err)
	}
}

func TestLateDeviceSkipsFinishedRequests(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.device("erin@legal.broker.test")
	ch := r.ask(context.Background(), question(200*time.Millisecond, d))
	if res := result(t, ch); !errors.Is(res.err, notify.ErrExpired) {
		t.Fatalf("Ask error = %v", res.err)
	}
	// A second request, still pending, is the only thing the device sees.
	q2 := question(time.Minute, d)
	ch2 := r.ask(context.Background(), q2)
	poll.Until(t, "one request pending", func() bool { return r.pusher.Pending() == 1 })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := nextPrompt(t, d); p.Push.RequestID != q2.RequestID {
		t.Fatalf("late device prompted for %s, want only %s", p.Push.RequestID, q2.RequestID)
	}
	select {
	case e := <-d.Events():
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(200 * time.Millisecond):
	}
	r.pusher.Close(context.Background())
	if res := result(t, ch2); !errors.Is(res.err, notify.ErrClosed) {
		t.Fatalf("Ask error after Close = %v, want ErrClosed", res.err)
	}
}

func TestTwoDevicesFirstAnswerWins(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	phone := r.startedDevice("frank-phone@legal.broker.test")
	tablet := r.startedDevice("frank-tablet@legal.broker.test")
	q := question(time.Minute, phone, tablet)
	ch := r.ask(context.Background(), q)
	pp, tp := nextPrompt(t, phone), nextPrompt(t, tablet)
	if err := tablet.Answer(context.Background(), tp, notify.Deny); err != nil {
		t.Fatal(err)
	}
	res := result(t, ch)
	if res.err != nil || res.out.Decision != notify.Deny || res.out.LegalID != tablet.target.LegalID {
		t.Fatalf("Ask = %+v, %v; want the tablet's denial", res.out, res.err)
	}
	if err := phone.Answer(context.Background(), pp, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("answer after the other device won: %v, want ErrRefused", err)
	}
	if w := nextWithdrawal(t, phone); w.RequestID != q.RequestID || w.Why != notify.WhyAnswered {
		t.Fatalf("phone withdrawal %+v", w)
	}
	noEvent(t, tablet)
}

// noEvent fails if the device gets an event within 200 ms.
func noEvent(t *testing.T, d *testDevice) {
	t.Helper()
	select {
	case e := <-d.Events():
		t.Fatalf("unexpected event: prompt %v, withdrawal %+v", e.Prompt != nil, e.Withdrawal)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSimultaneousAnswersOneWins has two devices answer the same request
// at the same instant, again and again: answers are checked in parallel,
// and still exactly one wins, its decision is the outcome, and the other
// device is told it lost.
func TestSimultaneousAnswersOneWins(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	devices := [2]*testDevice{r.startedDevice("gina-phone@legal.broker.test"), r.startedDevice("gina-tablet@legal.broker.test")}
	decisions := [2]notify.Decision{notify.Approve, notify.Deny}
	for round := range 20 {
		q := question(time.Minute, devices[0], devices[1])
		ch := r.ask(context.Background(), q)
		prompts := [2]notify.Prompt{nextPrompt(t, devices[0]), nextPrompt(t, devices[1])}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, d := range devices {
			wg.Go(func() {
				<-start
				errs[i] = d.Answer(context.Background(), prompts[i], decisions[i])
			})
		}
		close(start)
		wg.Wait()
		res := result(t, ch)
		if res.err != nil {
			t.Fatalf("round %d: Ask: %v", round, res.err)
		}
		winner, loser := 0, 1
		if res.out.LegalID == devices[1].target.LegalID {
			winner, loser = 1, 0
		}
		if res.out.Decision != decisions[winner] || errs[winner] != nil || !errors.Is(errs[loser], notify.ErrRefused) {
			t.Fatalf("round %d: outcome %s from %s; answers: winner %v, loser %v", round, res.out.Decision, res.out.LegalID, errs[winner], errs[loser])
		}
		// The winner's receipt told it; the loser hears the withdrawal,
		// unless its device drops it for a request it answered itself.
		for _, i := range []int{winner, loser} {
			select {
			case e := <-devices[i].Events():
				if i == winner || e.Withdrawal == nil || e.Withdrawal.RequestID != q.RequestID || e.Withdrawal.Why != notify.WhyAnswered {
					t.Fatalf("round %d: event to device %d (winner %d): prompt %v, withdrawal %+v", round, i, winner, e.Prompt != nil, e.Withdrawal)
				}
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// TestHostileAnswers sends answers a real device never would; each must
// be refused and leave the request pending for the genuine answer.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	alice := r.startedDevice("alice@legal.broker.test")
	mallory := r.startedDevice("mallory@legal.broker.test")
	// An earlier, finished request gives a genuine signature to replay.
	oldQ := question(time.Minute, alice)
	oldCh := r.ask(context.Background(), oldQ)
	oldP := nextPrompt(t, alice)
	if err := alice.Answer(context.Background(), oldP, notify.Approve); err != nil {
		t.Fatal(err)
	}
	result(t, oldCh)

	q := question(time.Minute, alice)
	ch := r.ask(context.Background(), q)
	p := nextPrompt(t, alice)

	sign := func(key ed25519.PrivateKey, push notify.Push, raw []byte, d notify.Decision) []byte {
		return ed25519.Sign(key, notify.AnswerForm(push, raw, d, ""))
	}
	oldSig := sign(alice.key, oldP.Push, oldP.Raw, notify.Approve)
	tampered := append([]byte(nil), p.Raw...)
	tampered[len(tampered)-2] ^= 1
	cases := []struct {
		name    string
		sender  *testDevice
		subject string
		answer  notify.Answer
	}{
		{"forged by another key", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Signature: sign(mallory.key, p.Push, p.Raw, notify.Approve)}},
		{"replayed from another request", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Signature: oldSig}},
		{"signature over another push text", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Signature: sign(alice.key, p.Push, tampered, notify.Approve)}},
		{"decision flipped after signing", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Signature: sign(alice.key, p.Push, p.Raw, notify.Deny)}},
		{"foreign device", mallory, strings.Replace(p.Push.AnswerSubject, alice.ID(), mallory.ID(), 1),
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: mallory.target.LegalID, Decision: notify.Approve, Signature: sign(mallory.key, p.Push, p.Raw, notify.Approve)}},
		{"unknown decision", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: "maybe", Signature: sign(alice.key, p.Push, p.Raw, "maybe")}},
		{"other protocol version", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion + 1, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Signature: sign(alice.key, p.Push, p.Raw, notify.Approve)}},
		{"empty signature", alice, p.Push.AnswerSubject,
			notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve}},
	}
	for _, c := range cases {
		if err := c.sender.SendAnswer(context.Background(), c.subject, c.answer); !errors.Is(err, notify.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", c.name, err)
		}
	}
	select {
	case res := <-ch:
		t.Fatalf("a hostile answer ended the request: %+v, %v", res.out, res.err)
	default:
	}
	// The genuine answer still counts, exactly once.
	if err := alice.Answer(context.Background(), p, notify.Deny); err != nil {
		t.Fatal(err)
	}
	if res := result(t, ch); res.err != nil || res.out.Decision != notify.Deny {
		t.Fatalf("Ask = %+v, %v", res.out, res.err)
	}
	if err := alice.Answer(context.Background(), p, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("duplicate answer: %v, want ErrRefused", err)
	}
}

// replica starts another broker on the same NATS, with the same key and
// domain, as a second replica behind a load balancer would be.
func (r *rig) replica(opts ...notify.PusherOption) *notify.Pusher {
	r.t.Helper()
	nc := r.BrokerConn(nats.NoEcho())
	p, err := notify.NewPusher(context.Background(), nc, r.Key, "broker.test", append([]notify.PusherOption{notify.WithLogger(bustest.Quiet())}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// TestSupersededOnEveryReplica: a newer request for a person ends the older
// one whichever replica holds it, in both directions.
func TestSupersededOnEveryReplica(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	other := r.replica()
	alice := r.startedDevice("alice@legal.broker.test")
	askOn := func(p *notify.Pusher) <-chan askResult {
		ch := make(chan askResult, 1)
		go func() {
			out, err := p.Ask(context.Background(), question(time.Minute, alice))
			ch <- askResult{out, err}
		}()
		// The withdrawal of the request this one supersedes may come first.
		for e := nextEvent(t, alice); e.Prompt == nil; e = nextEvent(t, alice) {
		}
		return ch
	}
	first := askOn(r.pusher)
	second := askOn(other)
	if res := result(t, first); !errors.Is(res.err, notify.ErrSuperseded) {
		t.Fatalf("request on the first replica: %v, want ErrSuperseded", res.err)
	}
	third := askOn(r.pusher)
	if res := result(t, second); !errors.Is(res.err, notify.ErrSuperseded) {
		t.Fatalf("request on the second replica: %v, want ErrSuperseded", res.err)
	}
	select {
	case res := <-third:
		t.Fatalf("the newest request ended: %+v, %v", res.out, res.err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestNewerRequestSupersedes: one person is asked one thing at a time. A
// second request for the same identity ends the first, which is withdrawn
// from the device; a request for someone else is not touched.
func TestNewerRequestSupersedes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	alice := r.startedDevice("alice@legal.broker.test")
	bob := r.startedDevice("bob@legal.broker.test")
	first := r.ask(context.Background(), question(time.Minute, alice))
	p1 := nextPrompt(t, alice)
	other := r.ask(context.Background(), question(time.Minute, bob))
	nextPrompt(t, bob)
	second := r.ask(context.Background(), question(time.Minute, alice))
	if res := result(t, first); !errors.Is(res.err, notify.ErrSuperseded) {
		t.Fatalf("first request: %v, want ErrSuperseded", res.err)
	}
	var sawPrompt, sawWithdrawal bool
	for !sawPrompt || !sawWithdrawal {
		e := nextEvent(t, alice)
		switch {
		case e.Withdrawal != nil && e.Withdrawal.RequestID == p1.Push.RequestID && e.Withdrawal.Why == notify.WhySuperseded:
			sawWithdrawal = true
		case e.Prompt != nil:
			sawPrompt = true
			if err := alice.Answer(context.Background(), *e.Prompt, notify.Approve); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res := result(t, second); res.err != nil || res.out.Decision != notify.Approve {
		t.Fatalf("second request: %+v, %v", res.out, res.err)
	}
	if err := alice.Answer(context.Background(), p1, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("answer to the superseded request: %v", err)
	}
	select {
	case res := <-other:
		t.Fatalf("another person's request ended: %v", res.err)
	default:
	}
	r.pusher.Close(context.Background())
	result(t, other)
}

func TestPushesFromOthersAreDropped(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.startedDevice("grace@legal.broker.test")
	impostor, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// A push on the device's subject not signed by the broker's push key.
	// Devices cannot publish there at all (see auth_test.go); this covers a
	// misconfigured server or a compromised broker connection.
	nc := r.BrokerConn()
	push := notify.Push{Version: notify.ProtocolVersion, RequestID: notify.NewRequestID(), LegalID: "grace@legal.broker.test", Broker: "broker.test",
		Reason: "Pay 1000 EUR", Expires: time.Now().Add(time.Minute).UTC().Format(notify.TimeFormat)}
	m := nats.NewMsg(notify.PushSubject(d.ID()))
	m.Data = marshalJSON(t, push)
	m.Header.Set("Mfa-Kind", "push")
	m.Header.Set("Mfa-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(impostor, m.Data)))
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	// A genuine push afterwards is the first thing the device sees.
	q := question(time.Minute, d)
	ch := r.ask(context.Background(), q)
	if p := nextPrompt(t, d); p.Push.RequestID != q.RequestID {
		t.Fatalf("device raised an unsigned push %s", p.Push.RequestID)
	}
	r.pusher.Close(context.Background())
	result(t, ch)
}

func marshalJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForgedWithdrawalsChangeNothing: a withdrawal counts only with the
// token its signed push committed to, whether it comes after the push or
// before it.
func TestForgedWithdrawalsChangeNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := r.startedDevice("heidi@legal.broker.test")
	// Whoever can publish on push subjects: only the broker's credentials
	// can, so this is a compromised NATS or broker connection.
	nc := r.BrokerConn()
	forge := func(requestID string) {
		t.Helper()
		m := nats.NewMsg(notify.PushSubject(d.ID()))
		m.Data = marshalJSON(t, notify.Withdrawal{Version: notify.ProtocolVersion, RequestID: requestID, Why: notify.WhyAnswered, Token: strings.Repeat("ab", 32)})
		m.Header.Set("Mfa-Kind", "withdraw")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	// Before the push: a forged withdrawal for the request about to come.
	q := question(time.Minute, d)
	forge(q.RequestID)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	ch := r.ask(ctx, q)
	nextPrompt(t, d)
	// After the push: another forgery.
	forge(q.RequestID)
	noEvent(t, d)
	// The genuine withdrawal still counts.
	cancel()
	if res := result(t, ch); !errors.Is(res.err, context.Canceled) {
		t.Fatal(res.err)
	}
	if w := nextWithdrawal(t, d); w.RequestID != q.RequestID || w.Why != notify.WhyCancelled {
		t.Fatalf("the genuine withdrawal: %+v", w)
	}
}

// TestBurstIsNotRefused: a burst of requests, far more than NATS takes in at
// once, is pushed and waits its time; none is refused.
func TestBurstIsNotRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	pusher := r.replica()
	const burst = 2000
	errs := make(chan error, burst)
	for range burst {
		go func() {
			key, err := identity.GenerateKey()
			if err != nil {
				errs <- err
				return
			}
			q := question(3 * time.Second)
			q.Targets = []notify.Target{{LegalID: "someone@legal.broker.test", PublicKey: key.Public().(ed25519.PublicKey)}}
			_, err = pusher.Ask(context.Background(), q)
			errs <- err
		}()
	}
	refused := 0
	for range burst {
		select {
		case err := <-errs:
			if !errors.Is(err, notify.ErrExpired) {
				refused++
				if refused <= 3 {
					t.Errorf("request in a burst: %v, want ErrExpired", err)
				}
			}
		case <-time.After(time.Minute):
			t.Fatal("burst did not end within a minute")
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d requests in a burst refused", refused, burst)
	}
}

// TestAnswerFloodIsCheap: an approved device flooding the broker with
// oversized answers and answers naming huge request IDs costs a few log
// lines, not one each, and another person's answer still goes through.
func TestAnswerFloodIsCheap(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	var logs syncbuf.Buffer
	p := r.replica(notify.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	alice := r.startedDevice("alice@legal.broker.test")
	rogue := r.device("rogue@legal.broker.test")
	q := question(time.Minute, alice)
	ch := make(chan askResult, 1)
	go func() {
		out, err := p.Ask(context.Background(), q)
		ch <- askResult{out, err}
	}()
	prompt := nextPrompt(t, alice)
	// The broker process holding the request, from its answer subject.
	instance := prompt.Push.AnswerSubject[strings.LastIndex(prompt.Push.AnswerSubject, ".")+1:]

	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		huge := marshalJSON(t, notify.Answer{Version: notify.ProtocolVersion, RequestID: strings.Repeat("r", 7000), Decision: notify.Approve})
		big := make([]byte, 60_000)
		subject := notify.AnswerSubject(rogue.ID(), instance)
		for {
			select {
			case <-stop:
				return
			default:
			}
			msg := huge
			if sent.Load()%2 == 0 {
				msg = big
			}
			if err := rogue.conn.Publish(subject, msg); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	poll.Until(t, "the flood under way", func() bool { return sent.Load() > 2000 })
	start := time.Now()
	if err := alice.Answer(context.Background(), prompt, notify.Approve); err != nil {
		t.Fatalf("Alice's answer during the flood: %v", err)
	}
	took := time.Since(start)
	if res := result(t, ch); res.err != nil || res.out.Decision != notify.Approve {
		t.Fatalf("Alice's request during the flood: %+v %v", res.out, res.err)
	}
	close(stop)
	wg.Wait()
	rogue.conn.Flush()
	lines := strings.Count(logs.String(), "\n")
	if n := sent.Load(); lines > 50 || strings.Contains(logs.String(), strings.Repeat("r", 100)) {
		t.Fatalf("%d flooding answers made %d log lines (or logged the request ID):\n%.2000s", n, lines, logs.String())
	}
	t.Logf("%d flooding answers: %d log lines, %d bytes of log; Alice's answer took %v", sent.Load(), lines, len(logs.String()), took)
}
