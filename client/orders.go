package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/legalmfa/mfa/api"
)

// Order is an order the broker took: the person is being asked, and the
// outcome is collected with Collect or Wait.
type Order struct {
	// Ref names the order. It is a bearer secret: whoever holds it may
	// collect and cancel an unsigned order. Keep it server-side.
	Ref string
	// RequestID names the MFA request; the evidence names it too.
	RequestID string
	// Expires is when the order ends unanswered.
	Expires time.Time
	// NumberMatch, with number matching, is the number the relying party
	// must show its user, who picks it on the device.
	NumberMatch string
	// Hint is how far the order has got (pushed, delivered, ...).
	Hint api.Hint
	// Location is the order's URL, from the answer's Location header.
	Location string
}

// OrderStatus is what a collect found: the order is pending, or it ended
// approved (Result). An order that ended otherwise is Collect's error.
type OrderStatus struct {
	Ref     string
	Pending bool
	// Hint is how far a pending order has got; empty once it ended.
	Hint        api.Hint
	Expires     time.Time
	NumberMatch string
	// Result is the approval, once the order ended approved.
	Result *Result
}

// Order asks the person without waiting for the answer (POST /Orders):
// it returns as soon as the broker has pushed the request. Collect or Wait
// then gets the outcome, from any replica of the broker. Like MFA, it is
// never sent twice unless its connection could not be made; a refusal
// (rate-limited, unknown-person, ...) is the same *Error MFA gives.
func (c *Client) Order(ctx context.Context, r Request) (*Order, error) {
	ct, body, err := c.MarshalRequest(r)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, call{method: http.MethodPost, url: c.orderURL, contentType: ct, body: body})
	if err != nil {
		return nil, err
	}
	return orderCreated(rep)
}

// orderCreated reads the answer to POST /Orders.
func orderCreated(rep *reply) (*Order, error) {
	if rep.ans == nil || rep.ans.Code != api.CodeOrderCreated {
		if rep.ans != nil && rep.ans.Code == api.CodeApproved {
			return nil, unexpected(rep, "the answer to an order says approved")
		}
		return nil, failure(rep)
	}
	o := rep.ans.Order
	if rep.status != http.StatusCreated || o == nil || !api.IsOrderRef(o.Ref) {
		return nil, unexpected(rep, "order-created without HTTP 201 and an Order with a valid Ref")
	}
	expires, err := time.Parse(time.RFC3339Nano, o.Expires)
	if err != nil {
		return nil, unexpected(rep, "the order's Expires is not an RFC 3339 time")
	}
	return &Order{
		Ref: o.Ref, RequestID: rep.ans.RequestID, Expires: expires, NumberMatch: o.NumberMatch,
		Hint: o.Hint, Location: rep.header.Get("Location"),
	}, nil
}

// orderCall is a collect or cancel of ref, signed when the client has a
// requester key.
func (c *Client) orderCall(method, ref, query string) (call, error) {
	if !api.IsOrderRef(ref) {
		return call{}, fmt.Errorf("%w: %q is not an order reference", ErrInvalidRequest, ref)
	}
	k := call{method: method, url: c.orderURL + "/" + ref + query, idempotent: true}
	if c.key != nil {
		k.auth = func() string {
			return api.SignOrderAccess(method, ref, c.legalID, c.key, c.clock.Now()).Header()
		}
	}
	return k, nil
}

// Collect asks where the order stands (GET /Orders/{ref}). With wait > 0
// the broker answers a pending order when its state changes (a new hint,
// or the outcome) or after wait, whichever is first: wait is whole seconds,
// and at most api.MaxCollectWait (30 s); longer is shortened to it. It
// returns the pending order's hint, or the approval; an order that ended
// otherwise is the error (ErrDenied, ErrTimeout, ErrCancelled,
// ErrOrderLost, ...), as is an unknown or long-gone order (ErrNotFound).
// Ending ctx ends the call at once; the order goes on.
//
// A long poll waits for a change after the broker looked: to hear of one
// that came between two collects, give the hint seen last to CollectAfter.
func (c *Client) Collect(ctx context.Context, ref string, wait time.Duration) (*OrderStatus, error) {
	return c.CollectAfter(ctx, ref, "", wait)
}

// CollectAfter is Collect that answers at once when the pending order's
// hint is no longer seen (the one the caller saw last), and otherwise
// waits as Collect does. An empty seen is Collect.
func (c *Client) CollectAfter(ctx context.Context, ref string, seen api.Hint, wait time.Duration) (*OrderStatus, error) {
	secs := min(max(int(wait/time.Second), 0), api.MaxCollectWait)
	q := url.Values{}
	if secs > 0 {
		q.Set("wait", strconv.Itoa(secs))
		if seen != "" {
			q.Set("hint", string(seen))
		}
	}
	query := ""
	if len(q) > 0 {
		query = "?" + q.Encode()
	}
	k, err := c.orderCall(http.MethodGet, ref, query)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	return collected(rep, ref)
}

// collected reads the answer to a collect of ref.
func collected(rep *reply, ref string) (*OrderStatus, error) {
	if rep.ans != nil && rep.ans.Code == api.CodePending {
		o := rep.ans.Order
		if rep.status != http.StatusConflict || o == nil || o.Ref != ref {
			return nil, unexpected(rep, "pending without HTTP 409 and the Order")
		}
		st := &OrderStatus{Ref: ref, Pending: true, Hint: o.Hint, NumberMatch: o.NumberMatch}
		st.Expires, _ = time.Parse(time.RFC3339Nano, o.Expires)
		return st, nil
	}
	res, err := approval(rep)
	if err != nil {
		return nil, err
	}
	st := &OrderStatus{Ref: ref, Result: res}
	if o := res.Order; o != nil {
		st.NumberMatch = o.NumberMatch
		st.Expires, _ = time.Parse(time.RFC3339Nano, o.Expires)
	}
	return st, nil
}

// Wait collects the order until it ends, long-polling, and returns the
// approval; an order that ended otherwise is the error, as for Collect.
// Ending ctx ends the wait at once (the order goes on: Cancel ends it).
func (c *Client) Wait(ctx context.Context, ref string) (*Result, error) {
	return c.WaitProgress(ctx, ref, nil)
}

// WaitProgress is Wait that calls progress (when not nil) with every
// pending status whose hint differs from the one before: to tell the user
// "open the app" or "check your phone".
func (c *Client) WaitProgress(ctx context.Context, ref string, progress func(OrderStatus)) (*Result, error) {
	poll := time.Duration(api.MaxCollectWait) * time.Second
	if t := c.http.Timeout; t > 0 {
		// Leave the answer time to arrive within the client's Timeout.
		poll = max(time.Second, min(poll, t-5*time.Second))
	}
	var last api.Hint
	for first := true; ; first = false {
		wait := poll
		if first && progress != nil {
			// Where it stands now, for progress at once: a long poll
			// answers only when that changes.
			wait = 0
		}
		asked := c.clock.Now()
		st, err := c.CollectAfter(ctx, ref, last, wait)
		if err != nil {
			return nil, err
		}
		if !st.Pending {
			return st.Result, nil
		}
		changed := first || st.Hint != last
		if changed && progress != nil {
			progress(*st)
		}
		last = st.Hint
		if !changed && c.clock.Now().Sub(asked) < time.Second {
			// A broker (or something before it) that does not hold the
			// poll must not make this a busy loop.
			select {
			case <-c.clock.After(time.Second):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// Cancel ends the order (DELETE /Orders/{ref}): the person's devices
// withdraw the prompt, and collects say ErrCancelled. It returns nil also
// when the order was already cancelled; ErrConflict when it had already
// ended otherwise (collect it to learn how), ErrNotFound for an unknown
// or long-gone order.
func (c *Client) Cancel(ctx context.Context, ref string) error {
	k, err := c.orderCall(http.MethodDelete, ref, "")
	if err != nil {
		return err
	}
	rep, err := c.do(ctx, k)
	if err != nil {
		return err
	}
	if rep.status == http.StatusNoContent {
		return nil
	}
	return failure(rep)
}
