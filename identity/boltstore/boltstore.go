// Package boltstore is the embedded, persistent identity store: one bbolt
// file in the broker's data directory, no other process.
//
// The file holds five buckets:
//
//	identities  ID → record (see record.go; the record carries a format version)
//	keys        raw Ed25519 public key → ID; makes keys unique and GetByPublicKey one lookup
//	references  SHA-256(framed COUNTRY, PNR) ‖ state ‖ ID → empty; the MFA lookup index
//	countries   COUNTRY ‖ NUL ‖ ID → empty, for Approved identities only; makes Countries one seek per country
//	meta        "format" → file format version, "index" → index layout version
//
// Every write is one bbolt transaction, fsynced on commit, so an identity
// whose Create returned is on disk, and a crash never leaves a record
// without its index entries or the reverse.
package boltstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/legalmfa/mfa/identity"
)

// ErrInUse is returned by Open when another process holds the store file.
// The error also wraps identity.ErrUnavailable.
var ErrInUse = errors.New("data directory is in use by another broker")

var (
	bucketIdentities = []byte("identities")
	bucketKeys       = []byte("keys")
	bucketReferences = []byte("references")
	bucketCountries  = []byte("countries")
	bucketMeta       = []byte("meta")
	metaFormat       = []byte("format")
	metaIndex        = []byte("index")
)

// Store is an identity.Store kept in a bbolt file. It is safe for
// concurrent use; bbolt serialises writers and lets readers run in parallel
// with them.
type Store struct {
	db   *bolt.DB
	path string
}

var _ identity.Store = (*Store)(nil)

type config struct {
	openTimeout time.Duration
}

// Option configures Open.
type Option func(*config)

// WithOpenTimeout sets how long Open waits for another process to release
// the file before giving up with ErrInUse. The default, half a second, lets a
// restarting broker take over from one that is just exiting while still
// failing fast when a second broker is pointed at a live data directory.
func WithOpenTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.openTimeout = d
		}
	}
}

// Open opens or creates the store file at path, creating its directory if
// needed. The broker passes <data-dir>/identities.db.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{openTimeout: 500 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	// The file holds personal numbers: owner only.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: create data directory: %w: %w", identity.ErrUnavailable, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Without a timeout bbolt waits for the lock forever.
		Timeout: cfg.openTimeout,
		// The map freelist stays fast when the file has many free pages,
		// as it will after bulk changes to millions of identities.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: %w (another process holds its lock): %w", path, ErrInUse, identity.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w: %w", path, identity.ErrUnavailable, err)
	}
	if err := db.Update(initialise); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w: %w", path, identity.ErrUnavailable, err)
	}
	return &Store{db: db, path: path}, nil
}

func initialise(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(metaFormat); {
	case v == nil:
		if tx.Bucket(bucketIdentities) != nil {
			return fmt.Errorf("file has identities but no format version")
		}
		if err := meta.Put(metaFormat, binary.AppendUvarint(nil, formatVersion)); err != nil {
			return err
		}
	default:
		got, n := binary.Uvarint(v)
		if n <= 0 || got != formatVersion {
			return fmt.Errorf("file format version %d, this broker reads version %d", got, formatVersion)
		}
	}
	for _, name := range [][]byte{bucketIdentities, bucketKeys, bucketReferences, bucketCountries} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if got, _ := binary.Uvarint(meta.Get(metaIndex)); got != indexVersion {
		if err := rebuildIndexes(tx); err != nil {
			return fmt.Errorf("rebuild the indexes: %w", err)
		}
		return meta.Put(metaIndex, binary.AppendUvarint(nil, indexVersion))
	}
	return nil
}

// rebuildIndexes writes the references and countries buckets anew from
// the identities, for a file whose indexes have an older layout (or, before
// index version 3, no countries bucket).
func rebuildIndexes(tx *bolt.Tx) error {
	var fresh [2]*bolt.Bucket
	for i, name := range [][]byte{bucketReferences, bucketCountries} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		fresh[i] = b
	}
	refs, countries := fresh[0], fresh[1]
	return tx.Bucket(bucketIdentities).ForEach(func(k, v []byte) error {
		id, err := decodeRecord(k, v)
		if err != nil {
			return fmt.Errorf("identity %s: %w", k, err)
		}
		if key := referenceKey(id); key != nil {
			if err := refs.Put(key, nil); err != nil {
				return err
			}
		}
		if key := countryKey(id); key != nil {
			return countries.Put(key, nil)
		}
		return nil
	})
}

// view and update run a transaction and mark failures that do not come from
// the identity rules as ErrUnavailable: a closed store, an I/O error, a full
// disk, or a corrupt file.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return unavailable(s.db.View(fn))
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return unavailable(s.db.Update(fn))
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{
		identity.ErrNotFound, identity.ErrDuplicate, identity.ErrConflict,
		identity.ErrTransition, identity.ErrInvalid, identity.ErrUnavailable,
	} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
}

// validate adds to Identity.Validate the check that the state is spelled
// exactly as one of the constants: Validate accepts any letter case, but a
// stored "approved" would never be found by FindValid or moved by Change.Apply.
func validate(id identity.Identity) error {
	if err := id.Validate(); err != nil {
		return err
	}
	if _, ok := stateCode(id.State); !ok {
		return fmt.Errorf("%w: state %q is not spelled as in the life cycle", identity.ErrInvalid, id.State)
	}
	return nil
}

// Create stores a new identity. A zero Created is set to the current time
// and a zero Updated to Created, since they are store bookkeeping.
func (s *Store) Create(ctx context.Context, id identity.Identity) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: create %s: %w", id.ID, err)
	}
	if err := validate(id); err != nil {
		return fmt.Errorf("boltstore: create %s: %w", id.ID, err)
	}
	if id.Created.IsZero() {
		id.Created = time.Now()
	}
	if id.Updated.IsZero() {
		id.Updated = id.Created
	}
	val, err := encodeRecord(id)
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", id.ID, err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketIdentities)
		if ids.Get([]byte(id.ID)) != nil {
			return fmt.Errorf("%w: ID in use", identity.ErrDuplicate)
		}
		if tx.Bucket(bucketKeys).Get(id.PublicKey) != nil {
			// The other identity's ID is left out: the error may reach
			// whoever applied with the key.
			return fmt.Errorf("%w: public key bound to another identity", identity.ErrDuplicate)
		}
		if err := ids.Put([]byte(id.ID), val); err != nil {
			return err
		}
		return reindex(tx, identity.Identity{}, id)
	})
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", id.ID, err)
	}
	return nil
}

// reindex moves an identity's index entries from what old needs to what
// new needs. Properties and keys cannot change after Create today, so on a
// Transition this writes nothing; it is here so that a future change of PNR,
// COUNTRY or key cannot leave a stale index entry behind.
func reindex(tx *bolt.Tx, old, new identity.Identity) error {
	keys, refs, countries := tx.Bucket(bucketKeys), tx.Bucket(bucketReferences), tx.Bucket(bucketCountries)
	if !bytes.Equal(old.PublicKey, new.PublicKey) || old.ID != new.ID {
		if len(old.PublicKey) > 0 {
			if err := keys.Delete(old.PublicKey); err != nil {
				return err
			}
		}
		if err := keys.Put(new.PublicKey, []byte(new.ID)); err != nil {
			return err
		}
	}
	if err := moveEntry(refs, referenceKey(old), referenceKey(new)); err != nil {
		return err
	}
	return moveEntry(countries, countryKey(old), countryKey(new))
}

// moveEntry replaces an index entry: oldKey goes, newKey comes; either may
// be nil for none.
func moveEntry(b *bolt.Bucket, oldKey, newKey []byte) error {
	if bytes.Equal(oldKey, newKey) {
		return nil
	}
	if oldKey != nil {
		if err := b.Delete(oldKey); err != nil {
			return err
		}
	}
	if newKey != nil {
		return b.Put(newKey, nil)
	}
	return nil
}

// Get returns the identity with the given ID.
func (s *Store) Get(ctx context.Context, id string) (identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	var out identity.Identity
	err := s.view(func(tx *bolt.Tx) (err error) {
		out, err = get(tx, []byte(id))
		return err
	})
	if err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	return out, nil
}

func get(tx *bolt.Tx, key []byte) (identity.Identity, error) {
	v := tx.Bucket(bucketIdentities).Get(key)
	if v == nil {
		return identity.Identity{}, identity.ErrNotFound
	}
	id, err := decodeRecord(key, v)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
	}
	return id, nil
}

// GetByPublicKey returns the identity bound to a device key.
func (s *Store) GetByPublicKey(ctx context.Context, key ed25519.PublicKey) (identity.Identity, error) {
	dev := identity.DeviceIDOf(key)
	if err := ctx.Err(); err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: get device %s: %w", dev, err)
	}
	if len(key) != ed25519.PublicKeySize {
		return identity.Identity{}, fmt.Errorf("boltstore: get device: %w: public key has %d bytes", identity.ErrInvalid, len(key))
	}
	var out identity.Identity
	err := s.view(func(tx *bolt.Tx) (err error) {
		ref := tx.Bucket(bucketKeys).Get(key)
		if ref == nil {
			return identity.ErrNotFound
		}
		out, err = get(tx, ref)
		if errors.Is(err, identity.ErrNotFound) {
			return fmt.Errorf("%w: key index names missing identity %s", identity.ErrUnavailable, ref)
		}
		return err
	})
	if err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: get device %s: %w", dev, err)
	}
	return out, nil
}

// FindValid returns the identities of the person with this PNR and COUNTRY
// that are valid for MFA at the given time, ordered by ID.
func (s *Store) FindValid(ctx context.Context, pnr, country string, at time.Time) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: find valid: %w", err)
	}
	if pnr == "" || country == "" {
		return nil, nil
	}
	person := referencePrefix(country, pnr)
	approved, _ := stateCode(identity.Approved)
	// Comparing the properties too makes a hash collision, however
	// unlikely, unable to send a push to the wrong person.
	out, err := s.person(append(person[:], approved), func(id identity.Identity) bool {
		return id.ValidAt(at) && id.Property(identity.PropPNR) == pnr && id.Property(identity.PropCountry) == country
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: find valid: %w", err)
	}
	return out, nil
}

// person reads the identities whose reference keys start with prefix (a
// person's, or a person's in one state), ordered by state and then ID, and
// keeps those keep holds for.
func (s *Store) person(prefix []byte, keep func(identity.Identity) bool) ([]identity.Identity, error) {
	var out []identity.Identity
	err := s.view(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketIdentities)
		c := tx.Bucket(bucketReferences).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			key := k[referencePrefixLen+1:] // past the person's hash and the state's code
			v := ids.Get(key)
			if v == nil {
				return fmt.Errorf("%w: reference index names missing identity %s", identity.ErrUnavailable, key)
			}
			id, err := decodeRecord(key, v)
			if err != nil {
				return fmt.Errorf("%w: identity %s: %w", identity.ErrUnavailable, key, err)
			}
			if keep(id) {
				out = append(out, id)
			}
		}
		return nil
	})
	return out, err
}

// FindPerson returns every identity of the person, in any state, ordered
// by ID.
func (s *Store) FindPerson(ctx context.Context, pnr, country string) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: find person: %w", err)
	}
	if pnr == "" || country == "" {
		return nil, nil
	}
	prefix := referencePrefix(country, pnr)
	out, err := s.person(prefix[:], func(id identity.Identity) bool {
		return id.Property(identity.PropPNR) == pnr && id.Property(identity.PropCountry) == country
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: find person: %w", err)
	}
	slices.SortFunc(out, func(a, b identity.Identity) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Countries returns the distinct COUNTRY of the Approved identities,
// sorted. The countries bucket is ordered by country, so this is one seek
// per country, however many identities each has.
func (s *Store) Countries(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: countries: %w", err)
	}
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCountries).Cursor()
		for k, _ := c.First(); k != nil; {
			country, _, ok := bytes.Cut(k, []byte{0})
			if !ok || len(country) == 0 {
				return fmt.Errorf("%w: countries index entry %q has no country", identity.ErrUnavailable, k)
			}
			out = append(out, string(country))
			// Past every entry of this country: NUL is the separator, so
			// the country followed by 0x01 sorts after all of them.
			k, _ = c.Seek(append(bytes.Clone(country), 1))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: countries: %w", err)
	}
	return out, nil
}

// List returns identities ordered by ID. Filtering by state scans the
// identities bucket, reading only the state byte of those it skips; that is
// fine for operator listings, which are rare and paged.
func (s *Store) List(ctx context.Context, q identity.Query) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: list: %w", err)
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("boltstore: list: %w: negative limit %d", identity.ErrInvalid, q.Limit)
	}
	if q.State != "" {
		if _, ok := stateCode(q.State); !ok {
			return nil, fmt.Errorf("boltstore: list: %w: unknown state %q", identity.ErrInvalid, q.State)
		}
	}
	var out []identity.Identity
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketIdentities).Cursor()
		var k, v []byte
		if q.After == "" {
			k, v = c.First()
		} else {
			k, v = c.Seek([]byte(q.After))
			if k != nil && string(k) == q.After {
				k, v = c.Next()
			}
		}
		for ; k != nil && (q.Limit == 0 || len(out) < q.Limit); k, v = c.Next() {
			if q.State != "" {
				st, err := peekState(v)
				if err != nil {
					return fmt.Errorf("%w: identity %s: %w", identity.ErrUnavailable, k, err)
				}
				if st != q.State {
					continue
				}
			}
			id, err := decodeRecord(k, v)
			if err != nil {
				return fmt.Errorf("%w: identity %s: %w", identity.ErrUnavailable, k, err)
			}
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: list: %w", err)
	}
	return out, nil
}

// PurgeApplications deletes old undecided applications in one transaction,
// reading only the state byte of the identities it keeps.
func (s *Store) PurgeApplications(ctx context.Context, appliedBefore time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltstore: purge applications: %w", err)
	}
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketIdentities)
		var old []identity.Identity
		err := ids.ForEach(func(k, v []byte) error {
			if st, err := peekState(v); err != nil || st != identity.Created {
				return err
			}
			id, err := decodeRecord(k, v)
			if err != nil {
				return fmt.Errorf("%w: identity %s: %w", identity.ErrUnavailable, k, err)
			}
			if id.Created.Before(appliedBefore) {
				old = append(old, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range old {
			if err := ids.Delete([]byte(id.ID)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketKeys).Delete(id.PublicKey); err != nil {
				return err
			}
			// Created identities have no countries entry; moveEntry
			// removes whatever entries the identity has, so a purge can
			// never leave one behind.
			if err := moveEntry(tx.Bucket(bucketReferences), referenceKey(id), nil); err != nil {
				return err
			}
			if err := moveEntry(tx.Bucket(bucketCountries), countryKey(id), nil); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore: purge applications: %w", err)
	}
	return n, nil
}

// Transition applies c to the identity in one transaction, so two operators
// acting at once cannot both succeed: bbolt runs one writer at a time and
// Change.Apply refuses the second, whose From no longer matches.
func (s *Store) Transition(ctx context.Context, id string, c identity.Change) (identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: transition %s: %w", id, err)
	}
	if c.At.IsZero() {
		// Change.Apply copies At into Updated as is; a zero At would
		// record the change as made in year 1.
		c.At = time.Now()
	}
	var out identity.Identity
	err := s.update(func(tx *bolt.Tx) error {
		cur, err := get(tx, []byte(id))
		if err != nil {
			return err
		}
		next, err := c.Apply(cur)
		if err != nil {
			return err
		}
		if err := validate(next); err != nil {
			return err
		}
		val, err := encodeRecord(next)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketIdentities).Put([]byte(id), val); err != nil {
			return err
		}
		if err := reindex(tx, cur, next); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return identity.Identity{}, fmt.Errorf("boltstore: transition %s: %w", id, err)
	}
	return out, nil
}

// Ping reports whether the store file is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: ping: %w", err)
	}
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketIdentities) == nil {
			return fmt.Errorf("%w: bucket %s missing", identity.ErrUnavailable, bucketIdentities)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: ping %s: %w", s.path, err)
	}
	return nil
}

// Close closes the file and releases its lock. It waits for transactions
// in progress; ctx is not consulted because a half-closed store is worse
// than a late one.
func (s *Store) Close(ctx context.Context) error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close %s: %w", s.path, err)
	}
	return nil
}
