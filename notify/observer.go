package notify

import "errors"

// Observer hears what the pusher does, for metrics. It is called on the
// pusher's own goroutines, some holding up a device's answer, so it must
// not block. Nothing it is given names a person, an identity or a
// request: only counts, decisions and reasons from fixed lists.
type Observer interface {
	// Pushes: pushes NATS took (sent) and did not (failed), for a new
	// request or resent to a device that synced.
	Pushes(sent, failed int, resent bool)
	// Withdrawals: n devices told to withdraw a request that ended for
	// why (WhyAnswered, WhyTimeout, …).
	Withdrawals(why string, n int)
	// Sync: a device asked what it missed.
	Sync()
	// AnswerAccepted: a device's answer decided its request.
	AnswerAccepted(decision string)
	// AnswerRefused: a device's answer was refused, for one of the
	// Refused* reasons.
	AnswerRefused(reason string)
}

// WithObserver makes o hear the pusher's pushes, withdrawals, syncs and
// answers.
func WithObserver(o Observer) PusherOption {
	return func(p *Pusher) {
		if o != nil {
			p.obs = o
		}
	}
}

// nopObserver is the observer of a pusher nobody watches.
type nopObserver struct{}

func (nopObserver) Pushes(int, int, bool)   {}
func (nopObserver) Withdrawals(string, int) {}
func (nopObserver) Sync()                   {}
func (nopObserver) AnswerAccepted(string)   {}
func (nopObserver) AnswerRefused(string)    {}

// Why an answer is refused, as Observer.AnswerRefused hears it: a fixed
// list, so that what a device sends cannot make a metric grow.
const (
	RefusedMalformed = "malformed"       // not an answer: subject, size, JSON, request ID, decision
	RefusedFlood     = "rate-limited"    // the device sent too many refused answers
	RefusedUnknown   = "unknown-request" // no such request is pending here
	RefusedNotAsked  = "not-asked"       // the device was not asked
	RefusedExpired   = "expired"         // the request expired
	RefusedMismatch  = "mismatch"        // another identity or protocol version
	RefusedNumber    = "number"          // a number picked that was not offered, or none was
	RefusedSignature = "signature"       // the signature does not verify
	RefusedOutdated  = "outdated-app"    // an approval without the number a request needs
	RefusedLate      = "late"            // another answer or the end came first
)

// refusal is an answer's refusal with its reason; its message is the
// error's, which the device is told.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse gives err a reason.
func refuse(reason string, err error) error { return &refusal{reason: reason, err: err} }

// refusalReason is why err refused an answer.
func refusalReason(err error) string {
	var r *refusal
	switch {
	case errors.As(err, &r):
		return r.reason
	case errors.Is(err, errOutdatedApp):
		return RefusedOutdated
	}
	return RefusedMalformed
}
