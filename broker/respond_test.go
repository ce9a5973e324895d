package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/guard"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// TestErrorResponse holds the one place errors become outcomes to every
// sentinel the flow, the stores and the push service return, wrapped as
// they are on their way up: each has its code, the code its status, and
// the message says nothing of the layers below.
func TestErrorResponse(t *testing.T) {
	t.Parallel()
	b := &Broker{log: slog.New(slog.DiscardHandler)}
	wrap := func(err error) error { return fmt.Errorf("boltstore: get x@legal.y: %w", err) }
	cases := []struct {
		err        error
		code       api.Code
		status     int
		field      string
		retryAfter int
	}{
		{ErrUnknownPerson, api.CodeUnknownPerson, http.StatusNotFound, "", 0},
		{fmt.Errorf("%w: LegalId x is Created", ErrUnknownRequester), api.CodeUnknownRequester, http.StatusUnauthorized, api.FieldLegalID, 0},
		{ErrRequesterSig, api.CodeInvalidSignature, http.StatusUnauthorized, api.FieldSignature, 0},
		{ErrSignatureExpired, api.CodeSignatureExpired, http.StatusUnauthorized, api.FieldIssued, 0},
		{ErrReplayed, api.CodeReplayed, http.StatusUnauthorized, api.FieldNonce, 0},
		{&retryError{err: fmt.Errorf("%w from this caller", ErrRateLimited), wait: 1500 * time.Millisecond}, api.CodeRateLimited, http.StatusTooManyRequests, "", 2},
		{&retryError{err: ErrBlocked, wait: 24 * time.Hour}, api.CodeBlocked, http.StatusForbidden, "", 86400},
		{&retryError{err: ErrTooBusy, wait: 5 * time.Second}, api.CodeTooBusy, http.StatusServiceUnavailable, "", 5},
		{ErrShuttingDown, api.CodeShuttingDown, http.StatusServiceUnavailable, "", 5},
		{notify.ErrClosed, api.CodeShuttingDown, http.StatusServiceUnavailable, "", 5},
		{notify.ErrSuperseded, api.CodeSuperseded, http.StatusConflict, "", 0},
		{notify.ErrExpired, api.CodeTimeout, http.StatusRequestTimeout, "", 0},
		{fmt.Errorf("%w: NATS is closed", notify.ErrUnavailable), api.CodePushUnavailable, http.StatusServiceUnavailable, "", 5},
		{wrap(identity.ErrUnavailable), api.CodeStoreUnavailable, http.StatusServiceUnavailable, "", 5},
		{fmt.Errorf("%w: the link to b is down", ErrPeerUnavailable), api.CodePeerUnavailable, http.StatusServiceUnavailable, "", 5},
		{wrap(identity.ErrNotFound), api.CodeNotFound, http.StatusNotFound, "", 0},
		{wrap(identity.ErrDuplicate), api.CodeConflict, http.StatusConflict, "", 0},
		{wrap(fmt.Errorf("%w: x is Approved now, not Created", identity.ErrConflict)), api.CodeConflict, http.StatusConflict, "", 0},
		{wrap(identity.ErrTransition), api.CodeConflict, http.StatusConflict, "", 0},
		{wrap(identity.ErrInvalid), api.CodeInvalidField, http.StatusBadRequest, "", 0},
		{wrap(identity.ErrBadSignature), api.CodeInvalidField, http.StatusBadRequest, "", 0},
		{fmt.Errorf("%w: a.b", guard.ErrNoBlock), api.CodeNotFound, http.StatusNotFound, "", 0},
		{fmt.Errorf("%w: p1", federation.ErrNoPeer), api.CodeNotFound, http.StatusNotFound, "", 0},
		{fmt.Errorf("%w: p1", federation.ErrPeerExists), api.CodeConflict, http.StatusConflict, "", 0},
		{federation.ErrNoChange, api.CodeConflict, http.StatusConflict, "", 0},
		{fmt.Errorf("%w: approve p1 first", federation.ErrNotApproved), api.CodeConflict, http.StatusConflict, "", 0},
		{federation.ErrSelfPeering, api.CodeInvalidField, http.StatusBadRequest, "", 0},
		{fmt.Errorf("%w: %w", federation.ErrDiscovery, federation.ErrNotMFACapable), api.CodeInvalidField, http.StatusBadRequest, "", 0},
		{&api.Error{Code: api.CodeMissingField, Field: api.FieldReason, Message: "field Reason is required"}, api.CodeMissingField, http.StatusBadRequest, api.FieldReason, 0},
		{errors.New("something nobody expected"), api.CodeInternalError, http.StatusInternalServerError, "", 0},
	}
	for _, c := range cases {
		r := b.errorResponse(c.err, "req1")
		if r.Code != c.code || r.Code.Status() != c.status || r.Field != c.field || r.RetryAfter != c.retryAfter {
			t.Errorf("%v: %s (%d) on %q retry %d, want %s (%d) on %q retry %d",
				c.err, r.Code, r.Code.Status(), r.Field, r.RetryAfter, c.code, c.status, c.field, c.retryAfter)
		}
		if r.Message == "" || r.RequestID != "req1" || strings.Contains(r.Message, "boltstore") {
			t.Errorf("%v: message %q, request %q", c.err, r.Message, r.RequestID)
		}
	}
	if r := b.errorResponse(wrap(fmt.Errorf("%w: x is Approved now, not Created", identity.ErrConflict)), ""); r.Message != "identity changed concurrently: x is Approved now, not Created" {
		t.Errorf("conflict message %q: want the sentinel and its detail only", r.Message)
	}
}

// TestCodeStatuses: only approved is a 2xx (and order-created, which
// decides nothing), every code has a status of its
// own kind, and none falls through to 500 but internal-error.
func TestCodeStatuses(t *testing.T) {
	t.Parallel()
	seen := map[api.Code]bool{}
	for _, c := range api.Codes() {
		if seen[c] {
			t.Errorf("%s listed twice", c)
		}
		seen[c] = true
		s := c.Status()
		switch {
		case c == api.CodeApproved && s != http.StatusOK:
			t.Errorf("approved is %d", s)
		case c == api.CodeOrderCreated && s != http.StatusCreated:
			t.Errorf("order-created is %d", s)
		case c != api.CodeApproved && c != api.CodeOrderCreated && s < 400:
			t.Errorf("%s is %d: only approved may succeed", c, s)
		case s == http.StatusInternalServerError && c != api.CodeInternalError:
			t.Errorf("%s falls through to 500", c)
		}
	}
}
