package federation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/syncbuf"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// discoveryBroker is a whole broker, started by the production start-up
// code on random ports with its own data directory, as cmd/mfa-broker's
// tests start theirs.
type discoveryBroker struct {
	t   *testing.T
	srv *service.Service
	url string
}

func startDiscoveryBroker(t *testing.T, tweak func(*service.Config)) *discoveryBroker {
	t.Helper()
	cfg := service.DefaultConfig()
	cfg.HTTPAddr, cfg.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Domain = "broker.test"
	cfg.ShutdownTimeout = 10 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	logs := &syncbuf.Buffer{}
	srv, err := service.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	return &discoveryBroker{t: t, srv: srv, url: srv.HTTPURL()}
}

// get fetches a path, with the Host header given ("" for the URL's).
func (b *discoveryBroker) get(path, host string) (int, http.Header, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// person applies for an identity in country and, unless pending, has the
// operator approve it.
func (b *discoveryBroker) person(pnr, country string, approve bool) {
	b.t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		b.t.Fatal(err)
	}
	props := []identity.Property{{Name: "FIRST", Value: "Test"}, {Name: "PNR", Value: pnr}, {Name: "COUNTRY", Value: country}}
	app := identity.NewApplication("broker.test", props, key)
	body, _ := json.Marshal(api.ApplicationRequest{
		Properties: props, PublicKey: identity.EncodePublicKey(app.PublicKey), Proof: base64.StdEncoding.EncodeToString(app.Proof),
	})
	resp, err := http.Post(b.url+"/Identities", "application/json", bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ar api.ApplicationResponse
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || resp.StatusCode != http.StatusCreated {
		b.t.Fatalf("apply: %d, %v", resp.StatusCode, err)
	}
	if !approve {
		return
	}
	op := operator.New(b.srv.Config().AdminSocket)
	if _, err := op.Decide(context.Background(), ar.Identity.ID, "approve", broker.TransitionRequest{SamePerson: true}); err != nil {
		b.t.Fatalf("approve: %v", err)
	}
}

// brokerKey is the key GET /Broker gives.
func (b *discoveryBroker) brokerKey() ed25519.PublicKey {
	b.t.Helper()
	_, _, body := b.get("/Broker", "")
	var info api.BrokerInfo
	if err := json.Unmarshal(body, &info); err != nil {
		b.t.Fatal(err)
	}
	key, err := identity.ParsePublicKey(info.PublicKey)
	if err != nil {
		b.t.Fatal(err)
	}
	return key
}

// freePort is a TCP port nothing listens on just now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDiscoverBroker: Discover against real brokers gives the federation
// document, checked against the OCM one: the broker's domain, the key GET
// /Broker gives, its peer ID, the leaf URL as configured or derived, and
// the countries of its Approved identities only.
func TestDiscoverBroker(t *testing.T) {
	t.Parallel()
	leafPort := freePort(t)
	for _, tc := range []struct {
		name    string
		config  func(*service.Config)
		people  bool
		wantURL func(b *discoveryBroker) string
	}{
		{
			name:   "derived leaf URL",
			config: func(c *service.Config) { c.FederationListen = "127.0.0.1:" + strconv.Itoa(leafPort) },
			people: true,
			wantURL: func(*discoveryBroker) string {
				return "nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)
			},
		},
		{
			name:    "configured leaf URL",
			config:  func(c *service.Config) { c.FederationURL = "tls://leaf.broker.test:7422" },
			wantURL: func(*discoveryBroker) string { return "tls://leaf.broker.test:7422" },
		},
		{
			name:    "no federation",
			wantURL: func(*discoveryBroker) string { return "" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startDiscoveryBroker(t, tc.config)
			wantCountries := []string{}
			if tc.people {
				b.person("19800101-0001", "SE", true)
				b.person("19800101-0002", "SE", true)
				b.person("0101800001", "NO", true)
				b.person("010180-0001", "DK", false) // applied for, never approved
				wantCountries = []string{"NO", "SE"}
			}
			key := b.brokerKey()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, base := range []string{b.url, b.url + "/"} {
				doc, err := federation.Discover(ctx, nil, base)
				if err != nil {
					t.Fatalf("Discover(%s): %v", base, err)
				}
				want := api.FederationDocument{
					Domain: "broker.test", PublicKey: identity.EncodePublicKey(key), PeerID: api.PeerID(key),
					LeafURL: tc.wantURL(b), Countries: wantCountries, Version: doc.Version, MFACapable: true,
				}
				if doc.Version == "" || !reflect.DeepEqual(doc, want) {
					t.Fatalf("Discover(%s):\n%+v\nwant\n%+v", base, doc, want)
				}
			}
			// Without federation there is no LeafUrl at all, and no
			// identities are an empty list, not null.
			_, _, raw := b.get(api.PathFederation, "")
			if tc.wantURL(b) == "" && (bytes.Contains(raw, []byte("LeafUrl")) || !bytes.Contains(raw, []byte(`"Countries":[]`))) {
				t.Errorf("federation document %s", raw)
			}
		})
	}
}

// TestDiscoveryDocuments: what a broker serves for discovery, field by
// field as OCM names them, and how the URLs in it follow the host the
// caller used when no public URL is configured.
func TestDiscoveryDocuments(t *testing.T) {
	t.Parallel()
	leafPort := freePort(t)
	b := startDiscoveryBroker(t, func(c *service.Config) { c.FederationListen = ":" + strconv.Itoa(leafPort) })
	key := b.brokerKey()
	hostPort := strings.TrimPrefix(b.url, "http://")

	status, header, ocm := b.get(api.PathOCMDiscovery, "")
	if status != http.StatusOK || header.Get("Content-Type") != "application/json; charset=utf-8" || header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("GET %s: %d %v", api.PathOCMDiscovery, status, header)
	}
	var doc map[string]any
	if err := json.Unmarshal(ocm, &doc); err != nil {
		t.Fatal(err)
	}
	pemText, _ := api.EncodePublicKeyPEM(key)
	want := map[string]any{
		"enabled":       true,
		"apiVersion":    "1.2.0",
		"endPoint":      b.url + "/ocm",
		"provider":      "legal-identity MFA broker",
		"resourceTypes": []any{},
		"capabilities":  []any{"/mfa-capable", "enforce-mfa"},
		"publicKey":     map[string]any{"keyId": b.url + "/ocm#signature", "publicKeyPem": pemText},
	}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("OCM document\n%v\nwant\n%v", doc, want)
	}
	if _, gotKey, err := federation.DecodeOCMDiscovery(ocm); err != nil || !gotKey.Equal(key) {
		t.Errorf("DecodeOCMDiscovery of the broker's own: %v", err)
	}
	if _, _, legacy := b.get(api.PathOCMProvider, ""); !bytes.Equal(legacy, ocm) {
		t.Errorf("%s differs from %s:\n%s\n%s", api.PathOCMProvider, api.PathOCMDiscovery, legacy, ocm)
	}
	for _, path := range []string{"/mfa-capable", "/ocm/mfa-capable"} {
		if status, _, body := b.get(path, ""); status != http.StatusOK || string(body) != "mfa-capable\n" {
			t.Errorf("GET %s: %d %q", path, status, body)
		}
	}
	// The OCM endPoint is a base, not a resource: the broker has no OCM
	// share API.
	for _, path := range []string{"/ocm", "/ocm/", "/ocm/shares", "/ocm/notifications"} {
		if status, _, body := b.get(path, ""); status != http.StatusNotFound || !bytes.Contains(body, []byte(`"not-found"`)) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}

	// URLs follow the host the caller reached the broker on.
	for _, tc := range []struct{ host, base, leaf string }{
		{hostPort, "http://" + hostPort, "nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)},
		{"mfa.example.org", "http://mfa.example.org", "nats-leaf://mfa.example.org:" + strconv.Itoa(leafPort)},
		{"mfa.example.org:8443", "http://mfa.example.org:8443", "nats-leaf://mfa.example.org:" + strconv.Itoa(leafPort)},
		{"[::1]:8080", "http://[::1]:8080", "nats-leaf://[::1]:" + strconv.Itoa(leafPort)},
		{"[::1]", "http://[::1]", "nats-leaf://[::1]:" + strconv.Itoa(leafPort)},
	} {
		_, _, body := b.get(api.PathOCMDiscovery, tc.host)
		var d api.OCMDiscovery
		if err := json.Unmarshal(body, &d); err != nil || d.EndPoint != tc.base+"/ocm" || d.PublicKey.KeyID != tc.base+"/ocm#signature" {
			t.Errorf("Host %s: OCM document %s", tc.host, body)
		}
		_, _, body = b.get(api.PathFederation, tc.host)
		f, _, err := federation.DecodeFederationDocument(body)
		if err != nil || f.LeafURL != tc.leaf {
			t.Errorf("Host %s: LeafUrl %q (%v), want %q", tc.host, f.LeafURL, err, tc.leaf)
		}
	}
}

// TestDiscoveryConfig: mfa-broker refuses federation settings that cannot
// work before it starts anything.
func TestDiscoveryConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		listen, url string
		ok          bool
	}{
		{"", "", true},
		{":7422", "", true},
		{"0.0.0.0:7422", "nats-leaf://broker.example.org:7422", true},
		{"", "tls://broker.example.org:7422", true},
		{"7422", "", false},
		{":leaf", "", false},
		{":70000", "", false},
		{"", "nats://broker.example.org:7422", false},
		{"", "nats-leaf://broker.example.org", false},
		{"", "nats-leaf://peer:secret@broker.example.org:7422", false},
	} {
		cfg := service.DefaultConfig()
		cfg.FederationListen, cfg.FederationURL = tc.listen, tc.url
		if err := cfg.Check(); (err == nil) != tc.ok {
			t.Errorf("--federation-listen %q --federation-url %q: %v, want ok %v", tc.listen, tc.url, err, tc.ok)
		}
	}
}

// fakePeer is what a peer's discovery documents hold, built from a key and
// changed by each case.
type fakePeer struct {
	key ed25519.PublicKey
	ocm map[string]any
	fed map[string]any
}

func newFakePeer(t testing.TB, base string) *fakePeer {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := api.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &fakePeer{
		key: pub,
		ocm: map[string]any{
			"enabled": true, "apiVersion": "1.2.0", "endPoint": base + "/ocm", "provider": "legal-identity MFA broker",
			"resourceTypes": []any{}, "capabilities": []any{"/mfa-capable", "enforce-mfa"},
			"publicKey": map[string]any{"keyId": base + "/ocm#signature", "publicKeyPem": pemText},
		},
		fed: map[string]any{
			"Domain": "peer.example.org", "PublicKey": identity.EncodePublicKey(pub), "PeerId": api.PeerID(pub),
			"LeafUrl": "nats-leaf://peer.example.org:7422", "Countries": []any{"NO", "SE"}, "Version": "v1.0.0", "MfaCapable": true,
		},
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func otherKeyPEM(t *testing.T) string {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	p, err := api.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDiscoverRefuses: hostile and broken peers. Each case serves the
// documents of a well-formed peer, changed; Discover must refuse what
// does not check out, with the right sentinel, and never hang.
func TestDiscoverRefuses(t *testing.T) {
	t.Parallel()
	type serve struct {
		ocmPath string // where the OCM document is; "" for /.well-known/ocm, "-" for nowhere
		ocm     string // body; "" for the peer's
		fed     string
		fedCode int // status of the federation document; 0 for 200
		ctype   string
		handler func(w http.ResponseWriter, r *http.Request) bool // true: handled
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, p *fakePeer, s *serve)
		want   error // nil: Discover succeeds
		not    error // an error it must not be
		text   string
	}{
		{name: "well-formed", change: func(*testing.T, *fakePeer, *serve) {}},
		{name: "legacy capability only", change: func(_ *testing.T, p *fakePeer, _ *serve) { p.ocm["capabilities"] = []any{"/mfa-capable"} }},
		{name: "newer capability only", change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["capabilities"] = []any{"notifications", "enforce-mfa"}
		}},
		{name: "OCM fields of later versions", change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["criteria"] = []any{"must-use-http-sig"}
			p.ocm["tokenEndPoint"] = "https://peer.example.org/ocm/token"
			p.ocm["resourceTypes"] = []any{map[string]any{"name": "file", "shareTypes": []any{"user"}, "protocols": map[string]any{"webdav": "/dav/", "webapp-receive": map[string]any{"targets": []any{"blank"}}}}}
		}},
		{name: "only the legacy OCM path", change: func(_ *testing.T, _ *fakePeer, s *serve) { s.ocmPath = api.PathOCMProvider }},
		{name: "no leaf URL", change: func(_ *testing.T, p *fakePeer, _ *serve) { delete(p.fed, "LeafUrl") }},
		{name: "no countries yet", change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Countries"] = []any{} }},

		{name: "missing capability", want: federation.ErrNotMFACapable, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["capabilities"] = []any{"/notifications", "/invite-accepted"}
		}},
		{name: "no capabilities", want: federation.ErrNotMFACapable, change: func(_ *testing.T, p *fakePeer, _ *serve) { delete(p.ocm, "capabilities") }},
		{name: "OCM disabled", want: federation.ErrNotMFACapable, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.ocm["enabled"] = false }},
		{name: "not MFA-capable in its own document", want: federation.ErrNotMFACapable, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["MfaCapable"] = false }},
		{name: "no OCM document", want: federation.ErrNotMFACapable, change: func(_ *testing.T, _ *fakePeer, s *serve) { s.ocmPath = "-" }},
		{name: "no federation document", want: federation.ErrNotMFACapable, change: func(_ *testing.T, _ *fakePeer, s *serve) { s.fedCode = http.StatusNotFound }},

		{name: "wrong key in the OCM document", want: federation.ErrBadDiscovery, text: "another", change: func(t *testing.T, p *fakePeer, _ *serve) {
			p.ocm["publicKey"].(map[string]any)["publicKeyPem"] = otherKeyPEM(t)
		}},
		{name: "wrong key in the federation document", want: federation.ErrBadDiscovery, change: func(t *testing.T, p *fakePeer, _ *serve) {
			other, _, _ := ed25519.GenerateKey(rand.Reader)
			p.fed["PublicKey"], p.fed["PeerId"] = identity.EncodePublicKey(other), api.PeerID(other)
		}},
		{name: "PeerId mismatch", want: federation.ErrBadDiscovery, text: "PeerId", change: func(t *testing.T, p *fakePeer, _ *serve) {
			other, _, _ := ed25519.GenerateKey(rand.Reader)
			p.fed["PeerId"] = api.PeerID(other)
		}},
		{name: "no OCM public key", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { delete(p.ocm, "publicKey") }},
		{name: "RSA-looking PEM", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["publicKey"].(map[string]any)["publicKeyPem"] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
		}},
		{name: "OCM field in the wrong case", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["PublicKey"] = p.ocm["publicKey"]
			delete(p.ocm, "publicKey")
		}},
		{name: "federation field in the wrong case", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.fed["publicKey"] = p.fed["PublicKey"]
			delete(p.fed, "PublicKey")
		}},
		{name: "unknown federation field", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Admin"] = true }},
		{name: "a field twice", want: federation.ErrBadDiscovery, text: "twice", change: func(t *testing.T, p *fakePeer, s *serve) {
			// The first PublicKey is the peer's, the second an attacker's.
			other, _, _ := ed25519.GenerateKey(rand.Reader)
			fed := mustJSON(p.fed)
			s.fed = strings.TrimSuffix(fed, "}") + `,"PublicKey":"` + identity.EncodePublicKey(other) + `"}`
		}},
		{name: "leaf URL with another scheme", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.fed["LeafUrl"] = "nats://peer.example.org:4222"
		}},
		{name: "leaf URL with credentials", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.fed["LeafUrl"] = "nats-leaf://admin:secret@peer.example.org:7422"
		}},
		{name: "empty leaf URL", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["LeafUrl"] = "" }},
		{name: "countries out of order", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Countries"] = []any{"SE", "NO"} }},
		{name: "a country twice", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Countries"] = []any{"SE", "SE"} }},
		{name: "not a country", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Countries"] = []any{"se"} }},
		{name: "countries null", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Countries"] = nil }},
		{name: "not a domain", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["Domain"] = "peer example/org" }},
		{name: "MfaCapable a string", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.fed["MfaCapable"] = "true" }},
		{name: "missing endPoint", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { delete(p.ocm, "endPoint") }},
		{name: "resourceTypes null", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, _ *serve) { p.ocm["resourceTypes"] = nil }},

		{name: "not JSON", want: federation.ErrBadDiscovery, change: func(_ *testing.T, _ *fakePeer, s *serve) { s.ocm = "<html><body>It works!</body></html>" }},
		{name: "an HTML page", want: federation.ErrBadDiscovery, text: "Content-Type", change: func(_ *testing.T, _ *fakePeer, s *serve) { s.ctype = "text/html; charset=utf-8" }},
		{name: "data after the document", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, s *serve) { s.fed = mustJSON(p.fed) + `{"Domain":"evil.example"}` }},
		{name: "a JSON array", want: federation.ErrBadDiscovery, change: func(_ *testing.T, _ *fakePeer, s *serve) { s.fed = "[]" }},
		{name: "not UTF-8", want: federation.ErrBadDiscovery, change: func(_ *testing.T, p *fakePeer, s *serve) {
			s.fed = strings.Replace(mustJSON(p.fed), "v1.0.0", "v1.0.0\xff", 1)
		}},
		{name: "huge body", want: federation.ErrBadDiscovery, text: "bytes", change: func(_ *testing.T, p *fakePeer, _ *serve) {
			p.ocm["padding"] = strings.Repeat("x", federation.MaxDiscoveryBytes)
		}},
		{name: "huge body without a length", want: federation.ErrBadDiscovery, text: "bytes", change: func(_ *testing.T, _ *fakePeer, s *serve) {
			s.handler = func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"padding":"`))
				for range 2 * federation.MaxDiscoveryBytes / 1024 {
					w.Write(bytes.Repeat([]byte("x"), 1024))
					w.(http.Flusher).Flush()
				}
				return true
			}
		}},
		{name: "slow body", want: context.DeadlineExceeded, change: func(_ *testing.T, _ *fakePeer, s *serve) {
			s.handler = func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"enabled":`))
				w.(http.Flusher).Flush()
				<-r.Context().Done() // a byte never comes
				return true
			}
		}},
		{name: "server error", not: federation.ErrNotMFACapable, text: "status 500", change: func(_ *testing.T, _ *fakePeer, s *serve) { s.fedCode = http.StatusInternalServerError }},
		{name: "redirect to another host", text: "another host", change: func(_ *testing.T, _ *fakePeer, s *serve) {
			s.handler = func(w http.ResponseWriter, r *http.Request) bool {
				http.Redirect(w, r, "http://evil.example"+r.URL.Path, http.StatusFound)
				return true
			}
		}},
		{name: "redirect on the same host", change: func(_ *testing.T, _ *fakePeer, s *serve) {
			s.handler = func(w http.ResponseWriter, r *http.Request) bool {
				if rest, ok := strings.CutPrefix(r.URL.Path, "/old"); ok {
					http.Redirect(w, r, rest, http.StatusMovedPermanently)
					return true
				}
				return false
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p *fakePeer
			var s serve
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			p = newFakePeer(t, srv.URL)
			tc.change(t, p, &s)
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				if s.handler != nil && s.handler(w, r) {
					return
				}
				path := strings.TrimPrefix(r.URL.Path, "/old")
				ocmPath := s.ocmPath
				if ocmPath == "" {
					ocmPath = api.PathOCMDiscovery
				}
				ctype := s.ctype
				if ctype == "" {
					ctype = "application/json"
				}
				var body string
				switch path {
				case ocmPath:
					body = cmp(s.ocm, mustJSON(p.ocm))
				case api.PathFederation:
					if s.fedCode != 0 {
						http.Error(w, "no", s.fedCode)
						return
					}
					body = cmp(s.fed, mustJSON(p.fed))
				default:
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", ctype)
				io.WriteString(w, body)
			})
			base := srv.URL
			if tc.name == "redirect on the same host" {
				base += "/old"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			doc, err := federation.Discover(ctx, srv.Client(), base)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Discover took %v", took)
			}
			switch {
			case tc.want == nil && tc.text == "" && tc.not == nil:
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				if doc.PeerID != api.PeerID(p.key) || doc.PublicKey != identity.EncodePublicKey(p.key) {
					t.Fatalf("Discover: %+v", doc)
				}
			case err == nil:
				t.Fatalf("Discover succeeded: %+v", doc)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Discover: %v, want one wrapping %v", err, tc.want)
			case tc.not != nil && errors.Is(err, tc.not):
				t.Fatalf("Discover: %v, which must not wrap %v", err, tc.not)
			case !strings.Contains(err.Error(), tc.text):
				t.Fatalf("Discover: %v, want it to say %q", err, tc.text)
			}
			// Errors are shown to operators and logged: they hold no
			// document content beyond names.
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error repeats the peer's document: %v", err)
			}
		})
	}
}

func cmp(override, def string) string {
	if override != "" {
		return override
	}
	return def
}

// TestDiscoverBrokerURL: what is not a broker's base URL is refused before
// anything is fetched.
func TestDiscoverBrokerURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"", "broker.example.org", "ftp://broker.example.org", "https://", "https://user:pw@broker.example.org",
		"https://broker.example.org/?x=1", "https://broker.example.org/#top", "nats-leaf://broker.example.org:7422",
	} {
		if _, err := federation.Discover(context.Background(), nil, u); err == nil || errors.Is(err, federation.ErrNotMFACapable) {
			t.Errorf("Discover(%q): %v", u, err)
		}
	}
}

// TestDiscoverTimeout: a peer that never finishes its answer cannot hold
// Discover past DiscoverTimeout, though the caller's context has no
// deadline.
func TestDiscoverTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits DiscoverTimeout")
	}
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	start := time.Now()
	_, err := federation.Discover(context.Background(), nil, srv.URL)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || took < federation.DiscoverTimeout || took > federation.DiscoverTimeout+2*time.Second {
		t.Fatalf("Discover: %v after %v, want a deadline after %v", err, took, federation.DiscoverTimeout)
	}
}

// fuzzSeeds are well-formed documents of a peer and some near misses.
func fuzzSeeds(f *testing.F) (ocm, fed []string) {
	p := newFakePeer(f, "https://peer.example.org")
	ocm = append(ocm, mustJSON(p.ocm))
	fed = append(fed, mustJSON(p.fed))
	p.ocm["capabilities"] = []any{"enforce-mfa"}
	p.ocm["criteria"] = []any{"must-use-http-sig"}
	p.ocm["resourceTypes"] = []any{map[string]any{"name": "file", "shareTypes": []any{"user"}, "protocols": map[string]any{"webdav": "/dav/"}}}
	ocm = append(ocm, mustJSON(p.ocm), `{"enabled":true,"ENABLED":false}`, `{"publicKey":{"keyId":"x","keyid":"y"}}`, "[]", "null", `{"enabled":true}{}`)
	delete(p.fed, "LeafUrl")
	p.fed["Countries"] = []any{}
	fed = append(fed, mustJSON(p.fed), `{"Domain":"a","Domain":"b"}`, `{"peerid":"x"}`, "{}", "\"\"")
	return ocm, fed
}

// FuzzDecodeOCMDiscovery: the OCM document's decoder never panics, and
// what it accepts checks out: enabled, MFA-capable, with a key that is the
// one its PEM holds; encoded again, it is accepted again with that key.
func FuzzDecodeOCMDiscovery(f *testing.F) {
	ocm, _ := fuzzSeeds(f)
	for _, s := range ocm {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, key, err := federation.DecodeOCMDiscovery(b)
		if err != nil {
			if !errors.Is(err, federation.ErrBadDiscovery) && !errors.Is(err, federation.ErrNotMFACapable) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if !d.Enabled || !d.MFACapable() || d.PublicKey == nil || len(key) != ed25519.PublicKeySize || d.ResourceTypes == nil {
			t.Fatalf("accepted %q as %+v", b, d)
		}
		if k, err := api.ParsePublicKeyPEM(d.PublicKey.PublicKeyPEM); err != nil || !k.Equal(key) {
			t.Fatalf("accepted a key its PEM does not hold: %v", err)
		}
		again, key2, err := federation.DecodeOCMDiscovery([]byte(mustJSON(d)))
		if err != nil || !key2.Equal(key) || again.EndPoint != d.EndPoint {
			t.Fatalf("encoded again, %+v is refused: %v", d, err)
		}
	})
}

// FuzzDecodeFederationDocument: the federation document's decoder never
// panics, and what it accepts checks out: a peer ID that is the key's,
// countries in order, a leaf URL CheckLeafURL accepts, MFA-capable; and
// encoded again it decodes to the same.
func FuzzDecodeFederationDocument(f *testing.F) {
	_, fed := fuzzSeeds(f)
	for _, s := range fed {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, key, err := federation.DecodeFederationDocument(b)
		if err != nil {
			if !errors.Is(err, federation.ErrBadDiscovery) && !errors.Is(err, federation.ErrNotMFACapable) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		parsed, perr := identity.ParsePublicKey(d.PublicKey)
		if perr != nil || !parsed.Equal(key) || d.PeerID != api.PeerID(key) || !api.IsPeerID(d.PeerID) || !d.MFACapable || d.Domain == "" || d.Version == "" {
			t.Fatalf("accepted %q as %+v", b, d)
		}
		if d.LeafURL != "" && api.CheckLeafURL(d.LeafURL) != nil {
			t.Fatalf("accepted the leaf URL %q", d.LeafURL)
		}
		if d.Countries == nil || !slices.IsSorted(d.Countries) || len(slices.Compact(slices.Clone(d.Countries))) != len(d.Countries) {
			t.Fatalf("accepted the countries %q", d.Countries)
		}
		for _, c := range d.Countries {
			if !identity.IsCountryCode(c) {
				t.Fatalf("accepted the country %q", c)
			}
		}
		again, _, err := federation.DecodeFederationDocument([]byte(mustJSON(d)))
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("encoded again, %+v decodes to %+v, %v", d, again, err)
		}
	})
}
