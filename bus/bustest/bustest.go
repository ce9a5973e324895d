// Package bustest starts the broker's message bus for tests, as the
// broker does: the embedded NATS server with JetStream, the broker's
// credentials, and the authorization callout over a real identity store
// in which tests create the identities devices connect with.
package bustest

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
	"github.com/legalmfa/mfa/notify"
)

// Bus is a running embedded server with the broker's callout.
type Bus struct {
	t testing.TB
	// URL is where clients connect.
	URL string
	// Key is the broker's key; Creds are the NATS identities derived from it.
	Key    ed25519.PrivateKey
	Creds  *bus.BrokerCredentials
	Store  identity.Store
	Server *bus.EmbeddedServer
	// Conn is the broker's own connection, made as the broker makes it
	// (NoEcho); the callout answers on it.
	Conn *nats.Conn
}

// Start starts a bus on a random port; everything stops when the test ends.
func Start(t testing.TB) *Bus {
	t.Helper()
	return StartLogged(t, Quiet())
}

// StartLogged is Start with the authorization callout logging to log.
func StartLogged(t testing.TB, log *slog.Logger) *Bus {
	t.Helper()
	return start(t, log, nil, nil)
}

// StartFederating is Start for a broker that federates: its key is key,
// its JetStream domain peerID, it takes peers' links on a random port, and
// its callout admits the peers dir approves.
func StartFederating(t testing.TB, key ed25519.PrivateKey, peerID string, dir bus.PeerDirectory) *Bus {
	t.Helper()
	return start(t, Quiet(), key, &federating{id: peerID, dir: dir})
}

type federating struct {
	id  string
	dir bus.PeerDirectory
}

func start(t testing.TB, log *slog.Logger, key ed25519.PrivateKey, fed *federating) *Bus {
	t.Helper()
	if key == nil {
		var err error
		if key, err = identity.GenerateKey(); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := bus.NewBrokerCredentials(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bus.ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Credentials: creds, Logger: Quiet()}
	authOpts := []bus.AuthOption{}
	if fed != nil {
		cfg.Domain, cfg.LeafListen = fed.id, "127.0.0.1:0"
		authOpts = append(authOpts, bus.WithPeers(fed.dir))
	}
	srv, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "identities.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	nc := Connect(t, srv.ClientURL(), append(creds.ConnectOptions(), nats.NoEcho())...)
	auth, err := bus.StartAuthService(nc, creds, store, log, append(authOpts, bus.WithConnectionLimit(srv, bus.MaxDeviceConnections))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	return &Bus{t: t, URL: srv.ClientURL(), Key: key, Creds: creds, Store: store, Server: srv, Conn: nc}
}

// Identity stores an identity for key in the given state, valid for an
// hour around now when the state has a validity window.
func (b *Bus) Identity(legalID string, key ed25519.PrivateKey, state identity.State) {
	b.t.Helper()
	now := time.Now()
	id := identity.Identity{
		ID: legalID, State: state, PublicKey: key.Public().(ed25519.PublicKey),
		Properties: []identity.Property{{Name: "FIRST", Value: "Test"}},
		Created:    now, Updated: now, Version: 1,
	}
	if state == identity.Approved || state == identity.Obsoleted || state == identity.Compromised {
		id.From, id.To = now.Add(-time.Hour), now.Add(time.Hour)
	}
	if err := b.Store.Create(context.Background(), id); err != nil {
		b.t.Fatal(err)
	}
}

// BrokerConn is another connection with the broker's credentials, as a
// second replica would have.
func (b *Bus) BrokerConn(extra ...nats.Option) *nats.Conn {
	b.t.Helper()
	return Connect(b.t, b.URL, append(b.Creds.ConnectOptions(), extra...)...)
}

// DeviceConn connects to url with a device key's credentials.
func DeviceConn(url string, key ed25519.PrivateKey, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := notify.DeviceConnectOptions(key)
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, append(opts, extra...)...)
}

// Connect connects to url, closing the connection when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Quiet is a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// PermissionErrors collects a connection's asynchronous permission errors
// from the server; give Handler to nats.ErrorHandler.
type PermissionErrors struct {
	mu   sync.Mutex
	errs []string
}

// Handler records an error.
func (p *PermissionErrors) Handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err.Error())
	p.mu.Unlock()
}

// Has reports whether an error containing fragment arrived.
func (p *PermissionErrors) Has(fragment string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.Contains(e, fragment) {
			return true
		}
	}
	return false
}

// All is every error so far.
func (p *PermissionErrors) All() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// StartConfigured starts a nats-server, as an operator would, from a
// configuration file with listen and JetStream set and conf (such as the
// authorization block mfa-broker nats-config prints) added. A
// configuration that does not load fails the test; the server stops when
// the test ends, if the test has not stopped it.
func StartConfigured(t testing.TB, conf string) *server.Server {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "nats.conf")
	text := "listen: 127.0.0.1:-1\njetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "js")) + " }\n" + conf
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("the configuration does not load: %v\n%s", err, text)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the configured NATS server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}
