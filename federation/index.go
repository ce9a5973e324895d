package federation

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Index is where a broker looks up the references its peers share with
// it: a bbolt file in the data directory, filled from the mirrored
// buckets. A lookup reads one page or two, however many references the
// peers share, which a JetStream bucket, keyed for replication, cannot do
// by lookup hash.
//
// Layout, per peer: a bucket of references by "<lookup>/<LegalId>", one
// of each LegalId's lookup (a person's number can change), and the peer's
// lookup key and the last mirror revision applied.
type Index struct {
	db *bolt.DB
}

var (
	bucketRefs = []byte("refs")
	bucketIDs  = []byte("ids")
	keyLookup  = []byte("lookup-key")
	keyRev     = []byte("revision")
)

// OpenIndex opens (or creates) the index file.
func OpenIndex(path string) (*Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("federation index: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("federation index %s: %w", path, err)
	}
	return &Index{db: db}, nil
}

// Close closes the file.
func (x *Index) Close() error { return x.db.Close() }

func peerBucket(tx *bolt.Tx, peerID string, create bool) (*bolt.Bucket, error) {
	if !create {
		return tx.Bucket([]byte("peer/" + peerID)), nil
	}
	return tx.CreateBucketIfNotExists([]byte("peer/" + peerID))
}

// Change is one mirrored update for the index: a reference to keep (the
// newest version of it), or one to forget.
type Change struct {
	Ref    Reference
	Forget bool // the reference with Ref.LegalID
}

// Apply writes a batch of a peer's changes, and the mirror revision they
// bring the index up to, in one transaction.
func (x *Index) Apply(peerID string, changes []Change, revision uint64) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		b, err := peerBucket(tx, peerID, true)
		if err != nil {
			return err
		}
		refs, err := b.CreateBucketIfNotExists(bucketRefs)
		if err != nil {
			return err
		}
		ids, err := b.CreateBucketIfNotExists(bucketIDs)
		if err != nil {
			return err
		}
		for _, c := range changes {
			id := []byte(c.Ref.LegalID)
			old := ids.Get(id)
			if old != nil {
				key := refKey(string(old), c.Ref.LegalID)
				if !c.Forget {
					if prev, err := DecodeReference(refs.Get(key)); err == nil && prev.Version > c.Ref.Version {
						continue // a late copy of an older version
					}
				}
				if err := refs.Delete(key); err != nil {
					return err
				}
				if err := ids.Delete(id); err != nil {
					return err
				}
			}
			if c.Forget {
				continue
			}
			if err := refs.Put(refKey(c.Ref.Lookup, c.Ref.LegalID), c.Ref.Encode()); err != nil {
				return err
			}
			if err := ids.Put(id, []byte(c.Ref.Lookup)); err != nil {
				return err
			}
		}
		return b.Put(keyRev, encodeUint(revision))
	})
}

func refKey(lookup, legalID string) []byte { return []byte(lookup + "/" + legalID) }

// SetLookupKey records the key a peer hashes its people's numbers with.
func (x *Index) SetLookupKey(peerID string, key LookupKey) error {
	if len(key) != LookupKeySize {
		return fmt.Errorf("lookup key of %d bytes", len(key))
	}
	return x.db.Update(func(tx *bolt.Tx) error {
		b, err := peerBucket(tx, peerID, true)
		if err != nil {
			return err
		}
		return b.Put(keyLookup, key)
	})
}

// Revision is the last mirror revision applied for a peer, 0 for none.
func (x *Index) Revision(peerID string) uint64 {
	var rev uint64
	x.db.View(func(tx *bolt.Tx) error {
		if b, _ := peerBucket(tx, peerID, false); b != nil {
			rev = decodeUint(b.Get(keyRev))
		}
		return nil
	})
	return rev
}

// Forget drops everything a peer shared: it withdrew sharing, or was
// removed.
func (x *Index) Forget(peerID string) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		err := tx.DeleteBucket([]byte("peer/" + peerID))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Count is how many references a peer shares with this broker.
func (x *Index) Count(peerID string) int {
	n := 0
	x.db.View(func(tx *bolt.Tx) error {
		if b, _ := peerBucket(tx, peerID, false); b != nil {
			if ids := b.Bucket(bucketIDs); ids != nil {
				n = ids.Stats().KeyN
			}
		}
		return nil
	})
	return n
}

// Find returns the references the given peers share for a person, of any
// state: the caller decides what is valid when.
func (x *Index) Find(country, pnr string, peerIDs []string) ([]Reference, error) {
	var out []Reference
	err := x.db.View(func(tx *bolt.Tx) error {
		for _, id := range peerIDs {
			b, _ := peerBucket(tx, id, false)
			if b == nil {
				continue
			}
			key := b.Get(keyLookup)
			refs := b.Bucket(bucketRefs)
			if key == nil || refs == nil {
				continue
			}
			prefix := []byte(LookupKey(key).Hash(country, pnr) + "/")
			c := refs.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				r, err := DecodeReference(v)
				if err != nil {
					return err
				}
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

func encodeUint(n uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[7-i] = byte(n >> (8 * i))
	}
	return b
}

func decodeUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}
