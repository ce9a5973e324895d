package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/order"
)

// OrderBook is the shared store of orders; order.Book is one.
type OrderBook interface {
	Create(ctx context.Context, ref string, s order.State) error
	Get(ctx context.Context, ref string) (order.State, error)
	Await(ctx context.Context, ref string, wait time.Duration, seen api.Hint) (order.State, error)
	Modify(ctx context.Context, ref string, change func(*order.State) bool) (order.State, error)
	Run(ref string, cancel context.CancelFunc) (done func())
}

// Opener pushes a question and lets the caller await its outcome later;
// notify.Pusher is one.
type Opener interface {
	Open(q notify.Question) (*notify.Opened, error)
}

// NumberMatching is the operator's policy for orders.
type NumberMatching string

// The number matching policies.
const (
	// NumberMatchingOptional: an order has it when it asks for it.
	NumberMatchingOptional NumberMatching = "optional"
	// NumberMatchingRequired: every order has it; one that says false is
	// refused.
	NumberMatchingRequired NumberMatching = "required"
)

// ParseNumberMatching accepts the policies' names.
func ParseNumberMatching(s string) (NumberMatching, error) {
	switch p := NumberMatching(s); p {
	case NumberMatchingOptional, NumberMatchingRequired:
		return p, nil
	}
	return "", fmt.Errorf("number matching %q: want %s or %s", s, NumberMatchingOptional, NumberMatchingRequired)
}

// WithOrders serves /Orders from book, pushing through opener, with the
// operator's number matching policy.
func WithOrders(book OrderBook, opener Opener, policy NumberMatching) Option {
	return func(b *Broker) { b.orders, b.opener, b.numberMatching = book, opener, policy }
}

// Timing of the outcome's write, and of a cancel's.
const (
	// orderWriteTimeout bounds writing an order's hint or outcome.
	orderWriteTimeout = 5 * time.Second
	// cancelGrace is how long a cancel waits for the replica running the
	// order to end it, before ending it itself: that replica is gone.
	cancelGrace = 5 * time.Second
)

// handleOrder is POST /Orders: everything /MFA does up to the push, then
// the answer at once, and the wait in the background.
func (b *Broker) handleOrder(c *gin.Context) {
	call := b.admit(c, true)
	if call == nil {
		return
	}
	resp := b.placeOrder(c.Request.Context(), call)
	if resp.Order != nil {
		c.Header("Location", call.fc.baseURL+"/Orders/"+resp.Order.Ref)
	}
	b.write(c, call.format, resp)
}

// placeOrder checks and pushes an order and starts its wait, and returns
// the answer to its caller.
func (b *Broker) placeOrder(ctx context.Context, call *mfaCall) api.Response {
	requestID := call.rec.requestID
	match, err := b.matchFor(call.req)
	if err != nil {
		return b.errorResponse(err, requestID)
	}
	now := b.now()
	// Orders run on this broker's own pusher: a federated person's
	// devices are asked through POST /MFA.
	q, _, blockKey, err := b.prepare(ctx, call, now, false)
	if err != nil {
		return b.errorResponse(err, requestID)
	}
	if match {
		q.Match, q.MatchChoices = notify.NewMatch(notify.MatchChoices)
	}
	ref := order.NewRef()
	st := order.State{RequestID: requestID, Expires: q.Expires, NumberMatch: q.Match, Hint: api.HintPushed}
	if call.req.Signed() {
		st.Requester = call.req.LegalID
	}
	// Stored before the push, so that a collect anywhere finds it as soon
	// as a device could answer.
	if err := b.orders.Create(ctx, ref, st); err != nil {
		return b.errorResponse(err, requestID)
	}
	q.OnProgress = func(p notify.Progress) { b.orderProgress(ref, p) }
	opened, err := b.opener.Open(q)
	if err != nil {
		resp := b.errorResponse(err, requestID)
		b.endOrder(ref, resp)
		return resp
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := b.orders.Run(ref, cancel)
	b.running.Add(1)
	go b.runOrder(runCtx, cancel, done, opened, ref, call, blockKey, now)
	return api.Response{
		Code: api.CodeOrderCreated, RequestID: requestID,
		Message: "The order is placed and the person's devices are asked. Collect the outcome at its Location.",
		Order:   &api.Order{Ref: ref, Expires: formatTime(q.Expires), Hint: api.HintPushed, NumberMatch: q.Match},
	}
}

// matchFor decides whether an order has number matching.
func (b *Broker) matchFor(req api.Request) (bool, error) {
	if b.numberMatching == NumberMatchingRequired {
		if req.NumberMatching != nil && !*req.NumberMatching {
			return false, api.Errorf(api.CodeInvalidField, api.FieldNumberMatching, "this broker requires number matching for every order: leave NumberMatching out or set it true")
		}
		return true, nil
	}
	return req.NumberMatching != nil && *req.NumberMatching, nil
}

// runOrder awaits an order's outcome and writes it where every replica
// reads it.
func (b *Broker) runOrder(ctx context.Context, cancel context.CancelFunc, done func(), opened *notify.Opened, ref string, call *mfaCall, blockKey string, asked time.Time) {
	defer b.running.Done()
	defer done()
	defer cancel()
	out, err := opened.Await(ctx)
	requestID := call.rec.requestID
	var resp api.Response
	switch {
	case errors.Is(err, context.Canceled):
		resp = api.Response{Code: api.CodeCancelled, RequestID: requestID, Message: "The order was cancelled; the person's devices were told to withdraw it."}
	case err != nil:
		resp = b.errorResponse(err, requestID)
	default:
		resp = outcomeResponse(out, requestID, call.fc.baseURL)
		if out.Decision == notify.NotMe {
			b.reportNotMe(blockKey, call.rec, asked)
		}
	}
	// Counted before the outcome is written: a collect that reads it
	// finds the metrics agreeing.
	b.obs.Outcome(flowOrder, string(resp.Code), out.Waited)
	// On disk before any collect can read the outcome.
	b.recordMFA(call, answer{out: out, err: err}, resp.Code, true)
	b.endOrder(ref, resp)
	b.log.Info("order ended", "request", requestID, "person", call.rec.pnr, "code", resp.Code, "waited_ms", out.Waited.Milliseconds())
}

// endOrder writes an order's outcome, unless it has one.
func (b *Broker) endOrder(ref string, resp api.Response) {
	ctx, cancel := context.WithTimeout(context.Background(), orderWriteTimeout)
	defer cancel()
	_, err := b.orders.Modify(ctx, ref, func(s *order.State) bool {
		if !s.Pending() {
			return false
		}
		s.Ended, s.Hint, s.Outcome = b.now(), "", &resp
		return true
	})
	if err != nil {
		// Collects will call it lost once it is past its expiry.
		b.log.Error("order outcome not recorded", "request", resp.RequestID, "err", err)
	}
}

// orderProgress records a device's progress with an order as its hint.
// It runs on the pusher's message handlers, so the write is left to a
// goroutine of its own.
func (b *Broker) orderProgress(ref string, p notify.Progress) {
	hint := api.HintDelivered
	switch {
	case p.Outdated:
		hint = api.HintAppOutdated
	case p.Stage == notify.StageShown:
		hint = api.HintShown
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), orderWriteTimeout)
		defer cancel()
		_, err := b.orders.Modify(ctx, ref, func(s *order.State) bool {
			if !s.Pending() || !hintAdvances(s.Hint, hint) {
				return false
			}
			s.Hint = hint
			return true
		})
		if err != nil {
			b.log.Warn("order hint not recorded", "hint", hint, "err", err)
		}
	}()
}

// hintAdvances reports whether next says more than current: hints do not
// go back (a late "delivered" after "shown"), but an outdated app is news
// whatever came before, and a device showing the request after one
// failed is news again.
func hintAdvances(current, next api.Hint) bool {
	rank := map[api.Hint]int{api.HintPushed: 0, api.HintDelivered: 1, api.HintShown: 2}
	switch {
	case next == current:
		return false
	case next == api.HintAppOutdated:
		return true
	case current == api.HintAppOutdated:
		return next == api.HintShown
	}
	return rank[next] > rank[current]
}

// orderFormat negotiates the answer to a collect or cancel, JSON unless
// Accept says otherwise. When none is acceptable it answers 406 itself,
// before anything is done, and reports false.
func (b *Broker) orderFormat(c *gin.Context) (encoding.MediaType, bool) {
	mt, ok := answerFormat(c, encoding.MediaJSON)
	if !ok {
		b.write(c, mt, api.Response{Code: api.CodeNotAcceptable, Message: notAcceptableMessage})
	}
	return mt, ok
}

// handleCollect is GET /Orders/{ref}.
func (b *Broker) handleCollect(c *gin.Context) {
	mt, ok := b.orderFormat(c)
	if !ok {
		return
	}
	ref := c.Param("ref")
	wait, seen, err := collectWait(c.Request.URL.Query())
	if err != nil {
		b.write(c, mt, b.errorResponse(err, ""))
		return
	}
	st, err := b.accessOrder(c, http.MethodGet, ref)
	if err != nil {
		b.write(c, mt, b.errorResponse(err, ""))
		return
	}
	if wait > 0 && st.Pending() {
		// A collect waiting here ends when the broker stops, with the
		// order as it then is.
		ctx, cancel := context.WithCancel(c.Request.Context())
		stop := context.AfterFunc(b.stopping, cancel)
		waited, err := b.orders.Await(ctx, ref, wait, seen)
		stop()
		cancel()
		switch {
		case c.Request.Context().Err() != nil:
			c.Status(statusClientClosedRequest)
			return
		case err == nil:
			st = waited
		case !errors.Is(err, context.Canceled):
			b.write(c, mt, b.errorResponse(err, st.RequestID))
			return
		}
	}
	b.write(c, mt, orderResponse(ref, st))
}

// handleCancel is DELETE /Orders/{ref}.
func (b *Broker) handleCancel(c *gin.Context) {
	mt, ok := b.orderFormat(c)
	if !ok {
		return
	}
	ref := c.Param("ref")
	if _, err := b.accessOrder(c, http.MethodDelete, ref); err != nil {
		b.write(c, mt, b.errorResponse(err, ""))
		return
	}
	st, err := b.cancelOrder(c.Request.Context(), ref)
	switch {
	case err != nil:
		b.write(c, mt, b.errorResponse(err, st.RequestID))
	case st.Outcome != nil && st.Outcome.Code == api.CodeCancelled:
		c.Status(http.StatusNoContent)
	default:
		b.write(c, mt, api.Response{Code: api.CodeConflict, RequestID: st.RequestID,
			Message: fmt.Sprintf("The order ended (%s) before it could be cancelled; collect it for the outcome.", st.Outcome.Code)})
	}
}

// cancelOrder asks the replica running an order to end it as cancelled,
// and returns the order once it has ended. A replica that does not end it
// within cancelGrace is gone, and the cancel ends it instead.
func (b *Broker) cancelOrder(ctx context.Context, ref string) (order.State, error) {
	st, err := b.orders.Modify(ctx, ref, func(s *order.State) bool {
		if !s.Pending() || s.Cancel {
			return false
		}
		s.Cancel = true
		return true
	})
	if err != nil || !st.Pending() {
		return st, err
	}
	deadline := time.Now().Add(cancelGrace)
	for st.Pending() {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if st, err = b.orders.Await(ctx, ref, left, ""); err != nil {
			return st, err
		}
	}
	if !st.Pending() {
		return st, nil
	}
	b.log.Warn("order cancelled without its replica, which did not answer", "request", st.RequestID)
	resp := api.Response{Code: api.CodeCancelled, RequestID: st.RequestID, Message: "The order was cancelled; the broker replica holding it did not answer, so its devices may still show it until it expires."}
	return b.orders.Modify(ctx, ref, func(s *order.State) bool {
		if !s.Pending() {
			return false
		}
		s.Ended, s.Hint, s.Outcome = b.now(), "", &resp
		return true
	})
}

// errNoSuchOrder is the one answer to every reference that names no
// order the caller can see: malformed, unknown, or forgotten.
var errNoSuchOrder = &api.Error{Code: api.CodeNotFound, Message: "There is no such order: the reference is unknown, or the order ended too long ago to be collected."}

// accessOrder finds an order and checks that the caller may see it: an
// unsigned order's reference is enough; a signed one also needs its
// requester's signature.
func (b *Broker) accessOrder(c *gin.Context, method, ref string) (order.State, error) {
	if !api.IsOrderRef(ref) {
		return order.State{}, errNoSuchOrder
	}
	st, err := b.orders.Get(c.Request.Context(), ref)
	if errors.Is(err, order.ErrNotFound) {
		return order.State{}, errNoSuchOrder
	}
	if err != nil || st.Requester == "" {
		return st, err
	}
	return st, b.checkOrderAccess(c.Request.Context(), c.GetHeader("Authorization"), method, ref, st.Requester)
}

// checkOrderAccess verifies the Authorization of a collect or cancel of
// an order the requester signed.
func (b *Broker) checkOrderAccess(ctx context.Context, header, method, ref, requester string) error {
	a, err := api.ParseOrderAccess(header)
	if err != nil {
		return err
	}
	refuse := func(format string, args ...any) error {
		return api.Errorf(api.CodeInvalidSignature, "Authorization", format, args...)
	}
	if a.LegalID != requester {
		return refuse("this order was placed by another requester: sign with the LegalId that signed the order")
	}
	now := b.now()
	if skew := now.Sub(a.IssuedAt); skew > b.signatureWindow || skew < -b.signatureWindow {
		return refuse("the Authorization's Issued is more than %s from the broker's time %s", b.signatureWindow, now.UTC().Format(time.RFC3339))
	}
	id, err := b.signer(ctx, a.LegalID, now)
	if errors.Is(err, ErrUnknownRequester) {
		return refuse("%s", publicMessage(err, ErrUnknownRequester))
	}
	if err != nil {
		return err
	}
	if err := identity.Verify(id.PublicKey, api.OrderAccessForm(method, ref, a.LegalID, a.Issued), a.Signature); err != nil {
		return refuse("the Authorization's signature does not verify with the key of %s over the MFA-Order-Access/1 form for %s", a.LegalID, method)
	}
	return nil
}

// collectWait reads ?wait= (whole seconds, 0 to api.MaxCollectWait) and
// ?hint= (the hint the caller saw last: a long poll then answers at once
// when the order has moved on from it).
func collectWait(q url.Values) (time.Duration, api.Hint, error) {
	for name := range q {
		if name != "wait" && name != "hint" {
			return 0, "", api.Errorf(api.CodeUnknownField, "", "a collect takes the query parameters wait and hint only")
		}
	}
	var seen api.Hint
	if hs, ok := q["hint"]; ok {
		if len(hs) != 1 || !slices.Contains(api.Hints(), api.Hint(hs[0])) {
			return 0, "", api.Errorf(api.CodeInvalidField, "hint", "hint must be one of the hints an order has (pushed, delivered, shown, app-outdated), given once")
		}
		seen = api.Hint(hs[0])
	}
	vs, ok := q["wait"]
	if !ok {
		return 0, seen, nil
	}
	bad := api.Errorf(api.CodeInvalidField, "wait", "wait must be a whole number of seconds from 0 to %d, given once", api.MaxCollectWait)
	if len(vs) != 1 || vs[0] == "" {
		return 0, "", bad
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < 0 || n > api.MaxCollectWait || (len(vs[0]) > 1 && vs[0][0] == '0') || vs[0][0] == '+' {
		return 0, "", bad
	}
	return time.Duration(n) * time.Second, seen, nil
}

// orderResponse is a collect's answer: where a pending order stands, or
// its outcome.
func orderResponse(ref string, st order.State) api.Response {
	o := &api.Order{Ref: ref, Expires: formatTime(st.Expires), NumberMatch: st.NumberMatch}
	if st.Pending() {
		o.Hint = st.Hint
		return api.Response{Code: api.CodePending, RequestID: st.RequestID, Order: o, Message: pendingMessage(st.Hint)}
	}
	r := *st.Outcome
	r.Order = o
	return r
}

func pendingMessage(h api.Hint) string {
	switch h {
	case api.HintDelivered:
		return "The order is pending: a device of the person has it."
	case api.HintShown:
		return "The order is pending: the person's device shows it to them."
	case api.HintAppOutdated:
		return "The order is pending, but a device of the person cannot pick a number: its app must be updated."
	}
	return "The order is pending: the push went out, and no device has said it has it yet."
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
