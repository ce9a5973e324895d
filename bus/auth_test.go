package bus_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
)

// TestWhoMayConnect tries every way in that must be refused, and the one
// that must not be.
func TestWhoMayConnect(t *testing.T) {
	t.Parallel()
	r := bustest.Start(t)
	approved, _ := identity.GenerateKey()
	r.Identity("approved@legal.broker.test", approved, identity.Approved)
	refusedKeys := map[string]ed25519.PrivateKey{}
	for _, st := range []identity.State{identity.Created, identity.Rejected, identity.Obsoleted, identity.Compromised} {
		k, _ := identity.GenerateKey()
		r.Identity(string(st)+"@legal.broker.test", k, st)
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
			nc, err := nats.Connect(r.URL, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authoriz") {
				t.Fatalf("refused for the wrong reason: %v", err)
			}
		})
	}
	nc, err := bustest.DeviceConn(r.URL, approved)
	if err != nil {
		t.Fatalf("approved device refused: %v", err)
	}
	nc.Close()
}

// TestExternalServerConfig starts a nats-server from the configuration the
// broker generates for external servers: the same refusals hold there.
func TestExternalServerConfig(t *testing.T) {
	t.Parallel()
	key, _ := identity.GenerateKey()
	creds, err := bus.NewBrokerCredentials(key)
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
	brokerConn := bustest.Connect(t, srv.ClientURL(), creds.ConnectOptions()...)
	auth, err := bus.StartAuthService(brokerConn, creds, store, bustest.Quiet())
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
	perm := &bustest.PermissionErrors{}
	nc, err := nats.Connect(srv.ClientURL(), append(devOpts, nats.ErrorHandler(perm.Handler))...)
	if err != nil {
		t.Fatalf("approved device refused by the configured server: %v", err)
	}
	defer nc.Close()
	nc.Subscribe(">", func(*nats.Msg) {})
	nc.Flush()
	poll.Until(t, "the server's permission error", func() bool { return perm.Has("Subscription to \">\"") })
}
