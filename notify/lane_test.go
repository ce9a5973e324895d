package notify_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/guard"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
)

// TestDeviceStaysInItsLane connects an approved device and tries to read
// and write where it must not: it gets permission errors and nothing else.
func TestDeviceStaysInItsLane(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	victim := r.startedDevice("victim@legal.broker.test")
	malloryKey, _ := identity.GenerateKey()
	r.Identity("mallory@legal.broker.test", malloryKey, identity.Approved)
	perm := &bustest.PermissionErrors{}
	nc, err := r.deviceConn(malloryKey, nats.ErrorHandler(perm.Handler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	mallory := identity.DeviceIDOf(malloryKey.Public().(ed25519.PublicKey))

	got := make(chan *nats.Msg, 100)
	for _, subject := range []string{
		notify.PushSubject(victim.ID()), // another device's pushes
		"mfa.push.*",                    // everyone's pushes
		">",                             // everything
		"_INBOX.>",                      // everyone's replies
		"mfa.answer.>",                  // everyone's answers
		"$SYS.REQ.USER.AUTH",            // the callout itself
	} {
		if _, err := nc.ChanSubscribe(subject, got); err != nil {
			t.Fatal(err)
		}
	}
	forged := []string{
		notify.PushSubject(mallory),                       // a push to itself, as if from the broker
		notify.PushSubject(victim.ID()),                   // a push to the victim
		notify.SyncSubject(victim.ID()),                   // have the victim's pushes resent
		"mfa.answer." + victim.ID() + ".x",                // answer as the victim
		"$JS.API.STREAM.LIST",                             // look into JetStream
		"$JS.API.STREAM.MSG.GET.KV_" + guard.BlocksBucket, // read who is blocked
	}
	for _, subject := range forged {
		if err := nc.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()

	// The broker pushes to the victim: Mallory must see none of it.
	q := question(time.Minute, victim)
	ch := r.ask(context.Background(), q)
	nextPrompt(t, victim)
	poll.Until(t, "the server's permission errors", func() bool {
		return perm.Has("Subscription to \"mfa.push.*\"") && perm.Has("Publish to \"mfa.push."+mallory+"\"")
	})
	select {
	case m := <-got:
		t.Fatalf("mallory received %s on %s", m.Data, m.Subject)
	case <-time.After(200 * time.Millisecond):
	}
	for _, s := range []string{"Subscription to \">\"", "Subscription to \"_INBOX.>\"", "Publish to \"mfa.answer." + victim.ID()} {
		if !perm.Has(s) {
			t.Errorf("no permission violation for %s; got %v", s, perm.All())
		}
	}
	// Its own lane works: a sync of its own pushes.
	if _, err := nc.Request(notify.SyncSubject(mallory), nil, 5*time.Second); err != nil {
		t.Fatalf("own sync: %v", err)
	}
	r.pusher.Close(context.Background())
	result(t, ch)
}
