package broker

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
)

// Observer hears what the broker decides, for metrics. It is called on
// the request's own goroutine and must not block. Nothing it is given
// names a person, a requester, a request or a caller's address: routes
// are the router's templates, codes are api.Code, flows and budgets the
// constants below.
type Observer interface {
	// Request: one HTTP request on the public listener. route is the
	// matched template ("" for none), code the answer's outcome code (""
	// when it has none).
	Request(route, method string, status int, code string)
	// Work: the broker's own time on one request of a flow, the person's
	// wait left out.
	Work(flow string, d time.Duration)
	// Outcome: a request of a flow ended with code; waited is the
	// person's wait, 0 when nothing was pushed.
	Outcome(flow, code string, waited time.Duration)
	// RateLimited: a request refused for a budget used up.
	RateLimited(budget string)
	// Blocked: a request refused by a "not me" block.
	Blocked()
}

// The flows an MFA request takes, as Observer hears them.
const (
	flowMFA   = "mfa"   // POST /MFA
	flowOrder = "order" // POST /Orders, ended in the background
	flowPeer  = "peer"  // a federated peer asking for one of this broker's people
)

// The budgets a request can run out of, as Observer hears them.
const (
	budgetAddress      = "address"
	budgetRequester    = "requester"
	budgetPeer         = "peer"
	budgetPerson       = "person"
	budgetPersonSigned = "person-signed"
	budgetApply        = "apply"
)

// codeCallerGone is the outcome of an MFA request whose caller left before
// the answer: no code was sent, since nobody was there to read it.
const codeCallerGone = "caller-gone"

// WithObserver makes o hear the broker's requests, outcomes and refusals.
func WithObserver(o Observer) Option {
	return func(b *Broker) {
		if o != nil {
			b.obs = o
		}
	}
}

// nopObserver is the observer of a broker nobody watches.
type nopObserver struct{}

func (nopObserver) Request(string, string, int, string)   {}
func (nopObserver) Work(string, time.Duration)            {}
func (nopObserver) Outcome(string, string, time.Duration) {}
func (nopObserver) RateLimited(string)                    {}
func (nopObserver) Blocked()                              {}

// codeKey holds the outcome code of an answer to a request that has no
// MFA record, for the observer.
const codeKey = "mfa.code"

// publicAccessLog is accessLog for the public listener, whose requests
// the observer hears too; the operator socket's are the operator's own.
func (b *Broker) publicAccessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	b.logAccess(c, start)
	b.observe(c)
}

// observe tells the observer about a request that has been answered: the
// request, and for an MFA request or order its flow's work and outcome.
// An order that was placed ends later; runOrder tells its outcome.
func (b *Broker) observe(c *gin.Context) {
	status := c.Writer.Status()
	v, ok := c.Get(recordKey)
	if !ok {
		code, _ := c.Get(codeKey)
		s, _ := code.(string)
		b.obs.Request(c.FullPath(), c.Request.Method, status, s)
		return
	}
	rec := v.(*mfaRecord)
	b.obs.Request(c.FullPath(), c.Request.Method, status, rec.code)
	code := rec.code
	if code == "" && status == statusClientClosedRequest {
		code = codeCallerGone
	}
	b.obs.Work(rec.flow, time.Since(rec.start)-rec.waited)
	if rec.flow == flowOrder && code == string(api.CodeOrderCreated) {
		return
	}
	b.obs.Outcome(rec.flow, code, rec.waited)
}

// observePeer tells the observer how a peer's request ended.
func (b *Broker) observePeer(start time.Time, code api.Code, waited time.Duration) {
	b.obs.Work(flowPeer, time.Since(start)-waited)
	b.obs.Outcome(flowPeer, string(code), waited)
}
