package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// TestOutcomeMatrix runs every outcome in every encoding with every answer
// format: approve, deny, timeout, unknown person, a signed request and a
// badly signed one.
func TestOutcomeMatrix(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	rpID, rpKey := tb.requester()
	signed := func(m mfaBody) mfaBody {
		m.LegalId = rpID
		sign(rpKey, &m)
		return m
	}
	outcomes := []struct {
		name    string
		decide  func(notify.Prompt) (notify.Decision, bool) // nil: never answers
		person  bool                                        // false: nobody has the PNR
		timeout int
		body    func(m mfaBody) mfaBody
		status  int
		code    string
	}{
		{"approve", notifytest.Always(notify.Approve), true, 30, nil, http.StatusOK, "approved"},
		{"deny", notifytest.Always(notify.Deny), true, 30, nil, http.StatusForbidden, "denied"},
		{"not me", notifytest.Always(notify.NotMe), true, 30, nil, http.StatusForbidden, "denied-not-me"},
		{"timeout", nil, true, 1, nil, http.StatusRequestTimeout, "timeout"},
		{"unknown person", nil, false, 30, nil, http.StatusNotFound, "unknown-person"},
		{"signed", notifytest.Always(notify.Approve), true, 30, signed, http.StatusOK, "approved"},
		{"badly signed", notifytest.Always(notify.Approve), true, 30, func(m mfaBody) mfaBody {
			m = signed(m)
			m.Reason = "tampered"
			return m
		}, http.StatusUnauthorized, "invalid-signature"},
	}
	// One person per case: requests for one person at once supersede each
	// other, which TestNewerRequestSupersedes covers.
	n := 0
	for _, o := range outcomes {
		for _, enc := range allEncodings {
			for _, accept := range allAccepts {
				n++
				pnr := fmt.Sprintf("19010101-%04d", n)
				if o.person {
					tb.person(pnr, "SE", o.decide)
				}
				m := mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: o.timeout, Reason: o.name}
				if o.body != nil {
					m = o.body(m)
				}
				name := o.name + "/" + enc + "/" + strings.SplitN(accept, ",", 2)[0]
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					got := tb.postMFA(context.Background(), enc, m, accept)
					if got.status != o.status || got.code != o.code {
						t.Fatalf("got %d %s (%s), want %d %s", got.status, got.code, got.message, o.status, o.code)
					}
				})
			}
		}
	}
}

// TestExternalNATS runs the broker against a NATS server of its own
// (--nats-url) instead of the embedded one.
func TestExternalNATS(t *testing.T) {
	t.Parallel()
	// The operator configures the external server with what nats-config
	// prints for the broker's key.
	dataDir := filepath.Join(t.TempDir(), "data")
	var conf bytes.Buffer
	if err := run(context.Background(), []string{"nats-config", "--data-dir", dataDir}, &conf, &conf, func(string) string { return "" }); err != nil {
		t.Fatalf("nats-config: %v\n%s", err, conf.String())
	}
	ext := bustest.StartConfigured(t, conf.String())
	extURL := ext.ClientURL()

	tb := startBroker(t, func(c *config) {
		c.DataDir = dataDir
		c.NATSURL = extURL
		c.NATSDeviceURL = extURL
		c.NATSListen = "127.0.0.1:1" // must not be used
	})
	if tb.srv.EmbeddedNATS() {
		t.Fatal("an embedded NATS server was started despite --nats-url")
	}
	if tb.info.NATSURL != extURL {
		t.Fatalf("devices are told %s, want %s", tb.info.NATSURL, extURL)
	}
	tb.person("19020202-0002", "NO", notifytest.Always(notify.Approve))
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19020202-0002", COUNTRY: "NO", Timeout: 30, Reason: "external"}, ""); o.code != "approved" {
		t.Fatalf("over external NATS: %d %s", o.status, o.code)
	}
	if r := tb.do(http.MethodGet, "/readyz", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if nc, err := nats.Connect(extURL, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the external server")
	}
	// NATS going away makes the broker not ready, and pushes fail cleanly.
	ext.Shutdown()
	ext.WaitForShutdown()
	poll.Until(t, "not ready without NATS", func() bool {
		return tb.do(http.MethodGet, "/readyz", "", "", nil).status == http.StatusServiceUnavailable
	})
	o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19020202-0002", COUNTRY: "NO", Timeout: 30, Reason: "no NATS"}, "")
	if o.status != http.StatusServiceUnavailable || o.code != "push-unavailable" {
		t.Fatalf("without NATS: %d %s", o.status, o.code)
	}
}
