package identity

import "errors"

// Sentinel errors that callers branch on. Stores wrap them with %w and a
// message that says which identity and why.
var (
	// ErrNotFound: no identity with that ID (or key).
	ErrNotFound = errors.New("identity not found")
	// ErrDuplicate: an identity with that ID or public key exists already.
	ErrDuplicate = errors.New("identity already exists")
	// ErrConflict: the identity changed since it was read; the change was
	// not applied.
	ErrConflict = errors.New("identity changed concurrently")
	// ErrTransition: the life cycle does not allow that change of state.
	ErrTransition = errors.New("state transition not allowed")
	// ErrInvalid: the identity or a value given for it is malformed.
	ErrInvalid = errors.New("invalid identity data")
	// ErrBadSignature: a signature does not verify with the identity's key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnavailable: the store cannot be reached; the caller may retry.
	ErrUnavailable = errors.New("identity store unavailable")
)
