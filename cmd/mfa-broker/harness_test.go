package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify/notifytest"

	"github.com/legalmfa/mfa/api"

	"github.com/beevik/etree"
	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/schema"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	gin.SetMode(gin.ReleaseMode)
	// Stops the MongoDB test server the MongoDB tests start, if they do.
	mongotest.Main(m)
}

// testBroker is a whole broker, started by the same code as the real one,
// on random ports with its own data directory.
type testBroker struct {
	t      testing.TB
	srv    *service.Service
	cfg    config
	logs   *syncbuf.Buffer
	info   api.BrokerInfo
	client *http.Client // trusts the broker's certificate when it has one
	// httpURL is where the broker serves HTTP; srv is nil for a broker
	// run as a process of its own.
	httpURL string
}

func startBroker(t testing.TB, tweak ...func(*config)) *testBroker {
	t.Helper()
	cfg := config{
		Config: service.Config{
			HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), "data"), Domain: "broker.test",
			NATSListen: "127.0.0.1:0", MaxTimeout: 60 * time.Second, IdentityValidity: time.Hour,
			ShutdownTimeout: 10 * time.Second, LogLevel: "debug", LogFormat: "json",
		},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	if err := cfg.resolve(); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	log, err := newLogger(logs, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		t.Fatal(err)
	}
	s, err := service.Start(context.Background(), cfg.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBroker{t: t, srv: s, cfg: cfg, logs: logs, client: http.DefaultClient, httpURL: s.HTTPURL()}
	if cfg.TLSCert != "" {
		pem, err := os.ReadFile(cfg.TLSCert)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tb.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "already shut down") {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	resp := tb.do(http.MethodGet, "/Broker", "", "", nil)
	if err := json.Unmarshal(resp.body, &tb.info); err != nil {
		t.Fatalf("GET /Broker: %v: %s", err, resp.body)
	}
	return tb
}

func (tb *testBroker) url(path string) string { return tb.httpURL + path }

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (tb *testBroker) do(method, path, contentType, accept string, body io.Reader) httpResult {
	tb.t.Helper()
	return tb.doContext(context.Background(), method, path, contentType, accept, body)
}

func (tb *testBroker) doContext(ctx context.Context, method, path, contentType, accept string, body io.Reader) httpResult {
	tb.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, tb.url(path), body)
	if err != nil {
		tb.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := tb.client.Do(req)
	if err != nil {
		tb.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// natsTLS trusts the embedded NATS server's certificate when it has one.
func (tb *testBroker) natsTLS() []nats.Option {
	if tb.cfg.NATSTLSCert == "" {
		return nil
	}
	return []nats.Option{nats.RootCAs(tb.cfg.NATSTLSCert)}
}

// credentials are the broker's NATS credentials, made from its key.
func (tb *testBroker) credentials() *bus.BrokerCredentials {
	tb.t.Helper()
	key, err := identity.ReadKeyFile(tb.cfg.BrokerKeyFile)
	if err != nil {
		tb.t.Fatal(err)
	}
	creds, err := bus.NewBrokerCredentials(key)
	if err != nil {
		tb.t.Fatal(err)
	}
	return creds
}

// brokerConn connects to the broker's NATS with the broker's own
// credentials, as only the broker may.
func (tb *testBroker) brokerConn() *nats.Conn {
	tb.t.Helper()
	nc, err := nats.Connect(tb.info.NATSURL, append(tb.credentials().ConnectOptions(), tb.natsTLS()...)...)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(nc.Close)
	return nc
}

// operator runs an operator command the way a shell would.
func (tb *testBroker) operator(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	args = append(args, "--data-dir", tb.cfg.DataDir)
	err := run(context.Background(), args, &out, &errOut, func(string) string { return "" })
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// applyIdentity applies for an identity with these properties and returns
// its ID and key, without approving it.
func (tb *testBroker) applyIdentity(props ...string) (string, ed25519.PrivateKey) {
	tb.t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		tb.t.Fatal(err)
	}
	var ps []identity.Property
	for i := 0; i+1 < len(props); i += 2 {
		ps = append(ps, identity.Property{Name: props[i], Value: props[i+1]})
	}
	app := identity.NewApplication(tb.info.Domain, ps, key)
	body, _ := json.Marshal(api.ApplicationRequest{
		Properties: ps, PublicKey: identity.EncodePublicKey(app.PublicKey),
		Proof: base64.StdEncoding.EncodeToString(app.Proof),
	})
	resp := tb.do(http.MethodPost, "/Identities", "application/json", "", bytes.NewReader(body))
	if resp.status != http.StatusCreated {
		tb.t.Fatalf("apply: %d %s", resp.status, resp.body)
	}
	var ar api.ApplicationResponse
	if err := json.Unmarshal(resp.body, &ar); err != nil {
		tb.t.Fatal(err)
	}
	return ar.Identity.ID, key
}

func (tb *testBroker) approve(id string) {
	tb.t.Helper()
	// Tests give people several devices on purpose: the operator's check
	// for a second identity of one person has its own test.
	if out, err := tb.operator("identity", "approve", id, "--same-person"); err != nil {
		tb.t.Fatalf("approve %s: %v: %s", id, err, out)
	}
}

// person makes an approved identity for PNR/COUNTRY with a device that
// answers as decide says (nil: never answers).
func (tb *testBroker) person(pnr, country string, decide notifytest.Decider) *notifytest.Device {
	tb.t.Helper()
	d := tb.unstartedPerson(pnr, country, decide)
	d.Start()
	return d
}

func (tb *testBroker) unstartedPerson(pnr, country string, decide notifytest.Decider) *notifytest.Device {
	tb.t.Helper()
	id, key := tb.applyIdentity("FIRST", "Test", "LAST", "Person", "PNR", pnr, "COUNTRY", country)
	tb.approve(id)
	return tb.deviceFor(id, key, decide)
}

func (tb *testBroker) deviceFor(id string, key ed25519.PrivateKey, decide notifytest.Decider) *notifytest.Device {
	tb.t.Helper()
	brokerKey, err := identity.ParsePublicKey(tb.info.PublicKey)
	if err != nil {
		tb.t.Fatal(err)
	}
	opts, err := notify.DeviceConnectOptions(key)
	if err != nil {
		tb.t.Fatal(err)
	}
	nc, err := nats.Connect(tb.info.NATSURL, append(opts, tb.natsTLS()...)...)
	if err != nil {
		tb.t.Fatalf("device connect to %s: %v", tb.info.NATSURL, err)
	}
	tb.t.Cleanup(nc.Close)
	return notifytest.New(tb.t, nc, id, key, brokerKey, decide)
}

// mfaBody is an MFA request in one encoding.
type mfaBody struct {
	PNR, COUNTRY                      string
	Timeout                           int
	Reason                            string
	LegalId, Signature, Issued, Nonce string
	// NumberMatching is an order's field as sent: "" leaves it out; true
	// and false are JSON booleans in JSON, anything else a string.
	NumberMatching string
}

func (m mfaBody) encode(encoding string) (contentType, body string) {
	switch encoding {
	case "xml":
		doc := etree.NewDocument()
		root := doc.CreateElement("MFA")
		root.CreateAttr("xmlns", schema.Namespace)
		root.CreateElement("PNR").SetText(m.PNR)
		root.CreateElement("COUNTRY").SetText(m.COUNTRY)
		root.CreateElement("Timeout").SetText(fmt.Sprint(m.Timeout))
		root.CreateElement("Reason").SetText(m.Reason)
		if m.LegalId != "" {
			root.CreateElement("LegalId").SetText(m.LegalId)
			root.CreateElement("Signature").SetText(m.Signature)
			root.CreateElement("Issued").SetText(m.Issued)
			root.CreateElement("Nonce").SetText(m.Nonce)
		}
		if m.NumberMatching != "" {
			root.CreateElement("NumberMatching").SetText(m.NumberMatching)
		}
		s, _ := doc.WriteToString()
		return "text/xml; charset=utf-8", s
	case "json":
		v := map[string]any{"PNR": m.PNR, "COUNTRY": m.COUNTRY, "Timeout": m.Timeout, "Reason": m.Reason}
		if m.LegalId != "" {
			v["LegalId"], v["Signature"], v["Issued"], v["Nonce"] = m.LegalId, m.Signature, m.Issued, m.Nonce
		}
		switch m.NumberMatching {
		case "":
		case "true", "false":
			v["NumberMatching"] = m.NumberMatching == "true"
		default:
			v["NumberMatching"] = m.NumberMatching
		}
		b, _ := json.Marshal(v)
		return "application/json", string(b)
	case "form":
		v := fmt.Sprintf("PNR=%s&COUNTRY=%s&Timeout=%d&Reason=%s", queryEscape(m.PNR), queryEscape(m.COUNTRY), m.Timeout, queryEscape(m.Reason))
		if m.LegalId != "" {
			v += "&LegalId=" + queryEscape(m.LegalId) + "&Signature=" + queryEscape(m.Signature) +
				"&Issued=" + queryEscape(m.Issued) + "&Nonce=" + queryEscape(m.Nonce)
		}
		if m.NumberMatching != "" {
			v += "&NumberMatching=" + queryEscape(m.NumberMatching)
		}
		return "application/x-www-form-urlencoded", v
	}
	panic("unknown encoding " + encoding)
}

// outcome is an MFA answer read back from any of the formats.
type outcome struct {
	status    int
	code      string
	message   string
	requestID string
	field     string
	evidence  map[string]string
	// order is the Order of an answer about one: Ref, Expires, Hint,
	// NumberMatch.
	order map[string]string
}

// postMFA sends an MFA request and reads the answer in whatever format the
// Accept header asked for, checking the format is the one expected.
func (tb *testBroker) postMFA(ctx context.Context, enc string, m mfaBody, accept string) outcome {
	tb.t.Helper()
	ct, body := m.encode(enc)
	resp := tb.doContext(ctx, http.MethodPost, "/MFA", ct, accept, strings.NewReader(body))
	return tb.parseOutcome(resp, expectedMedia(enc, accept))
}

func expectedMedia(enc, accept string) string {
	switch {
	case accept == "" || accept == "*/*":
		switch enc {
		case "xml":
			return "text/xml"
		default:
			return "application/json"
		}
	case strings.HasPrefix(accept, "text/html"):
		return "text/html"
	}
	return accept
}

func (tb *testBroker) parseOutcome(resp httpResult, media string) outcome {
	tb.t.Helper()
	if got := resp.header.Get("Content-Type"); got != media+"; charset=utf-8" {
		tb.t.Fatalf("Content-Type %q, want %s: %s", got, media, resp.body)
	}
	o := outcome{status: resp.status, evidence: map[string]string{}, order: map[string]string{}}
	switch media {
	case "application/json":
		var v struct {
			Code, Message, RequestId, Field string
			Evidence                        map[string]string
			Order                           map[string]string
		}
		if err := json.Unmarshal(resp.body, &v); err != nil {
			tb.t.Fatalf("JSON answer: %v: %s", err, resp.body)
		}
		o.code, o.message, o.requestID, o.field = v.Code, v.Message, v.RequestId, v.Field
		if v.Evidence != nil {
			o.evidence = v.Evidence
		}
		if v.Order != nil {
			o.order = v.Order
		}
	case "text/xml", "application/xml":
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(resp.body); err != nil {
			tb.t.Fatalf("XML answer: %v: %s", err, resp.body)
		}
		xsd, err := schema.Load()
		if err != nil {
			tb.t.Fatal(err)
		}
		if err := xsd.Validate(doc.Root()); err != nil {
			tb.t.Fatalf("XML answer not valid against MFA.xsd: %v\n%s", err, resp.body)
		}
		text := func(e *etree.Element, name string) string {
			if c := e.SelectElement(name); c != nil {
				return c.Text()
			}
			return ""
		}
		root := doc.Root()
		o.code, o.message, o.requestID, o.field = text(root, "Code"), text(root, "Message"), text(root, "RequestId"), text(root, "Field")
		if ev := root.SelectElement("Evidence"); ev != nil {
			for _, c := range ev.ChildElements() {
				o.evidence[c.Tag] = c.Text()
			}
		}
		if ord := root.SelectElement("Order"); ord != nil {
			for _, c := range ord.ChildElements() {
				o.order[c.Tag] = c.Text()
			}
		}
	case "text/plain":
		for _, line := range strings.Split(strings.TrimSpace(string(resp.body)), "\n") {
			name, value, _ := strings.Cut(line, ": ")
			switch {
			case name == "Code":
				o.code = value
			case name == "Message":
				o.message = value
			case name == "RequestId":
				o.requestID = value
			case name == "Field":
				o.field = value
			case strings.HasPrefix(name, "Evidence."):
				o.evidence[strings.TrimPrefix(name, "Evidence.")] = value
			case strings.HasPrefix(name, "Order."):
				o.order[strings.TrimPrefix(name, "Order.")] = value
			}
		}
	case "text/html":
		page := string(resp.body)
		for _, c := range api.Codes() {
			c := string(c)
			if strings.Contains(page, `<dd class="mono">`+c+`</dd>`) {
				o.code = c
			}
		}
		if o.code == "" {
			tb.t.Fatalf("no outcome code in HTML page:\n%s", page)
		}
	default:
		tb.t.Fatalf("unexpected media %s", media)
	}
	return o
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// barrier proves that no request sent before it pushed anything to d: it
// sends one valid request for d's person (pnr, country) and checks that the
// next prompt d shows is that request's. A stray push, however slow, would
// come first. The barrier request is then left to end (the caller goes
// away if the device does not answer it).
func (tb *testBroker) barrier(d *notifytest.Device, pnr, country string) {
	tb.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ct, body := mfaBody{PNR: pnr, COUNTRY: country, Timeout: 30, Reason: "barrier"}.encode("json")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tb.url("/MFA"), strings.NewReader(body))
	if err != nil {
		tb.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// However it ends, approved or the caller gone: only the push matters.
		if resp, err := tb.client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	p := d.NextPrompt()
	if p.Push.Reason != "barrier" {
		tb.t.Fatalf("a request before the barrier pushed: prompt %s with Reason %q", p.Push.RequestID, p.Push.Reason)
	}
	cancel()
	<-done
}
