package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/client"
)

// TestEveryCodeHasASentinel: every outcome code but the successes and a
// pending order's has a sentinel, which a *Error of that code matches and
// no other code's does.
func TestEveryCodeHasASentinel(t *testing.T) {
	t.Parallel()
	none := map[api.Code]bool{api.CodeApproved: true, api.CodeOrderCreated: true, api.CodePending: true}
	seen := map[error]api.Code{}
	for _, code := range api.Codes() {
		s := client.Sentinel(code)
		if none[code] {
			if s != nil {
				t.Errorf("%s has a sentinel", code)
			}
			continue
		}
		if s == nil {
			t.Errorf("%s has no sentinel", code)
			continue
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("%s and %s share a sentinel", code, prev)
		}
		seen[s] = code
		err := error(&client.Error{Code: code, Status: code.Status()})
		if !errors.Is(err, s) || errors.Is(err, client.ErrUnexpectedResponse) {
			t.Errorf("a *Error of %s does not match its sentinel only", code)
		}
		if !strings.Contains(s.Error(), string(code)) || !strings.Contains(err.Error(), string(code)) {
			t.Errorf("%s: messages %q and %q do not name the code", code, s.Error(), err.Error())
		}
	}
	for s, code := range seen {
		for _, other := range api.Codes() {
			if other != code && errors.Is(&client.Error{Code: other}, s) {
				t.Errorf("a *Error of %s matches the sentinel of %s", other, code)
			}
		}
	}
	// The named ones are the ones Sentinel gives.
	for code, s := range map[api.Code]error{
		api.CodeDenied: client.ErrDenied, api.CodeDeniedNotMe: client.ErrDeniedNotMe, api.CodeWrongNumber: client.ErrWrongNumber,
		api.CodeTimeout: client.ErrTimeout, api.CodeSuperseded: client.ErrSuperseded, api.CodeCancelled: client.ErrCancelled,
		api.CodeOrderLost: client.ErrOrderLost, api.CodeUnknownPerson: client.ErrUnknownPerson, api.CodeBlocked: client.ErrBlocked,
		api.CodeRateLimited: client.ErrRateLimited, api.CodeTooBusy: client.ErrTooBusy, api.CodeInternalError: client.ErrInternalError,
	} {
		if client.Sentinel(code) != s {
			t.Errorf("Sentinel(%s) is not the named one", code)
		}
	}
	if client.Sentinel("no-such-code") != nil {
		t.Error("an unknown code has a sentinel")
	}
}

// TestUnexpectedAnswers: an answer that is not the broker's is a clear
// error (ErrUnexpectedResponse, with the HTTP status), never an approval
// and never a panic; an approval needs both 200 and Code approved, and a
// 200 that says anything else is that outcome's error.
func TestUnexpectedAnswers(t *testing.T) {
	t.Parallel()
	const jsonType = "application/json; charset=utf-8"
	for _, c := range []struct {
		name        string
		status      int
		contentType string
		body        string
		want        error
	}{
		{"proxy error page", 502, "text/html", "<html><body>Bad Gateway</body></html>", client.ErrUnexpectedResponse},
		{"empty 200", 200, jsonType, "", client.ErrUnexpectedResponse},
		{"approved as text", 200, "text/plain", "Code: approved\n", client.ErrUnexpectedResponse},
		{"approved without content type", 200, "", `{"Code":"approved"}`, client.ErrUnexpectedResponse},
		{"truncated JSON", 200, jsonType, `{"Code":"approved","Evidence":{"Sign`, client.ErrUnexpectedResponse},
		{"JSON array", 200, jsonType, `["approved"]`, client.ErrUnexpectedResponse},
		{"JSON without Code", 200, jsonType, `{"Message":"ok"}`, client.ErrUnexpectedResponse},
		{"wrong type", 200, jsonType, `{"Code":1}`, client.ErrUnexpectedResponse},
		{"bad base64 evidence", 200, jsonType, `{"Code":"approved","Evidence":{"Signature":"!!"}}`, client.ErrUnexpectedResponse},
		{"approved with 201", 201, jsonType, `{"Code":"approved","Message":"m"}`, client.ErrUnexpectedResponse},
		{"approved with 403", 403, jsonType, `{"Code":"approved","Message":"m"}`, client.ErrUnexpectedResponse},
		{"order-created on /MFA", 201, jsonType, `{"Code":"order-created","Message":"m"}`, client.ErrUnexpectedResponse},
		{"huge answer", 200, jsonType, `{"Code":"approved","Message":"` + strings.Repeat("x", 2<<20) + `"}`, client.ErrUnexpectedResponse},
		{"denied with 200", 200, jsonType, `{"Code":"denied","Message":"m"}`, client.ErrDenied},
		{"future code", 409, jsonType, `{"Code":"something-new","Message":"m"}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = []string{c.contentType}
				w.WriteHeader(c.status)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			res, err := newClient(t, srv.URL).MFA(context.Background(), request("19791231-1234"))
			var e *client.Error
			if res != nil || !errors.As(err, &e) {
				t.Fatalf("MFA = %v, %v", res, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%v, want %v", err, c.want)
			}
			if e.Status != c.status || e.Message == "" {
				t.Errorf("status %d, message %q", e.Status, e.Message)
			}
			if c.want == nil && (e.Code != "something-new" || errors.Is(err, client.ErrUnexpectedResponse)) {
				t.Errorf("a code this version does not know: %+v", e)
			}
		})
	}
}

// TestInvalidRequestsNotSent: what cannot be right is refused before
// anything is sent.
func TestInvalidRequestsNotSent(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := newClient(t, srv.URL)
	ctx := context.Background()
	req := func(edit func(*client.Request)) client.Request {
		r := request("19791231-1234")
		edit(&r)
		return r
	}
	for name, call := range map[string]func() error{
		"Timeout 1.5 s": func() error {
			_, err := c.MFA(ctx, req(func(r *client.Request) { r.Timeout = 1500 * time.Millisecond }))
			return err
		},
		"Timeout 0": func() error {
			_, err := c.Order(ctx, req(func(r *client.Request) { r.Timeout = 0 }))
			return err
		},
		"NumberMatching on MFA": func() error {
			_, err := c.MFA(ctx, req(func(r *client.Request) { r.NumberMatching = new(true) }))
			return err
		},
		"collect of a malformed reference": func() error {
			_, err := c.Collect(ctx, "../MFA", 0)
			return err
		},
		"cancel of a malformed reference": func() error { return c.Cancel(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAA") },
		"wait for a malformed reference": func() error {
			_, err := c.Wait(ctx, "x?y")
			return err
		},
	} {
		if err := call(); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// TestNew: the base URL must be an http(s) URL without query or
// fragment; a trailing slash does not matter.
func TestNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "localhost:8080", "ftp://x", "http://", "http://x/?a=b", "http://x/#f", "http://u:p@x/"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{"http://x:8080/": "http://x:8080", "https://x/mfa/": "https://x/mfa"} {
		c, err := client.New(in)
		if err != nil || c.BaseURL() != want {
			t.Errorf("New(%q): %v, %v", in, c, err)
		}
	}
	for _, o := range []client.Option{
		client.WithHTTPClient(nil), client.WithRequester("", nil), client.WithRequester("a@b", make([]byte, 3)),
		client.WithRetry(client.RetryPolicy{MaxAttempts: -1}), client.WithClock(nil), client.WithEncoding(7),
	} {
		if _, err := client.New("http://x", o); err == nil {
			t.Errorf("an invalid option was accepted")
		}
	}
}

// TestLinksNoServerCode: the library is client code. It shares the wire
// types (package api) with the broker and must link neither the HTTP
// framework, nor the NATS server, nor any of the broker's own server
// packages: a relying party's service has no use for them, and their
// weight and attack surface would come along.
func TestLinksNoServerCode(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/legalmfa/mfa/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	server := []string{
		"github.com/gin-gonic/gin", "github.com/nats-io/nats-server/", "github.com/nats-io/nats.go",
		"github.com/legalmfa/mfa/broker", "github.com/legalmfa/mfa/bus", "github.com/legalmfa/mfa/encoding",
		"github.com/legalmfa/mfa/schema", "github.com/legalmfa/mfa/notify", "github.com/legalmfa/mfa/guard",
		"github.com/legalmfa/mfa/order",
		"github.com/legalmfa/mfa/identity/boltstore", "github.com/legalmfa/mfa/identity/mongostore",
		"go.mongodb.org/", "go.etcd.io/bbolt",
	}
	found := false
	for _, dep := range deps {
		found = found || dep == "github.com/legalmfa/mfa/api"
		for _, s := range server {
			if dep == s || strings.HasPrefix(dep, strings.TrimSuffix(s, "/")+"/") || strings.HasSuffix(s, "/") && strings.HasPrefix(dep, s) {
				t.Errorf("the client library links %s", dep)
			}
		}
	}
	if !found {
		t.Errorf("go list -deps does not list package api: %q", out)
	}
}
