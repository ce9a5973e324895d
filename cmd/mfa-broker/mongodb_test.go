package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// TestMFAOnMongoDB runs the broker on MongoDB (a real mongod when
// MFA_TEST_MONGODB_URI is set, FerretDB otherwise): a device applies, the
// operator approves, and the person approves a push; a signed request too.
func TestMFAOnMongoDB(t *testing.T) {
	t.Parallel()
	uri := mongotest.Start(t)
	tb := startBroker(t, func(c *config) { c.MongoDBURI = uri; c.MongoDBTimeout = 30 * time.Second })
	d := tb.person("19900101-0001", "SE", notifytest.Always(notify.Approve))
	o := tb.postMFA(context.Background(), "xml", mfaBody{PNR: "19900101-0001", COUNTRY: "SE", Timeout: 30, Reason: "On MongoDB"}, "")
	if o.code != "approved" {
		t.Fatalf("MFA on MongoDB: %d %s %s", o.status, o.code, o.message)
	}
	verifyEvidence(t, tb, o, d, "On MongoDB", notify.Approve)
	rpID, rpKey := tb.requester()
	m := mfaBody{PNR: "19900101-0001", COUNTRY: "SE", Timeout: 30, Reason: "signed", LegalId: rpID}
	sign(rpKey, &m)
	if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "approved" {
		t.Fatalf("signed MFA on MongoDB: %s %s", o.code, o.message)
	}
	out, err := tb.operator("identity", "list", "--state", "Approved")
	if err != nil || !strings.Contains(out, d.LegalID) || !strings.Contains(out, rpID) {
		t.Fatalf("operator list on MongoDB: %v\n%s", err, out)
	}
	if !strings.Contains(tb.logs.String(), `"store":"mongodb"`) {
		t.Fatal("the broker does not say it runs on MongoDB")
	}
}

// TestMongoDBOutage stops MongoDB under a running broker: MFA requests get
// 503 store-unavailable within a bounded time, the broker stays up and
// reports not ready, the outage is logged once, and the broker recovers by
// itself when MongoDB returns.
func TestMongoDBOutage(t *testing.T) {
	t.Parallel()
	srv := mongotest.StartPrivate(t)
	tb := startBroker(t, func(c *config) { c.MongoDBURI = srv.URI("mfa"); c.MongoDBTimeout = 2 * time.Second })
	tb.person("19900101-0002", "SE", notifytest.Always(notify.Approve))
	m := mfaBody{PNR: "19900101-0002", COUNTRY: "SE", Timeout: 30, Reason: "before"}
	if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "approved" {
		t.Fatalf("before the outage: %s", o.code)
	}

	srv.Stop()
	for i := 0; i < 10; i++ {
		start := time.Now()
		o := tb.postMFA(context.Background(), "json", m, "")
		if o.status != http.StatusServiceUnavailable || o.code != "store-unavailable" {
			t.Fatalf("during the outage: %d %s", o.status, o.code)
		}
		limit := 5 * time.Second
		if i > 0 {
			limit = time.Second // known down: fail fast
		}
		if took := time.Since(start); took > limit {
			t.Fatalf("request %d during the outage took %s", i, took)
		}
	}
	if r := tb.do(http.MethodGet, "/readyz", "", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the outage: %d %s", r.status, r.body)
	}
	if r := tb.do(http.MethodGet, "/healthz", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("healthz during the outage: %d", r.status)
	}
	if n := strings.Count(tb.logs.String(), "MongoDB unavailable"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	srv.Restart()
	poll.Until(t, "ready again", func() bool {
		return tb.do(http.MethodGet, "/readyz", "", "", nil).status == http.StatusOK
	})
	m.Reason = "after"
	if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "approved" {
		t.Fatalf("after the outage: %s %s", o.code, o.message)
	}
	if !strings.Contains(tb.logs.String(), "MongoDB available again") {
		t.Fatal("recovery not logged")
	}
}
