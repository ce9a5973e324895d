package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// h2cClient speaks HTTP/2 in clear text with prior knowledge only: a
// broker that did not serve h2c would fail every request.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// TestHTTP2 serves MFA over HTTP/2, in clear text (prior knowledge) and
// over TLS (ALPN): answers are the same as over HTTP/1.1, and many pending
// requests share one connection, each answered on its own.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	t.Run("h2c", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t)
		tb.client = h2cClient()
		checkHTTP2MFA(t, tb)
	})
	t.Run("tls", func(t *testing.T) {
		t.Parallel()
		cert, key := selfSignedCert(t)
		tb := startBroker(t, func(c *config) { c.TLSCert, c.TLSKey = cert, key })
		var p http.Protocols
		p.SetHTTP2(true)
		tb.client = &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{
			RootCAs: tb.client.Transport.(*http.Transport).TLSClientConfig.RootCAs,
		}}}
		checkHTTP2MFA(t, tb)
	})
}

func checkHTTP2MFA(t *testing.T, tb *testBroker) {
	const people = 20
	var (
		mu    sync.Mutex
		conns = map[string]bool{}
	)
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		mu.Lock()
		conns[ci.Conn.LocalAddr().String()] = true
		mu.Unlock()
	}})
	devices := make([]*notifytest.Device, people)
	for i := range devices {
		devices[i] = tb.person(fmt.Sprintf("19800101-%04d", i), "SE", nil)
	}
	type answered struct {
		i int
		o outcome
	}
	outcomes := make(chan answered, people)
	for i := range people {
		go func() {
			ct, body := mfaBody{PNR: fmt.Sprintf("19800101-%04d", i), COUNTRY: "SE", Timeout: 30, Reason: "multiplexed"}.encode("json")
			res := tb.doContext(ctx, http.MethodPost, "/MFA", ct, "", strings.NewReader(body))
			outcomes <- answered{i, tb.parseOutcome(res, "application/json")}
		}()
	}
	// Every request is pending at once before anyone answers.
	prompts := make([]notify.Prompt, people)
	for i, d := range devices {
		prompts[i] = d.NextPrompt()
	}
	poll.Until(t, "all requests pending", func() bool { return tb.srv.Pending() == people })
	// Denials for odd people: each stream gets its own person's answer.
	for i, d := range devices {
		decision := notify.Approve
		if i%2 == 1 {
			decision = notify.Deny
		}
		if err := d.Answer(context.Background(), prompts[i], decision); err != nil {
			t.Fatalf("person %d answers: %v", i, err)
		}
	}
	for range people {
		r := <-outcomes
		want := "approved"
		if r.i%2 == 1 {
			want = "denied"
		}
		if r.o.code != want || r.o.requestID != prompts[r.i].Push.RequestID {
			t.Errorf("person %d: %s for %s, want %s for %s", r.i, r.o.code, r.o.requestID, want, prompts[r.i].Push.RequestID)
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d requests used %d connections, want them multiplexed on 1", people, len(conns))
	}

	// A caller that resets its stream is gone, though its connection stays.
	left := tb.person("19800101-9999", "SE", nil)
	cctx, cancel := context.WithCancel(context.Background())
	errCh := make(chan error, 1)
	go func() {
		ct, body := mfaBody{PNR: "19800101-9999", COUNTRY: "SE", Timeout: 30, Reason: "leaving"}.encode("json")
		req, _ := http.NewRequestWithContext(cctx, http.MethodPost, tb.url("/MFA"), strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := tb.client.Do(req)
		if err == nil {
			if resp.ProtoMajor != 2 {
				err = fmt.Errorf("answered over %s", resp.Proto)
			} else {
				_, err = io.ReadAll(resp.Body)
			}
			resp.Body.Close()
		}
		errCh <- err
	}()
	p := left.NextPrompt()
	cancel()
	if err := <-errCh; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	poll.Until(t, "withdrawal after the stream was reset", func() bool {
		ws := left.WithdrawalsFor(p.Push.RequestID)
		return len(ws) == 1 && ws[0].Why == notify.WhyCancelled
	})
	poll.Until(t, "nothing pending", func() bool { return tb.srv.Pending() == 0 })
}

// TestStalledBodies: many HTTP/2 streams each sending a large body slowly
// cannot make the broker hold their bodies without bound: past the body
// memory budget a request is answered 503 too-busy at once, while the
// ones within it wait for their bodies.
func TestStalledBodies(t *testing.T) {
	t.Parallel()
	const budget, streams, declared = 1 << 20, 40, 65000
	tb := startBroker(t, func(c *config) { c.MaxBodyMemory = budget })
	client := h2cClient()
	type answer struct {
		status int
		code   string
	}
	answers := make(chan answer, streams)
	var writers []*io.PipeWriter
	for range streams {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, err := http.NewRequest(http.MethodPost, tb.url("/MFA"), pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = declared
		req.Header.Set("Content-Type", "application/json")
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				answers <- answer{}
				return
			}
			defer resp.Body.Close()
			var v struct{ Code string }
			body, _ := io.ReadAll(resp.Body)
			if i := strings.Index(string(body), `"Code":"`); i >= 0 {
				v.Code, _, _ = strings.Cut(string(body)[i+8:], `"`)
			}
			answers <- answer{resp.StatusCode, v.Code}
		}()
		go pw.Write([]byte(`{"Reason":"` + strings.Repeat("a", 1000))) // and then nothing
	}
	// Those past the budget are answered while the rest still wait.
	refused := 0
	for refused < streams-budget/declared {
		var a answer
		select {
		case a = <-answers:
		case <-time.After(poll.Patience):
			t.Fatalf("%d of %d streams answered while bodies stall; want all past the budget", refused, streams)
		}
		if a.status != http.StatusServiceUnavailable || a.code != "too-busy" {
			t.Fatalf("while bodies stall: %d %s, want 503 too-busy", a.status, a.code)
		}
		refused++
	}
	for _, w := range writers {
		w.CloseWithError(errors.New("the caller gave up"))
	}
	for range streams - refused {
		<-answers
	}
	if r := tb.do(http.MethodGet, "/readyz", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("after the stalled bodies: %d", r.status)
	}
}
