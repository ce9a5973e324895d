package service_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/notify/notifytest"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// The whole HTTP /MFA round trip in one process: a keep-alive client posts
// a request, the broker decodes it, finds the person, pushes over its
// embedded NATS to a real device that approves with its signature, and
// answers with the evidence. ns/op is the round trip's latency (or, in
// parallel, wall time per request); B/op and allocs/op count the client,
// the broker and the device together. Run with
//
//	go test -run '^$' -bench MFARoundTrip -benchmem ./broker/service/
//
// mfa-bench measures the same with the broker in its own process and
// thousands of devices; this is for quick before/after comparisons.

type benchBroker struct {
	url    string
	client *http.Client
	people []string // PNRs, one approved identity and online device each
}

func startBenchBroker(b *testing.B, people int) *benchBroker {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	dataDir := filepath.Join(b.TempDir(), "data")
	quiet := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	s, err := service.Start(ctx, service.Config{
		HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", DataDir: dataDir,
		Domain: "bench.test", MaxTimeout: time.Minute,
	}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	bb := &benchBroker{url: s.HTTPURL(), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	b.Cleanup(bb.client.CloseIdleConnections)
	var info api.BrokerInfo
	if err := bb.call(http.MethodGet, bb.url+"/Broker", nil, &info); err != nil {
		b.Fatal(err)
	}
	brokerKey, err := identity.ParsePublicKey(info.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	admin := operator.New(filepath.Join(dataDir, "admin.sock"))
	for i := range people {
		pnr := fmt.Sprintf("19791231-%04d", i)
		key, err := identity.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		props := []identity.Property{{Name: "FIRST", Value: "Bench"}, {Name: "PNR", Value: pnr}, {Name: "COUNTRY", Value: "SE"}}
		app := identity.NewApplication(info.Domain, props, key)
		var ar api.ApplicationResponse
		if err := bb.call(http.MethodPost, bb.url+"/Identities", api.ApplicationRequest{
			Properties: props, PublicKey: identity.EncodePublicKey(app.PublicKey),
			Proof: base64.StdEncoding.EncodeToString(app.Proof),
		}, &ar); err != nil {
			b.Fatal(err)
		}
		if _, err := admin.Decide(ctx, ar.Identity.ID, "approve", broker.TransitionRequest{}); err != nil {
			b.Fatalf("approve: %v", err)
		}
		startBenchDevice(b, info.NATSURL, ar.Identity.ID, key, brokerKey)
		bb.people = append(bb.people, pnr)
	}
	return bb
}

// startBenchDevice connects a device that approves every prompt at once.
func startBenchDevice(b *testing.B, url, legalID string, key ed25519.PrivateKey, brokerKey ed25519.PublicKey) {
	b.Helper()
	opts, err := notify.DeviceConnectOptions(key)
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	notifytest.New(b, nc, legalID, key, brokerKey, notifytest.Always(notify.Approve)).Start()
}

func (bb *benchBroker) call(method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := bb.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, data)
	}
	return json.Unmarshal(data, out)
}

// mfaBody is a typical request for pnr in an encoding.
func mfaBody(encoding, pnr string) (contentType string, body []byte) {
	const reason = "Log in to **Example Bank**"
	switch encoding {
	case "xml":
		return "text/xml; charset=utf-8", []byte(`<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>` + pnr + `</PNR><COUNTRY>SE</COUNTRY><Timeout>60</Timeout><Reason>` + reason + `</Reason></MFA>`)
	case "form":
		return "application/x-www-form-urlencoded", []byte("PNR=" + pnr + "&COUNTRY=SE&Timeout=60&Reason=" + strings.NewReplacer(" ", "+", "*", "%2A").Replace(reason))
	}
	return "application/json", []byte(`{"PNR":"` + pnr + `","COUNTRY":"SE","Timeout":60,"Reason":"` + reason + `"}`)
}

// mfa posts one request and fails the benchmark unless it is approved.
func (bb *benchBroker) mfa(b *testing.B, contentType string, body []byte) {
	req, err := http.NewRequest(http.MethodPost, bb.url+"/MFA", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := bb.client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("POST /MFA: %s, %v: %s", resp.Status, err, data)
	}
}

// BenchmarkMFARoundTrip is one request at a time, in each encoding.
func BenchmarkMFARoundTrip(b *testing.B) {
	bb := startBenchBroker(b, 1)
	for _, enc := range []string{"json", "xml", "form"} {
		b.Run(enc, func(b *testing.B) {
			ct, body := mfaBody(enc, bb.people[0])
			b.ReportAllocs()
			for b.Loop() {
				bb.mfa(b, ct, body)
			}
		})
	}
}

// BenchmarkMFARoundTripParallel keeps 32 JSON requests in flight, each for
// a person of its own (a newer request for a person supersedes an older
// one).
func BenchmarkMFARoundTripParallel(b *testing.B) {
	const inFlight = 32
	bb := startBenchBroker(b, inFlight)
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ct, body := mfaBody("json", bb.people[int(next.Add(1)-1)%len(bb.people)])
		for pb.Next() {
			bb.mfa(b, ct, body)
		}
	})
}
