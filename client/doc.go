// Package client is the Go library for relying parties of the MFA broker:
// it asks a person to approve something, blocking (POST /MFA) or as an
// order collected later (POST /Orders, GET and DELETE /Orders/{Ref}), and
// checks the evidence of the answer offline.
//
//	c, err := client.New("https://mfa.example.com",
//		client.WithRequester(bankLegalID, bankKey)) // optional: signed requests
//	res, err := c.MFA(ctx, client.Request{
//		PNR: "19791231-1234", Country: "SE", Timeout: time.Minute,
//		Reason: "Log in to **Example Bank**",
//	})
//	switch {
//	case err == nil:
//		// approved: res.Evidence proves it (see Result.Verify)
//	case errors.Is(err, client.ErrDenied), errors.Is(err, client.ErrTimeout):
//		// the person said no, or did not answer
//	default:
//		// every other outcome: errors.As(err, new(*client.Error)) has the
//		// code, the HTTP status, the field at fault, RetryAfter, ...
//	}
//
// The contract is the README's API reference and the OpenAPI document
// every broker serves at GET /openapi.json. The library fails closed as
// the broker does: MFA, Collect and Wait return a *Result only for an
// answer that is both HTTP 200 and Code "approved"; every other outcome is
// an error, a *Error whose Code matches one sentinel (ErrDenied,
// ErrTimeout, ...) with errors.Is. An answer that is not the broker's (not
// JSON, no Code, an approval with another status) is a *Error with no Code
// that matches ErrUnexpectedResponse.
//
// It is written by hand rather than generated from an OpenAPI description
// because most of what a relying party needs is not in one: the requester
// signature over the MFA-Request/1 form (WithRequester), the
// MFA-Order-Access/1 Authorization of collects and cancels, retries that
// never send a POST twice (a second POST asks the person twice), long
// polls that end when the context does, and the offline check of the
// device's signed answer (VerifyEvidence). It imports only the broker's
// wire types (package api), never server code: linking it brings neither
// the HTTP framework nor the NATS server, which a test checks.
//
// Requests are sent as JSON by default (WithEncoding chooses XML or a web
// form instead: the broker treats all three alike) and answers are always
// asked for, and read, as JSON.
//
// Retries: a collect or a cancel answered 429 or 503 is tried again after
// the answer's Retry-After, as is one whose connection failed, within the
// RetryPolicy's attempts and total wait and never past the context's
// deadline. POST /MFA and POST /Orders are tried again only when the
// connection could not be made at all (the broker cannot have seen them);
// a 429 or 503 answer to them is returned as the error, with RetryAfter,
// for the caller to decide.
package client
