// Package api is the broker's HTTP contract as both of its sides see it:
// the outcome codes and their statuses, the request fields and their rules,
// the MFA-Request/1 form a requester signs, and the JSON shapes of answers
// and of the identity endpoints. The broker, the device app and relying
// parties' clients share it, so it imports nothing of the server: a client
// that links it links neither the HTTP framework nor the NATS server.
package api

import (
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable outcome. Relying parties branch on it;
// codes are never renamed, and each has exactly one HTTP status.
type Code string

// Outcome codes. Only CodeApproved has a 200 status: every other outcome
// fails closed. CodeOrderCreated (201) answers only POST /Orders, which
// decides nothing; an order still waiting is CodePending, 409, so a
// client that takes any 2xx of a collect for an approval is still safe.
const (
	CodeApproved             Code = "approved"
	CodeDenied               Code = "denied"
	CodeDeniedNotMe          Code = "denied-not-me"
	CodeSuperseded           Code = "superseded"
	CodeBlocked              Code = "blocked"
	CodeRateLimited          Code = "rate-limited"
	CodeTimeout              Code = "timeout"
	CodeUnknownPerson        Code = "unknown-person"
	CodeUnknownRequester     Code = "unknown-requester"
	CodeInvalidSignature     Code = "invalid-signature"
	CodeSignatureExpired     Code = "signature-expired"
	CodeReplayed             Code = "replayed"
	CodeMalformed            Code = "malformed"
	CodeSchemaViolation      Code = "schema-violation"
	CodeMissingField         Code = "missing-field"
	CodeUnknownField         Code = "unknown-field"
	CodeDuplicateField       Code = "duplicate-field"
	CodeInvalidField         Code = "invalid-field"
	CodeUnsupportedMediaType Code = "unsupported-media-type"
	CodeBodyTooLarge         Code = "body-too-large"
	CodeNotAcceptable        Code = "not-acceptable"
	CodeMethodNotAllowed     Code = "method-not-allowed"
	CodeNotFound             Code = "not-found"
	CodeConflict             Code = "conflict"
	CodeApplicationsClosed   Code = "applications-closed"
	CodePushUnavailable      Code = "push-unavailable"
	CodeStoreUnavailable     Code = "store-unavailable"
	CodeShuttingDown         Code = "shutting-down"
	CodeTooBusy              Code = "too-busy"
	CodeInternalError        Code = "internal-error"

	// The codes of orders (POST /Orders, GET and DELETE /Orders/{ref}).
	CodeOrderCreated Code = "order-created"
	CodePending      Code = "pending"
	CodeCancelled    Code = "cancelled"
	CodeOrderLost    Code = "order-lost"
	CodeWrongNumber  Code = "wrong-number"

	// CodePeerUnavailable: the person's identity is held by a federated
	// peer broker that could not be reached, or whose link dropped while
	// it asked; nobody answered.
	CodePeerUnavailable Code = "peer-unavailable"
)

// Codes lists every code in the order the README's table gives them.
func Codes() []Code {
	return []Code{
		CodeApproved, CodeDenied, CodeDeniedNotMe, CodeWrongNumber, CodeTimeout, CodeSuperseded, CodeCancelled, CodeUnknownPerson,
		CodeBlocked, CodeRateLimited,
		CodeUnknownRequester, CodeInvalidSignature, CodeSignatureExpired, CodeReplayed,
		CodeMalformed, CodeSchemaViolation, CodeMissingField, CodeUnknownField,
		CodeDuplicateField, CodeInvalidField,
		CodeUnsupportedMediaType, CodeBodyTooLarge, CodeNotAcceptable,
		CodeMethodNotAllowed, CodeNotFound, CodeConflict, CodeApplicationsClosed,
		CodePushUnavailable, CodeStoreUnavailable, CodePeerUnavailable, CodeShuttingDown, CodeTooBusy, CodeOrderLost, CodeInternalError,
		CodeOrderCreated, CodePending,
	}
}

// Status is the HTTP status that goes with the code.
func (c Code) Status() int {
	switch c {
	case CodeApproved:
		return http.StatusOK
	case CodeOrderCreated:
		return http.StatusCreated
	case CodeDenied, CodeDeniedNotMe, CodeWrongNumber, CodeBlocked, CodeApplicationsClosed:
		return http.StatusForbidden
	case CodeSuperseded, CodePending, CodeCancelled:
		return http.StatusConflict
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeTimeout:
		return http.StatusRequestTimeout
	case CodeUnknownPerson, CodeNotFound:
		return http.StatusNotFound
	case CodeUnknownRequester, CodeInvalidSignature, CodeSignatureExpired, CodeReplayed:
		return http.StatusUnauthorized
	case CodeMalformed, CodeSchemaViolation, CodeMissingField, CodeUnknownField,
		CodeDuplicateField, CodeInvalidField:
		return http.StatusBadRequest
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeNotAcceptable:
		return http.StatusNotAcceptable
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeConflict:
		return http.StatusConflict
	case CodePushUnavailable, CodeStoreUnavailable, CodePeerUnavailable, CodeShuttingDown, CodeTooBusy, CodeOrderLost:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is a failure that has an outcome code: what the caller sent was
// wrong in a way the code names, and Field names the request field at fault.
// Message is safe to show the caller: it never contains a personal number.
type Error struct {
	Code    Code
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// XMLNamespace is the namespace of MFA.xsd: of requests (root MFA) and of
// answers (root MFAResponse).
const XMLNamespace = "http://waher.se/Schema/MFA.xsd"

// Errorf makes an *Error; the message must not contain personal data.
func Errorf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}
