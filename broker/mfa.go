package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/guard"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// Sentinel errors of the MFA flow; respond.go maps each to its code.
var (
	ErrUnknownPerson    = errors.New("no approved, valid identity has that PNR and COUNTRY")
	ErrUnknownRequester = errors.New("the requester's identity cannot sign requests")
	ErrRequesterSig     = errors.New("the requester's signature does not verify")
	ErrSignatureExpired = errors.New("the signed request is too old or from the future")
	ErrReplayed         = errors.New("the signed request was used before")
	ErrRateLimited      = errors.New("too many requests")
	ErrBlocked          = errors.New("the person reported a request from this caller as not theirs")
	ErrTooBusy          = errors.New("the broker holds as many pending requests as it may")
	ErrShuttingDown     = errors.New("the broker is shutting down")
)

// retryError is an error after which trying again later may succeed.
type retryError struct {
	err  error
	wait time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

const notAcceptableMessage = "none of the formats this broker answers in is acceptable: application/json, application/xml, text/xml, text/html or text/plain"

// handleForm serves the test form.
func (b *Broker) handleForm(c *gin.Context) {
	page, csp, err := b.pages.Form(encoding.FormPage{MaxTimeout: b.decoder.MaxTimeout(), DefaultTimeout: min(60, b.decoder.MaxTimeout())})
	if err != nil {
		b.fail(c, "", err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Content-Security-Policy", csp)
	c.Data(http.StatusOK, "text/html; charset=utf-8", page)
}

// handleMFA is POST /MFA.
//
// A request waiting for a person keeps its goroutine parked for up to the
// maximum timeout, with this handler, authenticate and the pusher's wait on
// its stack. Those frames are kept small, the work with large locals done
// in functions that return before the wait (admit, prepare, and the
// pusher's open): when the parked frames use under a quarter of the
// goroutine's 16 KiB stack, the runtime halves it, 8 KiB less per pending
// request.
func (b *Broker) handleMFA(c *gin.Context) {
	call := b.admit(c, false)
	if call == nil {
		return
	}
	resp := b.authenticate(c.Request.Context(), call)
	if c.Request.Context().Err() != nil {
		// The caller is gone and reads no answer; the status is for the log.
		c.Status(statusClientClosedRequest)
		return
	}
	b.write(c, call.format, resp)
}

// mfaCall is an admitted MFA request on its way through the flow.
type mfaCall struct {
	req    api.Request
	fc     flowContext
	rec    *mfaRecord
	format encoding.MediaType // of the answer
	// refundIP gives back what admit charged the caller's address, for a
	// request a verified requester signed.
	refundIP func()
}

// admit decodes an MFA request, or an order when order is set, and checks
// what can be checked before the flow. It answers a request it refuses
// itself, and then returns nil.
func (b *Broker) admit(c *gin.Context, order bool) *mfaCall {
	ct, ctErr := encoding.ParseContentType(c.GetHeader("Content-Type"))
	mt, acceptable := answerFormat(c, ct.Media)
	rec := &mfaRecord{format: ct.Format, start: time.Now(), flow: flowMFA}
	if order {
		rec.flow = flowOrder
	}
	c.Set(recordKey, rec)
	if b.shuttingDown.Load() {
		b.write(c, mt, b.errorResponse(ErrShuttingDown, ""))
		return nil
	}
	// Every request counts against its caller's budget before any work is
	// done for it: at first against its address; a request whose signature
	// verifies is moved to its requester's budget (prepare).
	refundIP, wait := b.callerLimit.reserve(b.now(), "ip:"+c.ClientIP())
	if wait > 0 {
		b.obs.RateLimited(budgetAddress)
		b.write(c, mt, b.errorResponse(rateLimited("from this address", wait), ""))
		return nil
	}
	if ctErr != nil {
		b.write(c, mt, b.errorResponse(ctErr, ""))
		return nil
	}
	release, ok := b.holdBody(c.Request.ContentLength)
	if !ok {
		b.write(c, mt, b.errorResponse(&retryError{err: ErrTooBusy, wait: retryAfterSeconds * time.Second}, ""))
		return nil
	}
	req, err := b.decoder.DecodeContent(c.Request, ct)
	release()
	if err == nil && req.NumberMatching != nil && !order {
		err = api.Errorf(api.CodeUnknownField, api.FieldNumberMatching,
			"NumberMatching is a field of orders (POST /Orders): /MFA answers once the person has, too late to show them a number")
	}
	if err != nil {
		b.write(c, mt, b.errorResponse(err, ""))
		return nil
	}
	// Checked before any push: a caller that cannot read any answer we
	// offer must not make a phone buzz.
	if !acceptable {
		b.write(c, mt, api.Response{Code: api.CodeNotAcceptable, Message: notAcceptableMessage})
		return nil
	}
	rec.requestID, rec.pnr, rec.signed = notify.NewRequestID(), b.pnrHash.sum(req.Country, req.PNR), req.Signed()
	rec.reason = req.Reason
	return &mfaCall{req: req, fc: flowContext{remoteIP: c.ClientIP(), baseURL: b.baseURL(c)}, rec: rec, format: mt, refundIP: refundIP}
}

// holdBody sets aside memory for a request body about to be read: its
// declared length, or the most a body may have when it declares none. It
// reports false when the bodies being read already hold the broker's
// budget; release gives it back.
func (b *Broker) holdBody(declared int64) (release func(), ok bool) {
	if b.bodies == nil {
		return func() {}, true
	}
	n := int64(encoding.MaxBodyBytes)
	if declared >= 0 && declared < n {
		n = declared
	}
	if !b.bodies.TryAcquire(n) {
		return nil, false
	}
	return func() { b.bodies.Release(n) }, true
}

// rateLimited is the error of a budget used up, by whom, for how long.
func rateLimited(whose string, wait time.Duration) error {
	return &retryError{err: fmt.Errorf("%w %s: wait %d s", ErrRateLimited, whose, retryAfter(wait)), wait: wait}
}

// flowContext is what the flow needs to know of the HTTP request.
type flowContext struct {
	remoteIP string
	baseURL  string
}

// statusClientClosedRequest is nginx's code for a caller that left before
// the answer; it appears only in logs.
const statusClientClosedRequest = 499

// mfaRecord is what the access log says about an MFA request.
type mfaRecord struct {
	requestID string
	flow      string // flowMFA or flowOrder
	format    encoding.Format
	pnr       string // keyed hash, never the number
	signed    bool
	devices   int
	code      string
	// reason is what the person is asked, for the browser's answer page.
	reason string
	// start is when the handler took the request; waited is how much of
	// the time since went on the person and the device (see timing.go).
	start  time.Time
	waited time.Duration
}

const recordKey = "mfa.record"

// authenticate runs the flow for an admitted request and returns the
// answer.
func (b *Broker) authenticate(ctx context.Context, call *mfaCall) api.Response {
	now := b.now()
	q, remotes, blockKey, err := b.prepare(ctx, call, now, true)
	if err != nil {
		return b.errorResponse(err, call.rec.requestID)
	}
	a := answer{keyBase: call.fc.baseURL}
	if len(remotes) == 0 {
		a.out, a.err = b.asker.Ask(ctx, q)
	} else {
		a = b.askEverywhere(ctx, q, remotes, call.fc.baseURL)
	}
	call.rec.waited = a.out.Waited // also when nobody answered: a timeout is all wait
	return b.conclude(call, a, blockKey, now)
}

// conclude turns how a pushed request ended into its answer, and records
// it in the audit trail before the caller hears it.
func (b *Broker) conclude(call *mfaCall, a answer, blockKey string, now time.Time) api.Response {
	var resp api.Response
	if a.err != nil {
		resp = b.errorResponse(a.err, call.rec.requestID)
	} else {
		if a.out.Decision == notify.NotMe {
			b.reportNotMe(blockKey, call.rec, now)
		}
		resp = outcomeResponse(a.out, call.rec.requestID, a.keyBase)
	}
	b.recordMFA(call, a, resp.Code, false)
	return resp
}

// prepare makes the question to push, and the key that blocks this caller
// from asking this person again. Every check that can refuse the request is
// here, before the push: no phone buzzes for a request that is refused.
func (b *Broker) prepare(ctx context.Context, call *mfaCall, now time.Time, federated bool) (notify.Question, []federation.Remote, string, error) {
	req, fc, rec := &call.req, call.fc, call.rec
	fail := func(err error) (notify.Question, []federation.Remote, string, error) {
		return notify.Question{}, nil, "", err
	}
	requester, err := b.requester(ctx, *req, fc.remoteIP, now)
	if err != nil {
		return fail(err)
	}
	caller, identityLimit, personBudget := "ip:"+fc.remoteIP, b.identityLimit, budgetPerson
	if req.Signed() {
		// Verified: the requester's budget, not its address's.
		call.refundIP()
		caller, identityLimit, personBudget = "id:"+req.LegalID, b.signedIdentityLimit, budgetPersonSigned
		if wait := b.callerLimit.take(now, caller); wait > 0 {
			b.obs.RateLimited(budgetRequester)
			return fail(rateLimited("from this requester", wait))
		}
		if err := b.checkIssued(*req, now); err != nil {
			return fail(err)
		}
	}
	blockKey := b.blockKey(caller, rec.pnr)
	if b.blocks != nil {
		if until, blocked := b.blocks.Blocked(blockKey, now); blocked {
			b.obs.Blocked()
			return fail(&retryError{err: fmt.Errorf("%w; requests from this caller to this person are refused until %s", ErrBlocked, until.UTC().Format(time.RFC3339)), wait: until.Sub(now)})
		}
	}
	if p, ok := b.asker.(pendingCounter); ok && b.maxPending > 0 && p.Pending() >= b.maxPending {
		return fail(&retryError{err: ErrTooBusy, wait: retryAfterSeconds * time.Second})
	}
	found, err := b.registry.FindValid(ctx, req.PNR, req.Country, now)
	if err != nil {
		return fail(err)
	}
	var remotes []federation.Remote
	if b.fed != nil {
		// Identities the person holds at peers that share with this
		// broker; their home brokers are asked alongside.
		if remotes, err = b.fed.Find(req.Country, req.PNR, now); err != nil {
			return fail(err)
		}
	}
	if len(found) == 0 && len(remotes) == 0 {
		return fail(ErrUnknownPerson)
	}
	if !federated && len(remotes) > 0 {
		if len(found) == 0 {
			// Refused before anything is spent: the person's budget,
			// a signed request's nonce.
			return fail(&api.Error{Code: api.CodeUnknownPerson, Message: "The person's identity is held by a federated broker, which orders do not reach; send POST /MFA instead."})
		}
		remotes = nil
	}
	q := notify.Question{
		RequestID: rec.requestID,
		Reason:    req.Reason,
		Requester: requester,
		Expires:   now.Add(time.Duration(req.Timeout) * time.Second),
	}
	keys := make([]string, 0, len(found)+len(remotes))
	for _, id := range found {
		q.Targets = append(q.Targets, notify.Target{LegalID: id.ID, PublicKey: id.PublicKey})
		keys = append(keys, id.ID)
	}
	for _, r := range remotes {
		keys = append(keys, r.Ref.LegalID)
	}
	if wait := identityLimit.take(now, keys...); wait > 0 {
		b.obs.RateLimited(personBudget)
		return fail(rateLimited("for this person", wait))
	}
	// The nonce is spent last, once nothing else can refuse the request:
	// a request refused for a limit may be sent again as it was.
	if err := b.spendNonce(ctx, *req); err != nil {
		return fail(err)
	}
	rec.devices = len(q.Targets) + len(remotes)
	return q, remotes, blockKey, nil
}

// checkIssued accepts a signed request only near the time it says it was
// signed.
func (b *Broker) checkIssued(req api.Request, now time.Time) error {
	if skew := now.Sub(req.IssuedAt); skew > b.signatureWindow || skew < -b.signatureWindow {
		return fmt.Errorf("%w: Issued %s is more than %s from the broker's time %s", ErrSignatureExpired,
			req.Issued, b.signatureWindow, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// spendNonce accepts a signed request only once: its nonce is remembered
// across every replica for longer than the signature window.
func (b *Broker) spendNonce(ctx context.Context, req api.Request) error {
	if !req.Signed() {
		return nil
	}
	first, err := b.replays.FirstUse(ctx, b.pnrHash.of("nonce", req.LegalID, req.Nonce))
	if err != nil {
		return fmt.Errorf("%w: %w", notify.ErrUnavailable, err)
	}
	if !first {
		return fmt.Errorf("%w: the Nonce was already used by %s", ErrReplayed, req.LegalID)
	}
	return nil
}

// reportNotMe blocks the caller from asking this person again for a while,
// and says so in the log and the audit trail: someone may be trying to get
// in.
func (b *Broker) reportNotMe(blockKey string, rec *mfaRecord, now time.Time) {
	b.log.Warn("person reported a request as not theirs", "request", rec.requestID, "person", rec.pnr, "block", b.notMeBlock)
	e := audit.Event{Kind: audit.KindNotMe, Request: rec.requestID, Person: rec.pnr}
	defer func() { b.record(e) }()
	if b.blocks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	blk := guard.Block{Key: blockKey, Since: now, Until: now.Add(b.notMeBlock), RequestID: rec.requestID}
	if err := b.blocks.Block(ctx, blk); err != nil {
		b.log.Error("block after 'not me' not recorded", "request", rec.requestID, "err", err)
		return
	}
	e.Block, e.Until = blk.Key, blk.Until.UTC()
}

// blockKey names a caller ("ip:<address>" or "id:<LegalId>") and a person
// (their keyed hash) in the blocklist, by keyed hashes only.
func (b *Broker) blockKey(caller, person string) string {
	return b.pnrHash.of("caller", caller) + "." + person
}

// requester verifies a signed request against the requester's identity; an
// unsigned request is shown to the person with the caller's IP address.
func (b *Broker) requester(ctx context.Context, req api.Request, remoteIP string, now time.Time) (notify.Requester, error) {
	if !req.Signed() {
		return notify.Requester{RemoteIP: remoteIP}, nil
	}
	id, err := b.signer(ctx, req.LegalID, now)
	if err != nil {
		return notify.Requester{}, err
	}
	if err := identity.Verify(id.PublicKey, req.SigningForm(), req.Signature); err != nil {
		return notify.Requester{}, fmt.Errorf("%w with the key of %s over the canonical MFA-Request/1 form", ErrRequesterSig, req.LegalID)
	}
	return notify.Requester{Verified: true, LegalID: id.ID, Name: id.DisplayName(), RemoteIP: remoteIP}, nil
}

// signer is the identity of a requester that signs: Approved and valid at
// now, or else ErrUnknownRequester.
func (b *Broker) signer(ctx context.Context, legalID string, now time.Time) (identity.Identity, error) {
	id, err := b.registry.Get(ctx, legalID)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return identity.Identity{}, fmt.Errorf("%w: LegalId %s is not known to this broker", ErrUnknownRequester, legalID)
	case err != nil:
		return identity.Identity{}, err
	case id.State != identity.Approved:
		return identity.Identity{}, fmt.Errorf("%w: LegalId %s is %s, not Approved", ErrUnknownRequester, legalID, id.State)
	case !id.ValidAt(now):
		return identity.Identity{}, fmt.Errorf("%w: LegalId %s is valid from %s to %s only", ErrUnknownRequester, legalID,
			id.From.Format(time.RFC3339), id.To.Format(time.RFC3339))
	}
	return id, nil
}

// outcomeResponse turns the person's signed answer into the response: a
// 2xx only for an approval, and evidence either way.
func outcomeResponse(out notify.Outcome, requestID, baseURL string) api.Response {
	ev := &api.Evidence{
		LegalID: out.LegalID, Decision: string(out.Decision), Algorithm: "Ed25519",
		PublicKey: out.PublicKey, PublicKeyURL: identityURL(baseURL, out.LegalID),
		SignedData: out.SignedData, Signature: out.Signature, Push: out.Push, Match: out.Match,
	}
	switch {
	case out.WrongNumber:
		return api.Response{Code: api.CodeWrongNumber, Message: "The person approved, but picked another number than the one you showed them: the request is denied. Someone else's request may have reached them.", RequestID: requestID, Evidence: ev}
	case out.Decision == notify.Approve:
		return api.Response{Code: api.CodeApproved, Message: "The person approved the request.", RequestID: requestID, Evidence: ev}
	case out.Decision == notify.NotMe:
		return api.Response{Code: api.CodeDeniedNotMe, Message: "The person denied the request and reported it as not theirs; further requests from you to this person are blocked for a while.", RequestID: requestID, Evidence: ev}
	}
	return api.Response{Code: api.CodeDenied, Message: "The person denied the request.", RequestID: requestID, Evidence: ev}
}

// identityURL is where a relying party fetches an identity's public key.
func identityURL(baseURL, legalID string) string {
	return baseURL + "/Identities/" + url.PathEscape(legalID)
}

// baseURL is the configured public URL, or else the scheme and host the
// caller used to reach the broker.
func (b *Broker) baseURL(c *gin.Context) string {
	if b.publicURL != "" {
		return b.publicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}
