package broker

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/federation"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/guard"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/order"
)

// retryAfterSeconds is what callers are told to wait when the broker or a
// service behind it is briefly unavailable.
const retryAfterSeconds = 5

// errorResponse is the one place errors become outcome codes (and so HTTP
// statuses, through api.Code.Status). Messages never contain a PNR.
func (b *Broker) errorResponse(err error, requestID string) api.Response {
	r := api.Response{RequestID: requestID, Message: err.Error()}
	var retry *retryError
	if errors.As(err, &retry) {
		r.RetryAfter = retryAfter(retry.wait)
	}
	var e *api.Error
	switch {
	case errors.As(err, &e):
		r.Code, r.Field, r.Message = e.Code, e.Field, e.Message
	case errors.Is(err, ErrUnknownPerson):
		r.Code, r.Message = api.CodeUnknownPerson, "No approved, currently valid legal identity has this PNR and COUNTRY."
	case errors.Is(err, ErrUnknownRequester):
		r.Code, r.Field = api.CodeUnknownRequester, api.FieldLegalID
	case errors.Is(err, ErrRequesterSig):
		r.Code, r.Field = api.CodeInvalidSignature, api.FieldSignature
	case errors.Is(err, ErrSignatureExpired):
		r.Code, r.Field = api.CodeSignatureExpired, api.FieldIssued
	case errors.Is(err, ErrReplayed):
		r.Code, r.Field = api.CodeReplayed, api.FieldNonce
	case errors.Is(err, ErrRateLimited):
		r.Code = api.CodeRateLimited
	case errors.Is(err, ErrBlocked):
		r.Code = api.CodeBlocked
	case errors.Is(err, ErrTooBusy):
		r.Code, r.Message = api.CodeTooBusy, "The broker is holding as many pending requests as it may; try again shortly."
	case errors.Is(err, notify.ErrSuperseded):
		r.Code, r.Message = api.CodeSuperseded, "A newer request for the same person replaced this one before it was answered."
	case errors.Is(err, notify.ErrExpired):
		r.Code, r.Message = api.CodeTimeout, "The person did not answer within the timeout."
	case errors.Is(err, ErrShuttingDown), errors.Is(err, notify.ErrClosed):
		r.Code, r.RetryAfter = api.CodeShuttingDown, retryAfterSeconds
		r.Message = "The broker is shutting down; send the request again."
	case errors.Is(err, ErrPeerUnavailable):
		r.Code, r.RetryAfter = api.CodePeerUnavailable, retryAfterSeconds
		r.Message = "The person's identity is held by a federated broker that cannot be reached now; nobody answered."
		b.log.Warn("federated peer unavailable", "request", requestID, "err", err)
	case errors.Is(err, notify.ErrUnavailable):
		r.Code, r.RetryAfter = api.CodePushUnavailable, retryAfterSeconds
		r.Message = "The push service is unavailable; no device was asked."
		b.log.Error("push service unavailable", "request", requestID, "err", err)
	case errors.Is(err, order.ErrUnavailable):
		r.Code, r.RetryAfter = api.CodePushUnavailable, retryAfterSeconds
		r.Message = "The order store (NATS JetStream) is unavailable; try again shortly."
		b.log.Error("order store unavailable", "request", requestID, "err", err)
	case errors.Is(err, identity.ErrUnavailable):
		r.Code, r.RetryAfter = api.CodeStoreUnavailable, retryAfterSeconds
		r.Message = "The identity store is unavailable; no device was asked."
	case errors.Is(err, identity.ErrNotFound):
		r.Code, r.Message = api.CodeNotFound, publicMessage(err, identity.ErrNotFound)
	case errors.Is(err, guard.ErrNoBlock):
		r.Code, r.Message = api.CodeNotFound, publicMessage(err, guard.ErrNoBlock)
	case errors.Is(err, identity.ErrDuplicate):
		r.Code, r.Message = api.CodeConflict, publicMessage(err, identity.ErrDuplicate)
	case errors.Is(err, identity.ErrConflict):
		r.Code, r.Message = api.CodeConflict, publicMessage(err, identity.ErrConflict)
	case errors.Is(err, identity.ErrTransition):
		r.Code, r.Message = api.CodeConflict, publicMessage(err, identity.ErrTransition)
	case errors.Is(err, identity.ErrInvalid):
		r.Code, r.Message = api.CodeInvalidField, publicMessage(err, identity.ErrInvalid)
	case errors.Is(err, identity.ErrBadSignature):
		r.Code, r.Message = api.CodeInvalidField, publicMessage(err, identity.ErrBadSignature)
	case errors.Is(err, federation.ErrNoPeer):
		r.Code, r.Message = api.CodeNotFound, publicMessage(err, federation.ErrNoPeer)
	case errors.Is(err, federation.ErrPeerExists), errors.Is(err, federation.ErrNoChange), errors.Is(err, federation.ErrNotApproved):
		r.Code = api.CodeConflict
	case errors.Is(err, federation.ErrSelfPeering), errors.Is(err, federation.ErrDiscovery):
		r.Code = api.CodeInvalidField
	default:
		b.log.Error("internal error", "request", requestID, "err", err)
		r.Code, r.Message = api.CodeInternalError, "The broker failed to handle the request; it has been logged."
	}
	return r
}

// publicMessage is err's message from its sentinel's own text on. What
// the layers below wrapped around it ("boltstore: get <id>: …") names
// internals and repeats what the caller sent; what follows the sentinel is
// the detail it stands for ("… X is Approved now, not Created").
func publicMessage(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()); i >= 0 {
		return msg[i:]
	}
	return sentinel.Error()
}

// answerFormat negotiates the answer's media type. When nothing offered is
// acceptable it still returns the request's own format, so that an error
// can be read; the flow refuses with 406 before doing anything.
func answerFormat(c *gin.Context, own encoding.MediaType) (encoding.MediaType, bool) {
	mt, ok := encoding.Negotiate(c.GetHeader("Accept"), own)
	if !ok {
		if own == "" {
			own = encoding.MediaJSON
		}
		return own, false
	}
	return mt, true
}

// fail answers with the error's outcome in the negotiated format.
func (b *Broker) fail(c *gin.Context, own encoding.MediaType, err error) {
	mt, _ := answerFormat(c, own)
	b.write(c, mt, b.errorResponse(err, ""))
}

// write encodes and sends a response with its code's status.
func (b *Broker) write(c *gin.Context, mt encoding.MediaType, r api.Response) {
	var rec *mfaRecord
	if v, ok := c.Get(recordKey); ok {
		rec = v.(*mfaRecord)
		rec.code = string(r.Code)
	} else {
		c.Set(codeKey, string(r.Code))
	}
	var body []byte
	var err error
	if mt == encoding.MediaHTML {
		var asked *encoding.Asked
		if rec != nil && rec.requestID != "" {
			asked = &encoding.Asked{Reason: rec.reason, Asked: rec.start, End: time.Now()}
		}
		body, err = b.pages.Result(r, asked)
		c.Header("Content-Security-Policy", encoding.ContentSecurityPolicy)
	} else {
		body, err = encoding.Marshal(r, mt)
	}
	if err != nil {
		b.log.Error("encode response", "code", r.Code, "media", mt, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal-error\n"))
		return
	}
	encoding.SetHeaders(c.Writer.Header(), mt, r)
	if rec != nil {
		// Measured once the answer is encoded: only sending it is left.
		c.Writer.Header()["Server-Timing"] = []string{ServerTiming(time.Since(rec.start), rec.waited)}
	}
	c.Data(r.Code.Status(), string(mt)+"; charset=utf-8", body)
}

var digitRun = regexp.MustCompile(`[0-9]{4}`)

// quotePath shows a request's path in a message, unless it holds a run of
// four digits or more, which may be a personal number put in the path.
func quotePath(p string) string {
	if digitRun.MatchString(p) {
		return "this path"
	}
	if len(p) > 100 {
		p = p[:100] + "…"
	}
	return strconv.Quote(p)
}
