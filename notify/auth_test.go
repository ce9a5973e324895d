package notify_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
	"github.com/legalmfa/mfa/notify"
)

// TestWhoMayConnect tries every way in that must be refused, and the one
// that must not be.
func TestWhoMayConnect(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	approved, _ := identity.GenerateKey()
	r.identity("approved@legal.broker.test", approved, identity.Approved)
	refusedKeys := map[string]ed25519.PrivateKey{}
	for _, st := range []identity.State{identity.Created, identity.Rejected, identity.Obsoleted, identity.Compromised} {
		k, _ := identity.GenerateKey()
		r.identity(string(st)+"@legal.broker.test", k, st)
		refusedKeys["identity "+string(st)] = k
	}
	stranger, _ := identity.GenerateKey()
	refusedKeys["key of no identity"] = stranger

	cases := map[string][]nats.Option{
		"anonymous":         nil,
		"user and password": {nats.UserInfo("admin", "admin")},
		"token":             {nats.Token("secret")},
	}
	for name, key := range refusedKeys {
		opts, err := notify.DeviceConnectOptions(key)
		if err != nil {
			t.Fatal(err)
		}
		cases[name] = opts
	}
	// The right public key, but the nonce signed by another key.
	liar, _ := identity.GenerateKey()
	liarOpts, _ := notify.DeviceConnectOptions(liar)
	approvedOpts, _ := notify.DeviceConnectOptions(approved)
	var ao, lo nats.Options
	approvedOpts[0](&ao)
	liarOpts[0](&lo)
	cases["approved key, nonce signed by another"] = []nats.Option{nats.Nkey(ao.Nkey, lo.SignatureCB)}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(r.url, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authoriz") {
				t.Fatalf("refused for the wrong reason: %v", err)
			}
		})
	}
	nc, err := r.deviceConn(approved)
	if err != nil {
		t.Fatalf("approved device refused: %v", err)
	}
	nc.Close()
}

// permissionErrors collects the server's asynchronous permission errors.
type permissionErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permissionErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err.Error())
	p.mu.Unlock()
}

func (p *permissionErrors) has(fragment string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.Contains(e, fragment) {
			return true
		}
	}
	return false
}

// TestDeviceStaysInItsLane connects an approved device and tries to read
// and write where it must not: it gets permission errors and nothing else.
func TestDeviceStaysInItsLane(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	victim := r.startedDevice("victim@legal.broker.test")
	malloryKey, _ := identity.GenerateKey()
	r.identity("mallory@legal.broker.test", malloryKey, identity.Approved)
	perm := &permissionErrors{}
	nc, err := r.deviceConn(malloryKey, nats.ErrorHandler(perm.handler))
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
		notify.PushSubject(mallory),                        // a push to itself, as if from the broker
		notify.PushSubject(victim.ID()),                    // a push to the victim
		notify.SyncSubject(victim.ID()),                    // have the victim's pushes resent
		"mfa.answer." + victim.ID() + ".x",                 // answer as the victim
		"$JS.API.STREAM.LIST",                              // look into JetStream
		"$JS.API.STREAM.MSG.GET.KV_" + notify.BlocksBucket, // read who is blocked
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
	waitFor(t, func() bool {
		return perm.has("Subscription to \"mfa.push.*\"") && perm.has("Publish to \"mfa.push."+mallory+"\"")
	})
	select {
	case m := <-got:
		t.Fatalf("mallory received %s on %s", m.Data, m.Subject)
	case <-time.After(200 * time.Millisecond):
	}
	for _, s := range []string{"Subscription to \">\"", "Subscription to \"_INBOX.>\"", "Publish to \"mfa.answer." + victim.ID()} {
		if !perm.has(s) {
			t.Errorf("no permission violation for %s; got %v", s, perm.errs)
		}
	}
	// Its own lane works: a sync of its own pushes.
	if _, err := nc.Request(notify.SyncSubject(mallory), nil, 5*time.Second); err != nil {
		t.Fatalf("own sync: %v", err)
	}
	r.pusher.Close(context.Background())
	result(t, ch)
}

// TestExternalServerConfig starts a nats-server from the configuration the
// broker generates for external servers: the same refusals hold there.
func TestExternalServerConfig(t *testing.T) {
	t.Parallel()
	key, _ := identity.GenerateKey()
	creds, err := notify.NewBrokerCredentials(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	text := "listen: 127.0.0.1:-1\njetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "js")) + " }\n" +
		creds.ServerAuthConfig()
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("generated config does not load: %v\n%s", err, text)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })

	store, err := boltstore.Open(filepath.Join(dir, "identities.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	brokerConn := connect(t, srv.ClientURL(), creds.ConnectOptions()...)
	auth, err := notify.StartAuthService(brokerConn, creds, store, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()

	if nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("anonymous client connected to the configured server")
	}
	devKey, _ := identity.GenerateKey()
	now := time.Now()
	if err := store.Create(context.Background(), identity.Identity{
		ID: "d@legal.broker.test", State: identity.Approved, PublicKey: devKey.Public().(ed25519.PublicKey),
		Properties: []identity.Property{{Name: "FIRST", Value: "D"}}, From: now.Add(-time.Hour), To: now.Add(time.Hour),
		Created: now, Updated: now, Version: 1,
	}); err != nil {
		t.Fatal(err)
	}
	devOpts, _ := notify.DeviceConnectOptions(devKey)
	perm := &permissionErrors{}
	nc, err := nats.Connect(srv.ClientURL(), append(devOpts, nats.ErrorHandler(perm.handler))...)
	if err != nil {
		t.Fatalf("approved device refused by the configured server: %v", err)
	}
	defer nc.Close()
	nc.Subscribe(">", func(*nats.Msg) {})
	nc.Flush()
	waitFor(t, func() bool { return perm.has("Subscription to \">\"") })
}
