package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"

	"github.com/legalmfa/mfa/api"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/version"
)

// maxApplicationBytes bounds an identity application: the properties'
// limit plus room for keys and JSON syntax.
const maxApplicationBytes = identity.MaxPropertiesLength*2 + 4096

func (b *Broker) publicIdentity(id identity.Identity) api.PublicIdentity {
	return api.PublicIdentity{
		ID: id.ID, State: string(id.State), Algorithm: "Ed25519",
		PublicKey: identity.EncodePublicKey(id.PublicKey),
		ValidFrom: id.From, ValidTo: id.To, Broker: b.domain,
	}
}

func (b *Broker) brokerInfo(c *gin.Context) api.BrokerInfo {
	natsURL := b.deviceNATSURL
	if natsURL == "" {
		host := requestHost(c)
		scheme := "nats://"
		if b.deviceNATSTLS {
			scheme = "tls://"
		}
		natsURL = scheme + net.JoinHostPort(host, strconv.Itoa(b.deviceNATSPort))
	}
	return api.BrokerInfo{
		Domain: b.domain, PublicKey: identity.EncodePublicKey(b.brokerKey), NATSURL: natsURL,
		MaxTimeout: b.decoder.MaxTimeout(), Schema: b.baseURL(c) + "/Schema/MFA.xsd", Version: version.String(),
	}
}

func (b *Broker) handleBrokerInfo(c *gin.Context) {
	c.JSON(http.StatusOK, b.brokerInfo(c))
}

// handleApply is POST /Identities: a device applies for a legal identity
// with its properties and public key, proving it holds the private key.
// The identity starts out Created; an operator approves it.
func (b *Broker) handleApply(c *gin.Context) {
	if err := requireJSON(c); err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	if b.applicationsClosed {
		b.fail(c, encoding.MediaJSON, &api.Error{Code: api.CodeApplicationsClosed, Message: "this broker takes no applications: identities are enrolled by its operator"})
		return
	}
	// Applications are open to anyone, so they have a budget of their own:
	// a flood of them cannot fill the store, nor spend MFA requests'.
	if wait := b.applyLimit.take(b.now(), "ip:"+c.ClientIP()); wait > 0 {
		b.obs.RateLimited(budgetApply)
		b.fail(c, encoding.MediaJSON, rateLimited("from this address", wait))
		return
	}
	var req api.ApplicationRequest
	if err := decodeStrictJSON(c, maxApplicationBytes, &req); err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	pub, err := identity.ParsePublicKey(req.PublicKey)
	if err != nil {
		b.fail(c, encoding.MediaJSON, fieldError("PublicKey", err.Error()))
		return
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(req.Proof)
	if err != nil {
		b.fail(c, encoding.MediaJSON, fieldError("Proof", "Proof is not valid base64"))
		return
	}
	app := identity.Application{Properties: req.Properties, PublicKey: pub, Proof: proof}
	if err := app.Verify(b.domain); err != nil {
		field := "Properties"
		if errors.Is(err, identity.ErrBadSignature) {
			field = "Proof"
		}
		b.fail(c, encoding.MediaJSON, fieldError(field, err.Error()))
		return
	}
	now := b.now().UTC()
	id := identity.Identity{
		ID: identity.NewID(b.domain), State: identity.Created, Properties: req.Properties,
		PublicKey: pub, Created: now, Updated: now, Version: 1,
	}
	if err := b.registry.Create(c.Request.Context(), id); err != nil {
		if errors.Is(err, identity.ErrDuplicate) {
			err = fmt.Errorf("%w: this public key already belongs to an identity; a new identity needs a new key", identity.ErrDuplicate)
		}
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	b.log.Info("identity applied for", "id", id.ID, "device", id.DeviceID())
	c.Header("Location", identityURL(b.baseURL(c), id.ID))
	c.JSON(http.StatusCreated, api.ApplicationResponse{Identity: b.publicIdentity(id), Broker: b.brokerInfo(c)})
}

// handlePublicIdentity is GET /Identities/{id}: where relying parties fetch
// the key that verifies a device's signature, and devices see whether they
// have been approved.
func (b *Broker) handlePublicIdentity(c *gin.Context) {
	id, err := b.registry.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	c.JSON(http.StatusOK, b.publicIdentity(id))
}

func requireJSON(c *gin.Context) error {
	if ct, err := encoding.ParseContentType(c.GetHeader("Content-Type")); err != nil || ct.Format != encoding.FormatJSON {
		return &api.Error{Code: api.CodeUnsupportedMediaType, Message: "this resource takes application/json"}
	}
	return nil
}

func fieldError(field, msg string) *api.Error {
	return &api.Error{Code: api.CodeInvalidField, Field: field, Message: msg}
}

// decodeStrictJSON decodes a JSON body into v, refusing unknown fields,
// trailing data and bodies over limit.
func decodeStrictJSON(c *gin.Context, limit int64, v any) error {
	if c.Request.ContentLength > limit {
		return &api.Error{Code: api.CodeBodyTooLarge, Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return &api.Error{Code: api.CodeBodyTooLarge, Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	}
	if err != nil {
		return &api.Error{Code: api.CodeMalformed, Message: "the request body could not be read"}
	}
	if !json.Valid(body) {
		return &api.Error{Code: api.CodeMalformed, Message: "the body is not valid JSON, or has data after it"}
	}
	if err := exactKeys(body, reflect.TypeOf(v)); err != nil {
		return &api.Error{Code: api.CodeMalformed, Message: err.Error()}
	}
	if err := json.Unmarshal(body, v); err != nil {
		// The type error names the field, not the value.
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &api.Error{Code: api.CodeMalformed, Message: fmt.Sprintf("field %s must be JSON %s", typeErr.Field, typeErr.Type.Kind())}
		}
		return &api.Error{Code: api.CodeMalformed, Message: "the body is not the expected JSON"}
	}
	return nil
}
