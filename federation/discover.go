package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/jsonkeys"
)

// Discovery, the client side: what a broker learns of another before its
// operator approves it as a peer. The documents are the ones the broker
// package serves (see the README's "Discovery"); nothing in them is
// trusted until the operator has compared the key out of band.

// Errors of discovery.
var (
	// ErrNotMFACapable: the broker does not advertise MFA capability, in
	// either of OCM's spellings, or says it is not MFA-capable. A broker
	// does not peer with it.
	ErrNotMFACapable = errors.New("the broker does not advertise MFA capability")
	// ErrBadDiscovery: a discovery document that is malformed, too large,
	// not JSON, or disagrees with itself or with the other document.
	ErrBadDiscovery = errors.New("invalid discovery document")
)

// DiscoverTimeout bounds Discover as a whole, both documents together,
// unless the caller's context ends sooner.
const DiscoverTimeout = 10 * time.Second

// MaxDiscoveryBytes bounds each document. The broker's are under 1 KiB;
// OCM servers' a few KiB.
const MaxDiscoveryBytes = 64 << 10

// maxDiscoveryRedirects bounds the redirects Discover follows, each to the same
// host (http to https, typically).
const maxDiscoveryRedirects = 3

// Discover fetches a broker's OCM discovery document and its federation
// document, checks each and the two against each other, and returns the
// federation document. brokerURL is the broker's public base URL
// (https://broker.example.org, or with a path prefix if it is served
// under one). A broker that does not advertise MFA capability, or has no
// OCM discovery document at all, is refused with an error wrapping
// ErrNotMFACapable; a malformed or inconsistent document with one
// wrapping ErrBadDiscovery.
//
// client is used as given except for redirects: only redirects to the
// same host are followed, so that what is fetched is the broker's own.
// A nil client is http.DefaultClient's transport.
func Discover(ctx context.Context, client *http.Client, brokerURL string) (api.FederationDocument, error) {
	return discoverWithin(ctx, client, brokerURL, DiscoverTimeout)
}

func discoverWithin(ctx context.Context, client *http.Client, brokerURL string, timeout time.Duration) (api.FederationDocument, error) {
	base, err := discoveryBase(brokerURL)
	if err != nil {
		return api.FederationDocument{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := discoveryClient(client)

	// OCM first: a server that is no MFA broker has that document, if
	// any, and not ours; its answer is then ErrNotMFACapable.
	body, err := fetchDocument(ctx, c, base+api.PathOCMDiscovery)
	if errors.Is(err, errDocumentNotFound) {
		// OCM's legacy path; servers must serve both, older ones may not.
		body, err = fetchDocument(ctx, c, base+api.PathOCMProvider)
	}
	if errors.Is(err, errDocumentNotFound) {
		return api.FederationDocument{}, fmt.Errorf("%w: %s serves no OpenCloudMesh discovery document (%s or %s answer 404); is it a broker's base URL?",
			ErrNotMFACapable, base, api.PathOCMDiscovery, api.PathOCMProvider)
	}
	if err != nil {
		return api.FederationDocument{}, err
	}
	_, ocmKey, err := DecodeOCMDiscovery(body)
	if err != nil {
		return api.FederationDocument{}, fmt.Errorf("%s%s: %w", base, api.PathOCMDiscovery, err)
	}

	body, err = fetchDocument(ctx, c, base+api.PathFederation)
	if errors.Is(err, errDocumentNotFound) {
		return api.FederationDocument{}, fmt.Errorf("%w: %s advertises MFA capability but serves no federation document at %s: it is no broker of this kind",
			ErrNotMFACapable, base, api.PathFederation)
	}
	if err != nil {
		return api.FederationDocument{}, err
	}
	doc, key, err := DecodeFederationDocument(body)
	if err != nil {
		return api.FederationDocument{}, fmt.Errorf("%s%s: %w", base, api.PathFederation, err)
	}
	if !key.Equal(ocmKey) {
		return api.FederationDocument{}, fmt.Errorf("%w: %s gives one key in its OCM document (publicKey) and another in its federation document (PublicKey)", ErrBadDiscovery, base)
	}
	return doc, nil
}

// discoveryBase checks a broker's base URL and returns it without a
// trailing slash, ready for paths to be appended.
func discoveryBase(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("the broker URL %q does not parse", s)
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("the broker URL %q must be https:// (or http://)", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("the broker URL %q has no host", s)
	case u.User != nil:
		return "", fmt.Errorf("the broker URL must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("the broker URL %q must be a base URL, without a query or fragment", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// discoveryClient is client (a fresh one when nil) following only
// redirects to the host it was sent to, at most maxDiscoveryRedirects.
func discoveryClient(client *http.Client) *http.Client {
	var c http.Client
	if client != nil {
		c = *client
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxDiscoveryRedirects {
			return fmt.Errorf("more than %d redirects", maxDiscoveryRedirects)
		}
		if req.URL.Hostname() != via[0].URL.Hostname() || (req.URL.Scheme != "https" && req.URL.Scheme != via[0].URL.Scheme) {
			return fmt.Errorf("a redirect to %s://%s, another host than the broker's, is not followed", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
	return &c
}

// errDocumentNotFound is a 404: the document is not there.
var errDocumentNotFound = errors.New("404 not found")

// fetchDocument GETs one document: 200, JSON, at most MaxDiscoveryBytes, read
// before ctx ends.
func fetchDocument(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %w", u, errDocumentNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("%w: GET %s: Content-Type %q, not application/json", ErrBadDiscovery, u, clipForMessage(resp.Header.Get("Content-Type"), 64))
	}
	if resp.ContentLength > MaxDiscoveryBytes {
		return nil, fmt.Errorf("%w: GET %s: %d bytes, more than %d", ErrBadDiscovery, u, resp.ContentLength, MaxDiscoveryBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", u, err)
	}
	if len(body) > MaxDiscoveryBytes {
		return nil, fmt.Errorf("%w: GET %s: more than %d bytes", ErrBadDiscovery, u, MaxDiscoveryBytes)
	}
	return body, nil
}

// DecodeOCMDiscovery reads an OpenCloudMesh discovery document and
// returns it with its public key. It must be one JSON object in UTF-8;
// OCM's fields must be spelled exactly and appear once (encoding/json
// alone would take "PublicKey" for "publicKey", and the last of two);
// fields OCM added since, or will add, are ignored. It must have OCM's
// required fields (enabled, apiVersion, endPoint, resourceTypes) and a
// publicKey holding an Ed25519 key, else ErrBadDiscovery; and be enabled
// and advertise MFA capability in either spelling, else ErrNotMFACapable.
func DecodeOCMDiscovery(b []byte) (api.OCMDiscovery, ed25519.PublicKey, error) {
	var d api.OCMDiscovery
	present, err := decodeDocument(b, &d, true)
	if err != nil {
		return api.OCMDiscovery{}, nil, err
	}
	bad := func(format string, args ...any) (api.OCMDiscovery, ed25519.PublicKey, error) {
		return api.OCMDiscovery{}, nil, fmt.Errorf("%w: %s", ErrBadDiscovery, fmt.Sprintf(format, args...))
	}
	for _, f := range []string{"enabled", "apiVersion", "endPoint", "resourceTypes"} {
		if !present[f] {
			return bad("the OCM document has no %s, which OCM requires", f)
		}
	}
	if !d.Enabled {
		return api.OCMDiscovery{}, nil, fmt.Errorf("%w: its OCM service is not enabled", ErrNotMFACapable)
	}
	if !d.MFACapable() {
		return api.OCMDiscovery{}, nil, fmt.Errorf("%w: its OCM capabilities name neither %s nor %s", ErrNotMFACapable, api.OCMCapabilityMFACapable, api.OCMCapabilityEnforceMFA)
	}
	if !isPrintableASCII(d.APIVersion, 64) {
		return bad("apiVersion is not a version")
	}
	if !isAbsoluteURL(d.EndPoint, "https", "http") {
		return bad("endPoint is not an http(s) URL")
	}
	if d.Provider != "" && !isPrintableASCII(d.Provider, 256) {
		return bad("provider is not a name")
	}
	if d.ResourceTypes == nil {
		return bad("resourceTypes is not a list")
	}
	for i, rt := range d.ResourceTypes {
		if rt.Name == "" || rt.ShareTypes == nil || rt.Protocols == nil {
			return bad("resourceTypes[%d] lacks a name, shareTypes or protocols", i)
		}
	}
	if d.PublicKey == nil {
		return bad("the OCM document has no publicKey: nothing ties it to the broker's key")
	}
	if !isAbsoluteURL(d.PublicKey.KeyID, "") {
		return bad("publicKey.keyId is not a URI")
	}
	key, err := api.ParsePublicKeyPEM(d.PublicKey.PublicKeyPEM)
	if err != nil {
		return bad("%v", err)
	}
	return d, key, nil
}

// DecodeFederationDocument reads a broker's federation document and
// returns it with its key. It must be one JSON object in UTF-8 with
// exactly the fields of api.FederationDocument, each once (LeafUrl may be
// absent: the broker then listens for no peers); a Domain that is a domain
// name; a PublicKey holding an Ed25519 key and a PeerId that is its
// api.PeerID; a LeafUrl, if any, that api.CheckLeafURL accepts; Countries
// that are ISO 3166-1 alpha-2 codes in ascending order, each once; and a
// Version. Else ErrBadDiscovery; a document with MfaCapable false is
// ErrNotMFACapable.
func DecodeFederationDocument(b []byte) (api.FederationDocument, ed25519.PublicKey, error) {
	var d api.FederationDocument
	present, err := decodeDocument(b, &d, false)
	if err != nil {
		return api.FederationDocument{}, nil, err
	}
	bad := func(format string, args ...any) (api.FederationDocument, ed25519.PublicKey, error) {
		return api.FederationDocument{}, nil, fmt.Errorf("%w: %s", ErrBadDiscovery, fmt.Sprintf(format, args...))
	}
	for _, f := range []string{"Domain", "PublicKey", "PeerId", "Countries", "Version", "MfaCapable"} {
		if !present[f] {
			return bad("the federation document has no %s", f)
		}
	}
	if !d.MFACapable {
		return api.FederationDocument{}, nil, fmt.Errorf("%w: its federation document says MfaCapable false", ErrNotMFACapable)
	}
	if !isDomainName(d.Domain) {
		return bad("Domain is not a domain name")
	}
	key, err := identity.ParsePublicKey(d.PublicKey)
	if err != nil {
		return bad("PublicKey: %v", err)
	}
	if d.PeerID != api.PeerID(key) {
		return bad("PeerId is not the peer ID of PublicKey")
	}
	if present["LeafUrl"] {
		if err := api.CheckLeafURL(d.LeafURL); err != nil {
			return bad("LeafUrl: %v", err)
		}
	}
	if d.Countries == nil {
		return bad("Countries is not a list")
	}
	for i, c := range d.Countries {
		if !identity.IsCountryCode(c) {
			return bad("Countries[%d] is not an ISO 3166-1 alpha-2 code", i)
		}
		if i > 0 && c <= d.Countries[i-1] {
			return bad("Countries are not in ascending order, each once")
		}
	}
	if !isPrintableASCII(d.Version, 128) {
		return bad("Version is not a version")
	}
	return d, key, nil
}

// decodeDocument decodes one JSON object in UTF-8 into v (a pointer to a
// struct), holding its keys to v's fields as jsonkeys.Check does, and returns
// the top-level keys it has.
func decodeDocument(b []byte, v any, unknownOK bool) (map[string]bool, error) {
	if len(b) > MaxDiscoveryBytes {
		return nil, fmt.Errorf("%w: the document has more than %d bytes", ErrBadDiscovery, MaxDiscoveryBytes)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: the document is not UTF-8", ErrBadDiscovery)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: the document is not JSON, or has data after it", ErrBadDiscovery)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	present, err := jsonkeys.Check(dec, reflect.TypeOf(v).Elem(), unknownOK, "the document")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDiscovery, err)
	}
	if present == nil {
		return nil, fmt.Errorf("%w: the document is not a JSON object", ErrBadDiscovery)
	}
	if err := json.Unmarshal(b, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("%w: field %s must be JSON %s", ErrBadDiscovery, typeErr.Field, typeErr.Type.Kind())
		}
		return nil, fmt.Errorf("%w: %w", ErrBadDiscovery, err)
	}
	return present, nil
}

// isPrintableASCII reports whether s is 1 to max bytes of printable ASCII.
func isPrintableASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isAbsoluteURL reports whether s is an absolute URL with a host, of one of
// schemes ("" for any), of at most 2,048 bytes of isPrintableASCII ASCII.
func isAbsoluteURL(s string, schemes ...string) bool {
	if !isPrintableASCII(s, 2048) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return false
	}
	return slices.Contains(schemes, "") || slices.Contains(schemes, u.Scheme)
}

// isDomainName reports whether s is a domain name: dot-separated labels of
// letters, digits and inner hyphens, each 1 to 63 characters, at most
// 253 in all ("localhost" is one).
func isDomainName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func clipForMessage(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
