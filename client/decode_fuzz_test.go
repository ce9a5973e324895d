package client

import (
	"errors"
	"net/http"
	"testing"

	"github.com/legalmfa/mfa/api"
)

// FuzzDecodeAnswer: whatever comes back (status, Content-Type, body), the
// answer's readers never panic, always give a result or a *Error (never
// both, never neither), and fail closed: an approval only from HTTP 200
// with Code approved, an order only from 201 order-created with a valid
// Ref, a pending order only from 409 pending naming the order collected.
func FuzzDecodeAnswer(f *testing.F) {
	const ref = "abcdefghijklmnopqrstuvwxyz"
	for _, s := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, "application/json; charset=utf-8", `{"Code":"approved","Message":"m","RequestId":"r","Evidence":{"LegalId":"l","Decision":"approve","Algorithm":"Ed25519","PublicKey":"AAAA","SignedData":"","Signature":"","Push":""}}`},
		{403, "application/json", `{"Code":"denied","Message":"m","Evidence":{"Match":"42"}}`},
		{409, "application/json", `{"Code":"pending","Message":"m","Order":{"Ref":"` + ref + `","Expires":"2026-01-01T00:00:00Z","Hint":"shown"}}`},
		{201, "application/json", `{"Code":"order-created","Message":"m","RequestId":"r","Order":{"Ref":"` + ref + `","Expires":"2026-01-01T00:00:00Z","NumberMatch":"42"}}`},
		{429, "application/json", `{"Code":"rate-limited","Message":"m","RetryAfter":5}`},
		{502, "text/html", `<html>bad gateway</html>`},
		{200, "application/json", `{"Code":"approved","code":"denied"}`},
		{200, "application/json", `null`},
	} {
		f.Add(s.status, s.ct, []byte(s.body), "7")
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte, retry string) {
		h := http.Header{"Content-Type": {contentType}, "Retry-After": {retry}}
		r := &reply{status: status, header: h}
		r.ans, r.bad = decodeAnswer(contentType, body)
		if (r.ans == nil) == (r.bad == "") {
			t.Fatalf("answer %+v with fault %q", r.ans, r.bad)
		}
		if r.ans != nil && r.ans.Code == "" {
			t.Fatal("an answer without a Code")
		}
		check := func(what string, ok bool, err error, good func() bool) {
			t.Helper()
			var e *Error
			switch {
			case ok == (err != nil):
				t.Fatalf("%s: result %v with error %v", what, ok, err)
			case err != nil && !errors.As(err, &e):
				t.Fatalf("%s: %T", what, err)
			case err != nil && (e.Error() == "" || e.Status != status || e.RetryAfter < 0 || (e.Code == "") != errors.Is(err, ErrUnexpectedResponse)):
				t.Fatalf("%s: %+v", what, e)
			case ok && !good():
				t.Fatalf("%s: accepted status %d with %+v", what, status, r.ans)
			}
		}
		res, err := approval(r)
		check("approval", res != nil, err, func() bool { return status == 200 && r.ans.Code == api.CodeApproved })
		o, err := orderCreated(r)
		check("order", o != nil, err, func() bool {
			return status == 201 && r.ans.Code == api.CodeOrderCreated && api.IsOrderRef(o.Ref) && o.Ref == r.ans.Order.Ref
		})
		st, err := collected(r, ref)
		check("collect", st != nil, err, func() bool {
			if st.Pending {
				return status == 409 && r.ans.Code == api.CodePending && st.Result == nil && r.ans.Order.Ref == ref
			}
			return status == 200 && r.ans.Code == api.CodeApproved && st.Result != nil
		})
	})
}
