package broker

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/version"
)

// Discovery: what this broker tells other brokers, and OpenCloudMesh
// servers, about itself. Every broker serves it; only LeafUrl depends on
// whether it federates. See the README's "Discovery".

// discoveryCacheControl lets caches keep a discovery document briefly:
// peers fetch it when an operator adds or checks a peer, and a key or leaf
// URL that changed must not be hidden for long.
const discoveryCacheControl = "public, max-age=60"

// mfaCapableBody is the answer of GET /mfa-capable. OCM 1.1 defines only
// the status; a line of text says the same to a person trying it.
const mfaCapableBody = "mfa-capable\n"

// WithFederation says where peers connect their NATS leaf node: a full URL,
// or when url is empty, the host they reached the broker on with this port
// (tls:// when useTLS, else nats-leaf://). With neither, the broker does
// not federate, and its federation document has no LeafUrl.
func WithFederation(url string, port int, useTLS bool) Option {
	return func(b *Broker) { b.leafURL, b.leafPort, b.leafTLS = url, port, useTLS }
}

// handleOCMDiscovery is GET /.well-known/ocm and /ocm-provider: the
// OpenCloudMesh discovery document, saying the broker is MFA-capable in
// both of OCM's spellings, and its key.
func (b *Broker) handleOCMDiscovery(c *gin.Context) {
	base := b.baseURL(c)
	endPoint := base + api.PathOCMEndPoint
	c.Header("Cache-Control", discoveryCacheControl)
	c.JSON(http.StatusOK, api.OCMDiscovery{
		Enabled:    true,
		APIVersion: api.OCMAPIVersion,
		EndPoint:   endPoint,
		Provider:   api.OCMProvider,
		// The broker shares no resources: OCM's schema allows an empty
		// list, and refuses a resource type without protocols.
		ResourceTypes: []api.OCMResourceType{},
		Capabilities:  []string{api.OCMCapabilityMFACapable, api.OCMCapabilityEnforceMFA},
		PublicKey:     &api.OCMPublicKey{KeyID: endPoint + api.OCMKeyFragment, PublicKeyPEM: b.brokerKeyPEM},
	})
}

// handleMFACapable is GET /mfa-capable and /ocm/mfa-capable: OCM 1.1's
// capability check, where 200 means MFA-capable.
func (b *Broker) handleMFACapable(c *gin.Context) {
	c.Header("Cache-Control", discoveryCacheControl)
	c.String(http.StatusOK, mfaCapableBody)
}

// handleFederation is GET /.well-known/mfa-federation: the broker's own
// federation document.
func (b *Broker) handleFederation(c *gin.Context) {
	countries, err := b.countries.get(c.Request.Context(), b.now(), b.registry.Countries, b.log)
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	if countries == nil {
		countries = []string{} // a list, also when empty
	}
	c.Header("Cache-Control", discoveryCacheControl)
	c.JSON(http.StatusOK, api.FederationDocument{
		Domain:     b.domain,
		PublicKey:  identity.EncodePublicKey(b.brokerKey),
		PeerID:     api.PeerID(b.brokerKey),
		LeafURL:    b.leafURLFor(c),
		Countries:  countries,
		Version:    version.String(),
		MFACapable: true,
	})
}

// leafURLFor is the leaf URL peers are told: the configured one, or one
// on the host the caller reached the broker on; "" when the broker does
// not federate.
func (b *Broker) leafURLFor(c *gin.Context) string {
	switch {
	case b.leafURL != "":
		return b.leafURL
	case b.leafPort <= 0:
		return ""
	}
	scheme := api.LeafSchemePlain + "://"
	if b.leafTLS {
		scheme = api.LeafSchemeTLS + "://"
	}
	return scheme + net.JoinHostPort(requestHost(c), strconv.Itoa(b.leafPort))
}

// requestHost is the host, without a port or an IPv6 address's brackets,
// that the caller reached the broker on.
func requestHost(c *gin.Context) string {
	host, _, err := net.SplitHostPort(c.Request.Host)
	if err != nil {
		// No port: a name, an IPv4 address, or a bracketed IPv6 address.
		host = strings.TrimSuffix(strings.TrimPrefix(c.Request.Host, "["), "]")
	}
	return host
}

// Countries are cached: the federation document is public, and without a
// cache anyone could make the store answer a distinct per request.
const (
	// countriesTTL is how old the countries in the federation document
	// may be.
	countriesTTL = time.Minute
	// countriesRetry is how long a failed refresh is not repeated; the
	// last good list, if any, is served meanwhile.
	countriesRetry = 5 * time.Second
	// countriesTimeout bounds one refresh.
	countriesTimeout = 5 * time.Second
)

// countryCache holds the store's answer to Countries for countriesTTL.
// Concurrent requests that find it stale share one refresh.
type countryCache struct {
	flight singleflight.Group

	mu       sync.Mutex
	list     []string
	ok       bool      // list was ever fetched
	at       time.Time // when list was fetched
	err      error     // the last refresh's failure, until one succeeds
	failedAt time.Time
}

// fresh reports whether the list may be served at now without asking the
// store. A clock that went back makes it stale.
func (cc *countryCache) fresh(now time.Time) bool {
	age := now.Sub(cc.at)
	return cc.ok && age >= 0 && age < countriesTTL
}

// get returns the cached list when it is fresh, else refreshes it with
// fetch. A refresh that fails serves the last good list, stale, if there
// is one; fails are not retried for countriesRetry.
func (cc *countryCache) get(ctx context.Context, now time.Time, fetch func(context.Context) ([]string, error), log *slog.Logger) ([]string, error) {
	cc.mu.Lock()
	switch {
	case cc.fresh(now):
		list := cc.list
		cc.mu.Unlock()
		return list, nil
	case cc.err != nil && now.Sub(cc.failedAt) < countriesRetry && now.Sub(cc.failedAt) >= 0:
		list, ok, err := cc.list, cc.ok, cc.err
		cc.mu.Unlock()
		if ok {
			return list, nil
		}
		return nil, err
	}
	cc.mu.Unlock()
	v, err, _ := cc.flight.Do("countries", func() (any, error) {
		// Not the caller's context alone: the callers that share this
		// refresh must not all fail because the first one went away.
		cc.mu.Lock()
		if cc.fresh(now) {
			// A refresh that ended between this caller's look and here.
			defer cc.mu.Unlock()
			return cc.list, nil
		}
		cc.mu.Unlock()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countriesTimeout)
		defer cancel()
		list, err := fetch(fctx)
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if err != nil {
			cc.err, cc.failedAt = err, now
			log.Warn("the countries of the federation document could not be refreshed", "err", err, "serving_stale", cc.ok)
			if cc.ok {
				return cc.list, nil
			}
			return nil, err
		}
		cc.list, cc.ok, cc.at, cc.err = list, true, now, nil
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]string), nil
}
