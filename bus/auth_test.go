package bus_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
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
	"github.com/legalmfa/mfa/internal/syncbuf"
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
	url := bustest.StartConfigured(t, creds.ServerAuthConfig()).ClientURL()
	dir := t.TempDir()
	store, err := boltstore.Open(filepath.Join(dir, "identities.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	brokerConn := bustest.Connect(t, url, creds.ConnectOptions()...)
	auth, err := bus.StartAuthService(brokerConn, creds, store, bustest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()

	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
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
	nc, err := nats.Connect(url, append(devOpts, nats.ErrorHandler(perm.Handler))...)
	if err != nil {
		t.Fatalf("approved device refused by the configured server: %v", err)
	}
	defer nc.Close()
	nc.Subscribe(">", func(*nats.Msg) {})
	nc.Flush()
	poll.Until(t, "the server's permission error", func() bool { return perm.Has("Subscription to \">\"") })
}

// TestDeviceLimits: an approved device cannot make the server hold more
// for it than a device needs: subscriptions, connections, and what the
// server keeps about connections that closed.
func TestDeviceLimits(t *testing.T) {
	t.Parallel()
	r := bustest.Start(t)
	key, _ := identity.GenerateKey()
	r.Identity("rogue@legal.broker.test", key, identity.Approved)
	dev := identity.DeviceIDOf(key.Public().(ed25519.PublicKey))

	// Subscriptions: past the limit the server cuts the connection off.
	perm := &bustest.PermissionErrors{}
	nc, err := bustest.DeviceConn(r.URL, key, nats.ErrorHandler(perm.Handler), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range bus.MaxSubscriptions + 10 {
		if _, err := nc.Subscribe(notify.DeviceInbox(dev)+".x"+strconv.Itoa(i), func(*nats.Msg) {}); err != nil {
			break
		}
	}
	nc.Flush()
	poll.Until(t, "the connection cut off for too many subscriptions", func() bool {
		return nc.IsClosed() || perm.Has("maximum subscriptions")
	})
	nc.Close()

	// Closed connections: the server keeps a few, not every one with every
	// subscription it had.
	for n := range 40 {
		k, _ := identity.GenerateKey()
		r.Identity("cycle"+strconv.Itoa(n)+"@legal.broker.test", k, identity.Approved)
		c, err := bustest.DeviceConn(r.URL, k, nats.MaxReconnects(0))
		if err != nil {
			t.Fatal(err)
		}
		kdev := identity.DeviceIDOf(k.Public().(ed25519.PublicKey))
		for i := range 100 {
			c.Subscribe(notify.DeviceInbox(kdev)+".y"+strconv.Itoa(i), func(*nats.Msg) {})
		}
		c.Flush()
		c.Close()
	}
	cz, err := r.Server.Connz(&server.ConnzOptions{State: server.ConnClosed, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if cz.Total > 16 {
		t.Errorf("the server keeps %d closed connections", cz.Total)
	}

	// Connections: one key holds at most MaxDeviceConnections at once.
	var open []*nats.Conn
	for range bus.MaxDeviceConnections {
		var c *nats.Conn
		poll.Until(t, "a connection within the limit", func() bool {
			c, err = bustest.DeviceConn(r.URL, key, nats.MaxReconnects(0))
			return err == nil
		})
		open = append(open, c)
	}
	if c, err := bustest.DeviceConn(r.URL, key, nats.MaxReconnects(0)); err == nil {
		c.Close()
		t.Fatalf("a device key opened %d connections", bus.MaxDeviceConnections+1)
	}
	// Another device is not held back by this one's limit.
	other, _ := identity.GenerateKey()
	r.Identity("other@legal.broker.test", other, identity.Approved)
	if c, err := bustest.DeviceConn(r.URL, other); err != nil {
		t.Fatalf("another device: %v", err)
	} else {
		c.Close()
	}
	for _, c := range open {
		c.Close()
	}
}

// TestRefusalsDoNotFloodTheLog: anyone can have a connection refused, as
// often as they like, with a name of their choosing; the log gets a few
// short lines a minute, not one long line each.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	r := bustest.StartLogged(t, slog.New(slog.NewTextHandler(&logs, nil)))
	stranger, _ := identity.GenerateKey()
	opts, _ := notify.DeviceConnectOptions(stranger)
	const attempts = 200
	for range attempts {
		if nc, err := nats.Connect(r.URL, append(opts, nats.Name(strings.Repeat("n", 2000)), nats.MaxReconnects(0))...); err == nil {
			nc.Close()
			t.Fatal("a stranger connected")
		}
	}
	out := logs.String()
	if n := strings.Count(out, "NATS connection refused"); n == 0 || n > 21 || strings.Contains(out, strings.Repeat("n", 100)) {
		t.Fatalf("%d refusals logged (or the whole name):\n%.1500s", n, out)
	}
	t.Logf("%d refused connections: %d bytes of log, %.1f per attempt", attempts, len(out), float64(len(out))/attempts)
}
