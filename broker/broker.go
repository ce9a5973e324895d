// Package broker is the HTTP face of the MFA broker and the MFA flow behind
// it: decode the request, look the person up, verify the requester, push to
// the person's devices, await the answer, and respond in the format asked.
package broker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legalmfa/mfa/api"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/schema"
	"github.com/legalmfa/mfa/version"
)

// Asker delivers a question to devices and returns the first valid answer.
// notify.Pusher satisfies it.
type Asker interface {
	Ask(ctx context.Context, q notify.Question) (notify.Outcome, error)
}

// Registry is what the broker needs of the identity store: the MFA
// lookup, requesters' keys, devices' applications, operators' decisions,
// and the countries its federation document names.
type Registry interface {
	FindValid(ctx context.Context, pnr, country string, at time.Time) ([]identity.Identity, error)
	FindPerson(ctx context.Context, pnr, country string) ([]identity.Identity, error)
	Get(ctx context.Context, id string) (identity.Identity, error)
	Create(ctx context.Context, id identity.Identity) error
	List(ctx context.Context, q identity.Query) ([]identity.Identity, error)
	Transition(ctx context.Context, id string, c identity.Change) (identity.Identity, error)
	Countries(ctx context.Context) ([]string, error)
	Ping(ctx context.Context) error
}

// Broker serves the MFA resource, the identity endpoints for devices, and
// the operator's endpoints.
type Broker struct {
	registry  Registry
	asker     Asker
	decoder   *encoding.Decoder
	pages     *encoding.Pages
	brokerKey ed25519.PublicKey
	// brokerKeyPEM is brokerKey as the OCM discovery document gives it.
	brokerKeyPEM string
	log          *slog.Logger
	obs          Observer
	now          func() time.Time
	pnrHash      *pnrHasher

	domain         string
	publicURL      string
	deviceNATSURL  string
	deviceNATSPort int
	deviceNATSTLS  bool
	// leafURL, leafPort and leafTLS say where peers connect (WithFederation).
	leafURL          string
	leafPort         int
	leafTLS          bool
	countries        countryCache
	identityValidity time.Duration
	trustedProxies   []string
	readiness        []func(context.Context) error

	callerLimit         *keyedLimiter
	identityLimit       *keyedLimiter
	signedIdentityLimit *keyedLimiter
	applyLimit          *keyedLimiter
	applicationsClosed  bool
	bodies              *semaphore.Weighted
	blocks              Blocklist
	notMeBlock          time.Duration
	replays             ReplayGuard
	signatureWindow     time.Duration
	maxPending          int

	fed              Federated
	onIdentityChange func(context.Context, identity.Identity)
	peerAdmin        PeerAdmin
	orders           OrderBook
	opener           Opener
	numberMatching   NumberMatching
	auditor          Auditor
	// running counts the orders whose wait runs here; stopping ends when
	// shutdown begins, and with it the collects waiting here.
	running    sync.WaitGroup
	stopping   context.Context
	beginClose context.CancelFunc

	shuttingDown atomic.Bool
}

// Option configures a Broker.
type Option func(*Broker)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(b *Broker) { b.log = l } }

// WithDomain sets the broker's domain, which names its identities.
func WithDomain(d string) Option { return func(b *Broker) { b.domain = d } }

// WithPublicURL is the broker's external base URL, used in links such as
// where to fetch an identity's key. Without it, links follow the request's
// Host header.
func WithPublicURL(u string) Option { return func(b *Broker) { b.publicURL = u } }

// WithDeviceNATS tells devices where to connect: a full URL, or when url is
// empty, the host they reached the broker on with this port (tls:// when
// useTLS).
func WithDeviceNATS(url string, port int, useTLS bool) Option {
	return func(b *Broker) { b.deviceNATSURL, b.deviceNATSPort, b.deviceNATSTLS = url, port, useTLS }
}

// WithIdentityValidity is how long an approval lasts unless the operator
// says otherwise.
func WithIdentityValidity(d time.Duration) Option { return func(b *Broker) { b.identityValidity = d } }

// WithTrustedProxies lists the proxies whose X-Forwarded-For is believed
// when showing a caller's IP address. By default none is.
func WithTrustedProxies(cidrs []string) Option { return func(b *Broker) { b.trustedProxies = cidrs } }

// WithReadinessCheck adds a check that /readyz runs.
func WithReadinessCheck(check func(context.Context) error) Option {
	return func(b *Broker) { b.readiness = append(b.readiness, check) }
}

// WithPNRHashKey sets the key of the hash that lets log lines about one
// person be correlated without the personal number in them.
func WithPNRHashKey(key []byte) Option { return func(b *Broker) { b.pnrHash = newPNRHasher(key) } }

// WithClock replaces time.Now, for tests of validity windows; nil keeps
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(b *Broker) {
		if now != nil {
			b.now = now
		}
	}
}

// New assembles a broker. brokerKey is the public half of the key that
// signs pushes; devices learn it from GET /Broker.
func New(registry Registry, asker Asker, decoder *encoding.Decoder, brokerKey ed25519.PublicKey, opts ...Option) (*Broker, error) {
	pages, err := encoding.NewPages()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		registry: registry, asker: asker, decoder: decoder, pages: pages,
		brokerKey: brokerKey, log: slog.Default(), obs: nopObserver{}, now: time.Now,
	}
	b.stopping, b.beginClose = context.WithCancel(context.Background())
	for _, o := range opts {
		o(b)
	}
	// No defaults here: service.DefaultConfig is where they are.
	if b.domain == "" || b.identityValidity <= 0 {
		return nil, errors.New("broker: a domain and a positive identity validity are required (WithDomain, WithIdentityValidity)")
	}
	if b.pnrHash == nil {
		return nil, errors.New("broker: a PNR hash key is required (WithPNRHashKey)")
	}
	if b.replays == nil {
		return nil, errors.New("broker: a replay guard is required (WithReplayGuard): signed requests must not be replayable")
	}
	if b.brokerKeyPEM, err = api.EncodePublicKeyPEM(brokerKey); err != nil {
		return nil, fmt.Errorf("broker: the broker key: %w", err)
	}
	b.readiness = append(b.readiness, registry.Ping)
	return b, nil
}

// Handler is the public HTTP interface.
func (b *Broker) Handler() (http.Handler, error) {
	r, err := b.router()
	if err != nil {
		return nil, err
	}
	return closeAfterChunked(r), nil
}

// router routes the public HTTP interface; Routes lists its routes.
func (b *Broker) router() (*gin.Engine, error) {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// A trailing slash is a 404, not a redirect: gin builds the redirect's
	// target from X-Forwarded-Prefix, which anyone can send.
	r.RedirectTrailingSlash = false
	r.ContextWithFallback = true
	if err := r.SetTrustedProxies(b.trustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	r.Use(b.recoverPanic, b.publicAccessLog)
	// Every resource that answers GET answers HEAD (RFC 9110, 9.3.2):
	// net/http sends the headers and drops the body.
	get := func(path string, h gin.HandlerFunc) {
		r.GET(path, h)
		r.HEAD(path, h)
	}
	get("/", b.handleIndex)
	get("/MFA", b.handleForm)
	r.POST("/MFA", b.handleMFA)
	get("/Schema/MFA.xsd", b.handleSchema)
	get("/openapi.json", b.handleOpenAPI)
	get("/Broker", b.handleBrokerInfo)
	r.POST("/Identities", b.handleApply)
	get("/Identities/:id", b.handlePublicIdentity)
	// Discovery, for other brokers and OpenCloudMesh servers (discovery.go).
	get(api.PathOCMDiscovery, b.handleOCMDiscovery)
	get(api.PathOCMProvider, b.handleOCMDiscovery)
	get(api.PathMFACapable, b.handleMFACapable)
	get(api.PathOCMEndPoint+api.PathMFACapable, b.handleMFACapable)
	get(api.PathFederation, b.handleFederation)
	if b.orders != nil {
		r.POST("/Orders", b.handleOrder)
		get("/Orders/:ref", b.handleCollect)
		r.DELETE("/Orders/:ref", b.handleCancel)
	}
	get("/healthz", b.handleHealth)
	get("/readyz", b.handleReady)
	r.NoRoute(func(c *gin.Context) {
		b.fail(c, "", &api.Error{Code: api.CodeNotFound, Message: "there is no resource at " + quotePath(c.Request.URL.Path)})
	})
	r.NoMethod(func(c *gin.Context) {
		b.fail(c, "", &api.Error{Code: api.CodeMethodNotAllowed, Message: "method " + c.Request.Method + " is not allowed on " + quotePath(c.Request.URL.Path)})
	})
	return r, nil
}

// closeAfterChunked closes an HTTP/1.1 connection after answering a
// request whose body came chunked. RFC 9112 (6.3) requires closing after a
// request with both Transfer-Encoding and Content-Length, a smuggling
// attempt; net/http drops the Content-Length before a handler sees the
// request, so every chunked request's connection is closed. Clients send
// bodies this small with a Content-Length, and lose nothing.
func closeAfterChunked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// BeginShutdown makes new MFA requests and orders fail fast with 503
// while pending ones are answered, and ends the collects waiting here.
func (b *Broker) BeginShutdown() {
	b.shuttingDown.Store(true)
	b.beginClose()
}

// WaitOrders waits until every order running here has recorded its
// outcome (the pusher's Close ends them), or ctx ends.
func (b *Broker) WaitOrders(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		b.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("orders still recording their outcome: %w", ctx.Err())
	}
}

func (b *Broker) handleSchema(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "application/xml; charset=utf-8", schema.XSD())
}

// handleIndex points a visitor who came to the root where to go: a page
// for browsers, the same in plain text for anyone else.
func (b *Broker) handleIndex(c *gin.Context) {
	if mt, _ := encoding.Negotiate(c.GetHeader("Accept"), encoding.MediaText); mt != encoding.MediaHTML {
		c.Header("Cache-Control", "no-store")
		c.String(http.StatusOK, "This is a legal-identity MFA broker (version %s).\n"+
			"POST /MFA asks a person to approve a request; GET /MFA in a browser is a form to try it.\n"+
			"POST /Orders does the same and answers at once; GET /Orders/{Ref} collects the outcome.\n"+
			"GET /Schema/MFA.xsd is the XML schema, GET /openapi.json the whole API (OpenAPI 3.1), GET /Broker what devices need.\n"+
			"The README documents the API.\n", version.String())
		return
	}
	page, err := b.pages.Index(version.String())
	if err != nil {
		b.fail(c, encoding.MediaHTML, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", encoding.ContentSecurityPolicy)
	c.Data(http.StatusOK, "text/html; charset=utf-8", page)
}

func (b *Broker) handleHealth(c *gin.Context) {
	c.String(http.StatusOK, "ok\n")
}

func (b *Broker) handleReady(c *gin.Context) {
	if b.shuttingDown.Load() {
		c.String(http.StatusServiceUnavailable, "shutting down\n")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	for _, check := range b.readiness {
		if err := check(ctx); err != nil {
			c.String(http.StatusServiceUnavailable, "not ready: %v\n", err)
			return
		}
	}
	c.String(http.StatusOK, "ready\n")
}
