package identity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"
)

// Store keeps legal identities. Every implementation passes the conformance
// suite in package identity/conformance. Methods return errors wrapping the
// sentinels in this package (ErrNotFound, ErrDuplicate, ErrConflict,
// ErrTransition, ErrInvalid, ErrUnavailable) so callers can branch on them.
//
// Stores keep times in UTC with at least millisecond precision. Create
// fills a zero Created or Updated with the current time. FindValid and List
// return identities ordered by ID. A negative Query.Limit, a State not
// spelled as a State constant, and a key of the wrong size are ErrInvalid.
type Store interface {
	// Create stores a new identity. Its ID and public key must both be unused.
	Create(ctx context.Context, id Identity) error
	// Get returns the identity with the given ID.
	Get(ctx context.Context, id string) (Identity, error)
	// GetByPublicKey returns the identity bound to a device key.
	GetByPublicKey(ctx context.Context, key ed25519.PublicKey) (Identity, error)
	// FindValid returns the identities that are Approved and valid at the
	// given time whose PNR and COUNTRY properties equal the given ones
	// exactly. It is the MFA lookup, and is answered from an index.
	FindValid(ctx context.Context, pnr, country string, at time.Time) ([]Identity, error)
	// FindPerson returns every identity, in any state, whose PNR and
	// COUNTRY properties equal the given ones, ordered by ID: what an
	// operator reviews before approving one more for the same person.
	FindPerson(ctx context.Context, pnr, country string) ([]Identity, error)
	// Countries returns the distinct COUNTRY properties of the Approved
	// identities, sorted, whatever their validity windows: the countries
	// whose people the broker can serve, which its federation document
	// tells peers. It is answered from an index, not by reading every
	// identity.
	Countries(ctx context.Context) ([]string, error)
	// List returns identities ordered by ID, after the ID in q.After, at most
	// q.Limit of them (0: no limit), restricted to q.State when set.
	List(ctx context.Context, q Query) ([]Identity, error)
	// Transition changes an identity's state if and only if its state is
	// still c.From, and returns the identity as changed. A state that moved
	// on meanwhile gives ErrConflict; a change the life cycle does not allow
	// gives ErrTransition.
	Transition(ctx context.Context, id string, c Change) (Identity, error)
	// PurgeApplications deletes the identities still Created (applied for,
	// never decided) that were created before the given time, and returns
	// how many it deleted. Their keys may apply again. An identity decided
	// meanwhile is not deleted.
	PurgeApplications(ctx context.Context, appliedBefore time.Time) (int, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close(ctx context.Context) error
}

// Query selects identities for List.
type Query struct {
	State State // "" for all states
	After string
	Limit int
}

// Change is one state transition, made by an operator.
type Change struct {
	From State
	To   State
	At   time.Time
	// ValidFrom and ValidTo set the validity window; used on approval.
	ValidFrom time.Time
	ValidTo   time.Time
}

// Apply returns the identity as the change leaves it, or an error wrapping
// ErrConflict or ErrTransition. Stores call it under their own atomicity so
// every store applies the same rules.
func (c Change) Apply(id Identity) (Identity, error) {
	if c.At.IsZero() {
		return id, fmt.Errorf("%w: a change needs the time it is made", ErrInvalid)
	}
	if id.State != c.From {
		return id, fmt.Errorf("%w: %s is %s now, not %s", ErrConflict, id.ID, id.State, c.From)
	}
	if !CanTransition(c.From, c.To) {
		return id, fmt.Errorf("%w: %s cannot become %s", ErrTransition, c.From, c.To)
	}
	if c.To == Approved {
		if c.ValidTo.IsZero() || !c.ValidTo.After(c.ValidFrom) {
			return id, fmt.Errorf("%w: approval needs a validity window that ends after it starts", ErrInvalid)
		}
		id.From, id.To = c.ValidFrom.UTC(), c.ValidTo.UTC()
	}
	id.State = c.To
	id.Updated = c.At.UTC()
	id.Version++
	return id, nil
}
