package notify_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
)

// cutProxy forwards TCP to a NATS server until it is cut: then it drops
// every connection it carries and turns new ones away until restored, as a
// phone losing its network would.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, natsURL string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://")}
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
	})
	go p.serve()
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go pipe(c, up)
		go pipe(up, c)
	}
}

func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestSyncAfterReconnect: a device that loses its connection misses a push
// and a withdrawal. When it is back, the sync on reconnect brings the push
// it missed and withdraws the prompt whose request ended meanwhile, though
// the broker no longer holds that request.
func TestSyncAfterReconnect(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	proxy := newCutProxy(t, r.url)
	d := r.deviceAt("ivan@legal.broker.test", proxy.url(),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := r.ask(ctx, question(time.Minute, d))
	held := nextPrompt(t, d)

	proxy.setCut(true)
	poll.Until(t, "the device cut off", func() bool { return !d.conn.IsConnected() })
	cancel()
	if res := result(t, first); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("first request: %v, want context.Canceled", res.err)
	}
	q := question(time.Minute, d)
	second := r.ask(context.Background(), q)
	poll.Until(t, "one request pending", func() bool { return r.pusher.Pending() == 1 })
	proxy.setCut(false)

	var withdrawn, prompted bool
	for !withdrawn || !prompted {
		e := nextEvent(t, d)
		switch {
		case e.Withdrawal != nil:
			if e.Withdrawal.RequestID != held.Push.RequestID || e.Withdrawal.Why != notify.WhyEnded {
				t.Fatalf("withdrawal %+v, want %s ended", e.Withdrawal, held.Push.RequestID)
			}
			withdrawn = true
		case e.Prompt.Push.RequestID == q.RequestID:
			prompted = true
			if err := d.Answer(context.Background(), *e.Prompt, notify.Approve); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("prompt for %s, want %s", e.Prompt.Push.RequestID, q.RequestID)
		}
	}
	if res := result(t, second); res.err != nil || res.out.Decision != notify.Approve {
		t.Fatalf("second request: %+v, %v", res.out, res.err)
	}
	// Synced again, the device is told nothing more: its answered prompt
	// and the withdrawn one are not asked about.
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	noEvent(t, d)
}

// TestSyncReachesEveryReplica: each broker replica holds its own pending
// requests, so a device's sync must reach all of them, not one of a queue
// group. Three devices come online late, each asked on another replica.
func TestSyncReachesEveryReplica(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	replicas := []*notify.Pusher{r.pusher, r.replica(), r.replica()}
	names := []string{"judy@legal.broker.test", "ken@legal.broker.test", "lena@legal.broker.test"}
	type asked struct {
		d  *testDevice
		q  notify.Question
		ch chan error
	}
	var all []asked
	for i, p := range replicas {
		d := r.device(names[i])
		a := asked{d: d, q: question(time.Minute, d), ch: make(chan error, 1)}
		go func() {
			_, err := p.Ask(context.Background(), a.q)
			a.ch <- err
		}()
		poll.Until(t, "one request pending there", func() bool { return p.Pending() == 1 })
		all = append(all, a)
	}
	for _, a := range all {
		if err := a.d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range all {
		p := nextPrompt(t, a.d)
		if p.Push.RequestID != a.q.RequestID {
			t.Fatalf("%s prompted for %s, want %s", a.q.Targets[0].LegalID, p.Push.RequestID, a.q.RequestID)
		}
		if err := a.d.Answer(context.Background(), p, notify.Deny); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-a.ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Ask did not return within 10 s")
		}
	}
}

// TestSyncIgnoresOthersRequests: a device that lists a prompt as held by a
// broker that still has it pending, or that another process holds, gets no
// withdrawal for it: only the process that held a request, and no longer
// does, can end it.
func TestSyncIgnoresOthersRequests(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	other := r.replica()
	d := r.startedDevice("mike@legal.broker.test")
	q := question(time.Minute, d)
	ch := make(chan error, 1)
	go func() {
		_, err := other.Ask(context.Background(), q)
		ch <- err
	}()
	nextPrompt(t, d)
	// Watch the device's subject as the broker sees it: the device itself
	// would drop a withdrawal with the wrong token without a word.
	watch := r.BrokerConn()
	onSubject := make(chan *nats.Msg, 16)
	if _, err := watch.ChanSubscribe(notify.PushSubject(d.ID()), onSubject); err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	// The pending push is resent (and dropped as a duplicate); nothing is
	// withdrawn, by the replica that holds it or by the one that does not.
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	noEvent(t, d)
	for len(onSubject) > 0 {
		if m := <-onSubject; m.Header.Get("Mfa-Kind") != "push" {
			t.Fatalf("sync sent a %s: %s", m.Header.Get("Mfa-Kind"), m.Data)
		}
	}
	other.Close(context.Background())
	if err := <-ch; !errors.Is(err, notify.ErrClosed) {
		t.Fatalf("Ask after Close: %v", err)
	}
	if w := nextWithdrawal(t, d); w.Why != notify.WhyShutdown {
		t.Fatalf("withdrawal %+v", w)
	}
}
