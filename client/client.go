package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/legalmfa/mfa/api"
)

// Client talks to one broker. It is safe for concurrent use.
type Client struct {
	base     string // without a trailing slash
	mfaURL   string
	orderURL string
	http     *http.Client
	legalID  string
	key      ed25519.PrivateKey
	retry    RetryPolicy
	clock    Clock
	encoding Encoding
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sends every request with hc: for its transport (TLS,
// HTTP/2, proxies, connection pool). Its Timeout, if any, bounds each
// attempt, so it must leave room for a request's Timeout on /MFA and for
// the long polls of Wait, which the library shortens to fit (at least 1 s
// each). Default: a client of its own on http.DefaultTransport, without a
// Timeout (the context bounds every call).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil *http.Client")
		}
		c.http = hc
		return nil
	}
}

// WithRequester signs every request (MFA and Order) as the requester
// identity legalID, whose Ed25519 key is key: the person is shown who asks,
// marked verified. Each request gets Issued (now, RFC 3339 in UTC), a fresh
// random Nonce and the Signature over its MFA-Request/1 form; collects and
// cancels get the MFA-Order-Access/1 Authorization header a signed order
// needs. The broker accepts Issued within its --signature-window (5 minutes)
// of its own clock, so the machine's clock must be right.
func WithRequester(legalID string, key ed25519.PrivateKey) Option {
	return func(c *Client) error {
		if legalID == "" || strings.ContainsAny(legalID, " \t\r\n") {
			return errors.New("WithRequester: the legal ID must be non-empty without spaces")
		}
		if len(key) != ed25519.PrivateKeySize {
			return fmt.Errorf("WithRequester: an Ed25519 private key has %d bytes, not %d", ed25519.PrivateKeySize, len(key))
		}
		c.legalID, c.key = legalID, key
		return nil
	}
}

// RetryPolicy bounds the retries of collects and cancels (and of POSTs
// whose connection could not be made). A zero field takes its default.
type RetryPolicy struct {
	// MaxAttempts is how many times a call is tried in all; 1 turns
	// retries off. Default 3.
	MaxAttempts int
	// MaxWait is the most a call spends waiting between its attempts, in
	// all; a Retry-After that would go past it ends the retries at once.
	// Default 30 s.
	MaxWait time.Duration
}

// DefaultRetryPolicy is the policy of a Client made without WithRetry.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 3, MaxWait: 30 * time.Second}

// WithRetry sets the retry policy.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxAttempts < 0 || p.MaxWait < 0 {
			return errors.New("WithRetry: negative limits")
		}
		if p.MaxAttempts == 0 {
			p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
		}
		if p.MaxWait == 0 {
			p.MaxWait = DefaultRetryPolicy.MaxWait
		}
		c.retry = p
		return nil
	}
}

// Clock is the time as the client sees it: when it signs (Now) and how it
// waits between attempts (After, like time.After).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WithClock replaces the system clock, for tests.
func WithClock(clock Clock) Option {
	return func(c *Client) error {
		if clock == nil {
			return errors.New("WithClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// Encoding is how requests are encoded; answers are always JSON.
type Encoding int

// The request encodings the broker takes. They behave identically; JSON
// is the default.
const (
	JSON Encoding = iota
	XML
	Form
)

func (e Encoding) String() string {
	switch e {
	case JSON:
		return "json"
	case XML:
		return "xml"
	case Form:
		return "form"
	}
	return "Encoding(" + strconv.Itoa(int(e)) + ")"
}

// WithEncoding sends requests in another encoding than JSON.
func WithEncoding(e Encoding) Option {
	return func(c *Client) error {
		if e != JSON && e != XML && e != Form {
			return fmt.Errorf("WithEncoding: unknown %v", e)
		}
		c.encoding = e
		return nil
	}
}

// New makes a client of the broker at baseURL (http or https, with or
// without a path: "https://mfa.example.com", "https://example.com/mfa").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("broker URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("broker URL %q: want http(s)://host[:port][/path], without query, fragment or user", baseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	c := &Client{
		base: base, mfaURL: base + "/MFA", orderURL: base + "/Orders",
		http: &http.Client{}, retry: DefaultRetryPolicy, clock: systemClock{},
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// BaseURL is the broker's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// call is one HTTP exchange, tried as the retry policy allows.
type call struct {
	method      string
	url         string
	contentType string
	body        []byte
	// auth makes the Authorization header of each attempt, or is nil.
	auth func() string
	// idempotent calls (collect, cancel) are retried on 429, 503 and
	// failed connections; the others only when the connection could not
	// be made.
	idempotent bool
}

// reply is an answer read whole: status, header, and the body decoded if
// it was a broker answer (ans nil otherwise, with why in bad).
type reply struct {
	status int
	header http.Header
	ans    *api.Response
	bad    string
}

// maxAnswer bounds the answers read: the largest the broker gives (an
// approval with a 64 KiB push, base64) is far smaller.
const maxAnswer = 1 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// do runs the call, retrying as the policy allows; the error is a
// transport's or the context's. The reply of the last attempt is returned.
func (c *Client) do(ctx context.Context, k call) (*reply, error) {
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		r, err := c.once(ctx, k)
		if ctx.Err() != nil {
			// No retries once the caller has gone; an answer read whole
			// before it went still counts.
			return r, err
		}
		delay, again := c.retryable(k, attempt, r, err)
		if !again || attempt >= c.retry.MaxAttempts || waited+delay > c.retry.MaxWait {
			return r, err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
			// Waiting would outlive the caller: the last answer is the
			// best there is.
			return r, err
		}
		select {
		case <-c.clock.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		waited += delay
	}
}

// retryable says whether an attempt's outcome may be tried again, and after
// how long.
func (c *Client) retryable(k call, attempt int, r *reply, err error) (time.Duration, bool) {
	if err != nil {
		// A POST is sent again only if it cannot have arrived.
		if k.idempotent || isDialError(err) {
			return backoff(attempt), true
		}
		return 0, false
	}
	if !k.idempotent || (r.status != http.StatusTooManyRequests && r.status != http.StatusServiceUnavailable) {
		return 0, false
	}
	// An order that ended with a 503 outcome (order-lost, shutting-down)
	// answers so for good: its answer describes the order.
	if r.ans != nil && (r.ans.Order != nil || r.ans.Code == api.CodeOrderLost) {
		return 0, false
	}
	if d := retryAfter(r); d > 0 {
		return d, true
	}
	return backoff(attempt), true
}

// backoff is the pause before attempt+1 when the answer named none.
func backoff(attempt int) time.Duration {
	return min(250*time.Millisecond<<(attempt-1), 5*time.Second)
}

// isDialError reports whether err is a failure to connect: the request
// cannot have reached the broker.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// retryAfter reads Retry-After (seconds or an HTTP date), else the
// answer's RetryAfter.
func retryAfter(r *reply) time.Duration {
	if v := r.header.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			return time.Duration(min(n, 86400)) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, time.Until(t))
		}
	}
	if r.ans != nil && r.ans.RetryAfter > 0 {
		return time.Duration(min(r.ans.RetryAfter, 86400)) * time.Second
	}
	return 0
}

// once is one attempt.
func (c *Client) once(ctx context.Context, k call) (*reply, error) {
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, k.url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if k.contentType != "" {
		req.Header.Set("Content-Type", k.contentType)
	}
	if k.auth != nil {
		req.Header.Set("Authorization", k.auth())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxAnswer+1)); err != nil {
		return nil, err
	}
	r := &reply{status: resp.StatusCode, header: resp.Header}
	r.ans, r.bad = decodeAnswer(resp.Header.Get("Content-Type"), buf.Bytes())
	return r, nil
}

// decodeAnswer reads a broker answer: a JSON object with a Code. It
// returns nil and what is wrong otherwise.
func decodeAnswer(contentType string, body []byte) (*api.Response, string) {
	if len(body) > maxAnswer {
		return nil, fmt.Sprintf("the answer is larger than %d bytes", maxAnswer)
	}
	if len(body) == 0 {
		return nil, "the answer has no body"
	}
	media, _, err := mime.ParseMediaType(contentType)
	if err != nil || media != "application/json" {
		return nil, fmt.Sprintf("the answer is %q, not JSON", contentType)
	}
	var ans api.Response
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, "the answer is not the broker's JSON: " + err.Error()
	}
	if ans.Code == "" {
		return nil, "the answer has no Code"
	}
	return &ans, ""
}

// failure is the *Error of an answer that is not the success the caller
// wanted.
func failure(r *reply) *Error {
	if r.ans == nil {
		return &Error{Status: r.status, Header: r.header, Message: r.bad, RetryAfter: retryAfter(r)}
	}
	return &Error{
		Code: r.ans.Code, Status: r.status, Message: r.ans.Message, Field: r.ans.Field,
		RetryAfter: retryAfter(r), RequestID: r.ans.RequestID, Evidence: r.ans.Evidence,
		Order: r.ans.Order, Header: r.header,
	}
}

// unexpected is a *Error for an answer whose Code does not go with its
// status or the call.
func unexpected(r *reply, why string) *Error {
	e := failure(r)
	e.Code, e.Message = "", why
	return e
}

// approval reads an approval, or returns the outcome as a *Error. Only
// HTTP 200 with Code approved approves.
func approval(r *reply) (*Result, error) {
	if r.ans == nil || r.ans.Code != api.CodeApproved {
		if r.ans != nil && r.status/100 == 2 && r.ans.Code.Status()/100 == 2 {
			// order-created where an outcome was due.
			return nil, unexpected(r, fmt.Sprintf("the answer says %s, not an outcome", r.ans.Code))
		}
		return nil, failure(r)
	}
	if r.status != http.StatusOK {
		return nil, unexpected(r, fmt.Sprintf("the answer says approved with HTTP %d; only 200 approves", r.status))
	}
	return &Result{
		RequestID: r.ans.RequestID, Message: r.ans.Message, Evidence: r.ans.Evidence,
		Order: r.ans.Order, Status: r.status, Header: r.header,
	}, nil
}
