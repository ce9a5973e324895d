package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// The tests run against whole brokers, started by the same code as
// mfa-broker (service.Start) on random ports, with real devices
// (notifytest) on the broker's embedded NATS. Most share one broker: each
// test asks people of its own, so they do not meet.

var shared struct {
	once sync.Once
	b    *testBroker
	err  error
	dir  string
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	code := m.Run()
	if shared.b != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		shared.b.srv.Shutdown(ctx)
		cancel()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// testBroker is a running broker and what the tests need of it.
type testBroker struct {
	srv       *service.Service
	url       string
	info      api.BrokerInfo
	brokerKey ed25519.PublicKey
	admin     *operator.Client
}

// brokerConfig is a test broker's configuration: no rate limits unless a
// test sets them.
func brokerConfig(dataDir string) service.Config {
	return service.Config{
		HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", DataDir: dataDir,
		Domain: "client.test", MaxTimeout: time.Minute, IdentityValidity: time.Hour,
		ShutdownTimeout: 10 * time.Second,
	}
}

func launch(cfg service.Config) (*testBroker, error) {
	s, err := service.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	b := &testBroker{srv: s, url: s.HTTPURL(), admin: operator.New(filepath.Join(cfg.DataDir, "admin.sock"))}
	resp, err := http.Get(b.url + "/Broker")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&b.info)
		resp.Body.Close()
	}
	if err == nil {
		b.brokerKey, err = identity.ParsePublicKey(b.info.PublicKey)
	}
	if err != nil {
		s.Shutdown(context.Background())
		return nil, fmt.Errorf("GET /Broker: %w", err)
	}
	return b, nil
}

// sharedBroker is the broker most tests use, started by the first.
func sharedBroker(t testing.TB) *testBroker {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "client-test-")
		if shared.err == nil {
			shared.b, shared.err = launch(brokerConfig(filepath.Join(shared.dir, "data")))
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.b
}

// ownBroker is a broker for one test, configured as it needs.
func ownBroker(t testing.TB, tweak func(*service.Config)) *testBroker {
	t.Helper()
	cfg := brokerConfig(filepath.Join(t.TempDir(), "data"))
	if tweak != nil {
		tweak(&cfg)
	}
	b, err := launch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.srv.Shutdown(ctx)
	})
	return b
}

// apply applies for an identity with these properties, as a device does,
// and returns its ID and key, not approved yet.
func (b *testBroker) apply(t testing.TB, props ...string) (string, ed25519.PrivateKey) {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var ps []identity.Property
	for i := 0; i+1 < len(props); i += 2 {
		ps = append(ps, identity.Property{Name: props[i], Value: props[i+1]})
	}
	app := identity.NewApplication(b.info.Domain, ps, key)
	body, _ := json.Marshal(api.ApplicationRequest{
		Properties: ps, PublicKey: identity.EncodePublicKey(app.PublicKey),
		Proof: base64.StdEncoding.EncodeToString(app.Proof),
	})
	resp, err := http.Post(b.url+"/Identities", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ar api.ApplicationResponse
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("apply: %s, %v", resp.Status, err)
	}
	return ar.Identity.ID, key
}

func (b *testBroker) approve(t testing.TB, id string) {
	t.Helper()
	if _, err := b.admin.Decide(context.Background(), id, "approve", broker.TransitionRequest{SamePerson: true}); err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
}

var pnrs atomic.Int64

// person makes an approved person of their own with a started device that
// decides as decide says (nil: never answers), and returns their PNR.
func (b *testBroker) person(t testing.TB, decide notifytest.Decider) (string, *notifytest.Device) {
	t.Helper()
	pnr := fmt.Sprintf("19800101-%04d", pnrs.Add(1))
	id, key := b.apply(t, "FIRST", "Test", "LAST", "Person", "PNR", pnr, "COUNTRY", "SE")
	b.approve(t, id)
	d := b.device(t, id, key, decide)
	d.Start()
	return pnr, d
}

// device connects a device for the identity over the broker's NATS.
func (b *testBroker) device(t testing.TB, id string, key ed25519.PrivateKey, decide notifytest.Decider) *notifytest.Device {
	t.Helper()
	opts, err := notify.DeviceConnectOptions(key)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.info.NATSURL, opts...)
	if err != nil {
		t.Fatalf("device connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return notifytest.New(t, nc, id, key, b.brokerKey, decide)
}

// requester makes an approved requester identity, an organisation.
func (b *testBroker) requester(t testing.TB) (string, ed25519.PrivateKey) {
	t.Helper()
	id, key := b.apply(t, "ORGNAME", "Example Bank")
	b.approve(t, id)
	return id, key
}

// client is a client of the broker (or of url, when given) with opts.
func (b *testBroker) client(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(b.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request is a valid request for pnr.
func request(pnr string) client.Request {
	return client.Request{PNR: pnr, Country: "SE", Timeout: 30 * time.Second, Reason: "Log in to **Example Bank**"}
}

// fakeClock is the system clock moved by offset, whose waits return at
// once and are recorded, so that tests see every pause the client takes
// without taking it.
type fakeClock struct {
	offset time.Duration
	mu     sync.Mutex
	waits  []time.Duration
}

func (c *fakeClock) Now() time.Time { return time.Now().Add(c.offset) }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// proxy is a reverse proxy in front of a broker that can answer requests
// itself (inject returns true when it did), and counts what it saw and
// what it passed on, by method.
type proxy struct {
	*httptest.Server
	mu        sync.Mutex
	seen      map[string]int
	forwarded map[string]int
}

func newProxy(t testing.TB, target string, inject func(w http.ResponseWriter, r *http.Request, n int) bool) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &proxy{seen: map[string]int{}, forwarded: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen[r.Method]++
		n := p.seen[r.Method]
		p.mu.Unlock()
		if inject != nil && inject(w, r, n) {
			return
		}
		p.mu.Lock()
		p.forwarded[r.Method]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// counts is how many requests of the method the proxy saw and passed on.
func (p *proxy) counts(method string) (seen, forwarded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[method], p.forwarded[method]
}

// answer writes a broker-like JSON answer.
func answer(w http.ResponseWriter, status int, retryAfter string, r api.Response) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(r)
}

// unknownRef is a well-formed order reference no broker knows.
const unknownRef = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
