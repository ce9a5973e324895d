package client

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
)

// Error is an answer of the broker that is not an approval: a person's
// denial, a timeout, a refusal of the request, ... Code says which, and the
// sentinel of the code matches it with errors.Is:
//
//	errors.Is(err, client.ErrDenied)
//
// A *Error with an empty Code is an answer that was not the broker's (a
// proxy's error page, a body that is not JSON or has no Code, an approval
// with a status other than 200); it matches ErrUnexpectedResponse.
type Error struct {
	// Code is the broker's outcome code; empty for an unexpected answer.
	Code api.Code
	// Status is the HTTP status of the answer.
	Status int
	// Message is the broker's explanation (or, for an unexpected answer,
	// what was wrong with it). It never contains a personal number.
	Message string
	// Field names the request field at fault, for field errors.
	Field string
	// RetryAfter is when trying again may help, from the Retry-After
	// header or the answer's RetryAfter; zero when the answer says nothing.
	RetryAfter time.Duration
	// RequestID names the MFA request, once the broker created one.
	RequestID string
	// Evidence is the device's signed answer, for the outcomes a device
	// decided: denied, denied-not-me, wrong-number.
	Evidence *api.Evidence
	// Order is where the order stands, in answers of /Orders.
	Order *api.Order
	// Header is the answer's HTTP header.
	Header http.Header
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mfa broker: ")
	if e.Code != "" {
		b.WriteString(string(e.Code))
	} else {
		b.WriteString("unexpected answer")
	}
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	b.WriteString(")")
	if e.Field != "" {
		b.WriteString(", field ")
		b.WriteString(e.Field)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches the sentinel of the error's code, or ErrUnexpectedResponse
// when it has none.
func (e *Error) Is(target error) bool {
	if e.Code == "" {
		return target == ErrUnexpectedResponse
	}
	s, ok := target.(codeError)
	return ok && api.Code(s) == e.Code
}

// codeError is the type of the sentinels: an outcome code.
type codeError api.Code

func (c codeError) Error() string { return "mfa broker: " + string(c) }

// The outcomes of a request, one per api.Code that is not a success
// (approved, order-created) or a pending order's state (pending). A *Error
// matches the one of its code with errors.Is. The README's "Outcomes and
// status codes" says what each means.
var (
	// The person's answers, and the ends of a request nobody answered.
	ErrDenied      error = codeError(api.CodeDenied)
	ErrDeniedNotMe error = codeError(api.CodeDeniedNotMe)
	ErrWrongNumber error = codeError(api.CodeWrongNumber)
	ErrTimeout     error = codeError(api.CodeTimeout)
	ErrSuperseded  error = codeError(api.CodeSuperseded)
	ErrCancelled   error = codeError(api.CodeCancelled)
	ErrOrderLost   error = codeError(api.CodeOrderLost)

	// Nobody was asked.
	ErrUnknownPerson error = codeError(api.CodeUnknownPerson)
	ErrBlocked       error = codeError(api.CodeBlocked)
	ErrRateLimited   error = codeError(api.CodeRateLimited)

	// The requester's signature.
	ErrUnknownRequester error = codeError(api.CodeUnknownRequester)
	ErrInvalidSignature error = codeError(api.CodeInvalidSignature)
	ErrSignatureExpired error = codeError(api.CodeSignatureExpired)
	ErrReplayed         error = codeError(api.CodeReplayed)

	// The request itself.
	ErrMalformed            error = codeError(api.CodeMalformed)
	ErrSchemaViolation      error = codeError(api.CodeSchemaViolation)
	ErrMissingField         error = codeError(api.CodeMissingField)
	ErrUnknownField         error = codeError(api.CodeUnknownField)
	ErrDuplicateField       error = codeError(api.CodeDuplicateField)
	ErrInvalidField         error = codeError(api.CodeInvalidField)
	ErrUnsupportedMediaType error = codeError(api.CodeUnsupportedMediaType)
	ErrBodyTooLarge         error = codeError(api.CodeBodyTooLarge)
	ErrNotAcceptable        error = codeError(api.CodeNotAcceptable)
	ErrMethodNotAllowed     error = codeError(api.CodeMethodNotAllowed)
	ErrNotFound             error = codeError(api.CodeNotFound)
	ErrConflict             error = codeError(api.CodeConflict)
	ErrApplicationsClosed   error = codeError(api.CodeApplicationsClosed)

	// The broker, or a service behind it.
	ErrPushUnavailable  error = codeError(api.CodePushUnavailable)
	ErrStoreUnavailable error = codeError(api.CodeStoreUnavailable)
	ErrPeerUnavailable  error = codeError(api.CodePeerUnavailable)
	ErrShuttingDown     error = codeError(api.CodeShuttingDown)
	ErrTooBusy          error = codeError(api.CodeTooBusy)
	ErrInternalError    error = codeError(api.CodeInternalError)
)

// sentinels lists every sentinel above; Sentinel looks codes up in it.
var sentinels = []error{
	ErrDenied, ErrDeniedNotMe, ErrWrongNumber, ErrTimeout, ErrSuperseded, ErrCancelled, ErrOrderLost,
	ErrUnknownPerson, ErrBlocked, ErrRateLimited,
	ErrUnknownRequester, ErrInvalidSignature, ErrSignatureExpired, ErrReplayed,
	ErrMalformed, ErrSchemaViolation, ErrMissingField, ErrUnknownField, ErrDuplicateField, ErrInvalidField,
	ErrUnsupportedMediaType, ErrBodyTooLarge, ErrNotAcceptable, ErrMethodNotAllowed, ErrNotFound, ErrConflict,
	ErrApplicationsClosed,
	ErrPushUnavailable, ErrStoreUnavailable, ErrPeerUnavailable, ErrShuttingDown, ErrTooBusy, ErrInternalError,
}

// Sentinel is the sentinel error of an outcome code, or nil for a code
// that has none (approved, order-created, pending, and codes this version
// does not know).
func Sentinel(code api.Code) error {
	for _, s := range sentinels {
		if api.Code(s.(codeError)) == code {
			return s
		}
	}
	return nil
}

var (
	// ErrUnexpectedResponse matches a *Error for an answer that was not
	// one the broker gives: not JSON, no Code, too large, or an approval
	// with a status other than 200. Nothing was approved.
	ErrUnexpectedResponse = errors.New("mfa broker: unexpected answer")
	// ErrInvalidRequest: the request could not be sent as it is (a Timeout
	// that is not whole seconds, NumberMatching on /MFA, a malformed order
	// reference). Nothing was sent.
	ErrInvalidRequest = errors.New("mfa client: invalid request")
	// ErrBadEvidence: evidence that does not prove what was expected
	// (VerifyEvidence), or a signed answer form that does not parse.
	ErrBadEvidence = errors.New("mfa evidence")
)
