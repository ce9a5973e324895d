// Package mongostore is the identity store for brokers that run at scale:
// legal identities in MongoDB, shared by any number of broker replicas.
//
// # Documents
//
// LegalIdentities holds one document per identity (see identityDoc):
//
//	{_id: <identity ID>, format: 1, state: "Approved",
//	 properties: [{name: "PNR", value: "…"}, …],   // an array: user data is never a field name
//	 publicKey: BinData(0, 32 bytes), deviceId: "…",
//	 from: Date, to: Date,                          // absent until set
//	 created: Date, updated: Date, version: NumberLong}
//
// LegalIdentityReferences holds, for every identity with a PNR and a
// COUNTRY, the MFA lookup entry that federation will share (referenceDoc):
//
//	{_id: <identity ID = LegalId>, country, pnr, provider: "" (this broker),
//	 state, from, to, version, written: Date, token}
//
// LegalIdentityChanges holds one document per state transition
// (changeDoc), {_id: "<identity ID>#<new version>", identityId, version,
// from, to, at, validFrom, validTo, pending, written}: the history of every
// identity, and the compare-and-set that makes transitions atomic.
//
// # Indexes
//
// Created at Open, idempotently (creating an existing index is a no-op):
//
//	LegalIdentities          _id_ (unique by nature: the identity ID)
//	                         publicKey_unique  {publicKey: 1} unique
//	                         state_id          {state: 1, _id: 1}          List by state
//	LegalIdentityReferences  mfa_lookup        {country: 1, pnr: 1, state: 1, to: 1}
//	                         countries         {provider: 1, state: 1, country: 1}   Countries
//	LegalIdentityChanges     pending           {pending: 1} sparse
//
// FindValid is one query on mfa_lookup (country, pnr and state equal, to ≥
// the time; from ≤ the time filtered from the index's few entries per
// person), then the identities by _id. Countries walks the countries
// index: one query per country, each the first entry after the last
// country found, so one index seek each however many identities there are. Identities are the truth:
// FindValid returns only identities that are themselves Approved, valid at
// the time and have that PNR and COUNTRY, whatever a reference says.
//
// # Writes without transactions
//
// Standalone servers (and FerretDB) have no multi-document transactions, so
// every write is ordered such that a crash between two of its steps leaves
// nothing a reader could misuse, and no step needs a transaction:
//
//   - Create inserts the reference first, then the identity. A crash
//     between them leaves a reference to a missing identity, which readers
//     skip; the identity never exists without its reference. A duplicate
//     ID or key is refused by a unique index (error 11000) and the
//     reference of the refused identity is removed again.
//   - Transition inserts a change document whose _id names the identity
//     and the version the change makes: of two racing transitions from the
//     same version exactly one insert succeeds, on every server, because
//     _id is unique. The winner then updates the identity, conditionally on
//     its version and state still being those it read, then the reference
//     (only ever to a newer version), then clears the change's pending flag.
//     A crash or outage after the insert leaves the change pending; this
//     broker finishes its own pending changes as soon as MongoDB answers
//     again, and any broker finishes others' once they have been pending
//     longer than WithRepairAfter (30 s by default). The loser gets
//     identity.ErrConflict naming the state the identity is in now.
//
// Server-side conditional updates (findAndModify) are not used as the
// compare-and-set because FerretDB, which the tests run against, does not
// apply them atomically; the unique _id insert is atomic on every
// MongoDB-compatible server. Transactions are not used on replica sets
// either: the ordering above is correct without them, and a second,
// transactional code path would be one the tests never run.
//
// # Availability
//
// Every call has a deadline (WithOperationTimeout, 3 s by default, or the
// caller's, if sooner). When MongoDB cannot be reached the store logs one
// line, reports it to WithAvailabilityFunc, and from then on fails every
// call at once with identity.ErrUnavailable, while a background probe pings
// MongoDB every WithProbeInterval; when a ping succeeds it logs one line
// again and calls work. While available it pings every WithHealthInterval,
// so that Ping, which readiness checks call, notices an outage without
// traffic; Available reports the state without any I/O. With WithLazyOpen,
// Open succeeds during an outage and the store starts unavailable. A
// caller's own cancellation stays context.Canceled.
//
// # Durability
//
// Writes use write concern majority with journaling: on a replica set an
// acknowledged write is on a majority of members' journals and survives a
// failover; on a standalone mongod majority means the one server, and
// journaling means it is on its disk. A URI's own w, journal, retryWrites,
// serverSelectionTimeoutMS etc. override these defaults.
package mongostore

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/legalmfa/mfa/identity"
)

// ErrIndexConflict is returned by Open when an index of the name the store
// uses exists with other keys or options. It is a configuration problem,
// not an outage, so WithLazyOpen does not wait it out.
var ErrIndexConflict = errors.New("an index exists with other options than this broker's")

// DefaultDatabase is the database used when the URI's path names none.
const DefaultDatabase = "mfa"

// Store is an identity.Store in MongoDB. It holds one *mongo.Client, which
// pools connections and is safe for concurrent use; a broker opens one
// Store per process.
type Store struct {
	client  *mongo.Client
	ids     *mongo.Collection
	refs    *mongo.Collection
	changes *mongo.Collection
	cfg     config
	log     *slog.Logger
	hosts   string

	closed atomic.Bool
	ready  atomic.Bool // the indexes exist
	done   chan struct{}
	wg     sync.WaitGroup
	kick   chan struct{}

	// Availability: down is read on every call, so it is an atomic; the
	// rest changes only on transitions.
	down      atomic.Bool
	healthMu  sync.Mutex
	downSince time.Time
	downErr   error

	// unfinished are changes this process committed but could not finish;
	// the background loop finishes them as soon as MongoDB answers.
	unfinishedMu sync.Mutex
	unfinished   map[string]bool
}

var _ identity.Store = (*Store)(nil)

type config struct {
	opTimeout      time.Duration
	openTimeout    time.Duration
	probeInterval  time.Duration
	healthInterval time.Duration
	repairAfter    time.Duration
	logger         *slog.Logger
	onAvailability func(available bool, err error)
	lazy           bool
}

// Option configures Open.
type Option func(*config)

// WithOperationTimeout bounds each call to MongoDB (3 s by default). A
// caller's context with an earlier deadline wins.
func WithOperationTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.opTimeout = d
		}
	}
}

// WithOpenTimeout bounds Open: connecting, the first ping and creating the
// indexes (10 s by default).
func WithOpenTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.openTimeout = d
		}
	}
}

// WithProbeInterval sets how often the store pings MongoDB while it is
// unavailable (1 s by default): the longest a recovery goes unnoticed.
func WithProbeInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.probeInterval = d
		}
	}
}

// WithHealthInterval sets how often the store pings MongoDB while it is
// available (10 s by default), and so how soon an outage without traffic is
// noticed. Pending changes are also finished at this interval.
func WithHealthInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.healthInterval = d
		}
	}
}

// WithRepairAfter sets how long a change may stay pending before a broker
// other than the one that made it finishes it (30 s by default). It must be
// longer than any write takes.
func WithRepairAfter(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.repairAfter = d
		}
	}
}

// WithLazyOpen lets Open succeed when MongoDB does not answer: the store
// then starts unavailable (calls fail at once with identity.ErrUnavailable,
// Ping reports it, one line is logged) and becomes available when a probe
// reaches MongoDB and the indexes are created. A broker started during an
// outage can so come up, report not ready, and recover by itself. Without
// it, Open fails after the open timeout.
func WithLazyOpen() Option { return func(c *config) { c.lazy = true } }

// WithLogger sets the logger (slog.Default() by default). The store logs
// one line when MongoDB becomes unavailable and one when it is back, never
// one per failed call.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithAvailabilityFunc registers f to be called when MongoDB becomes
// unavailable (false, the error) and available again (true, nil). f is
// called from the goroutine that noticed, and must not block.
func WithAvailabilityFunc(f func(available bool, err error)) Option {
	return func(c *config) { c.onAvailability = f }
}

// Open connects to the MongoDB at uri, pings it and creates the indexes,
// all within the open timeout. The database is the URI's path, else
// DefaultDatabase. An unreachable server is
// identity.ErrUnavailable; a malformed URI is identity.ErrInvalid.
func Open(ctx context.Context, uri string, opts ...Option) (*Store, error) {
	cfg := config{
		opTimeout:      3 * time.Second,
		openTimeout:    10 * time.Second,
		probeInterval:  time.Second,
		healthInterval: 10 * time.Second,
		repairAfter:    30 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		// The driver's message may quote the URI, password and all.
		return nil, fmt.Errorf("mongostore: %w: the MongoDB URI %s is malformed", identity.ErrInvalid, redact(uri))
	}
	database := cs.Database
	if database == "" {
		database = DefaultDatabase
	}
	hosts := strings.Join(cs.Hosts, ",")
	if cs.Scheme == connstring.SchemeMongoDBSRV {
		hosts = "srv:" + hosts
	}

	j := true
	copts := options.Client().
		SetAppName("mfa-broker").
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetRetryWrites(true).
		SetRetryReads(true).
		SetReadPreference(readpref.Primary()).
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &j}).
		// The URI's options win over the defaults above.
		ApplyURI(uri)
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongostore: %w: connect to %s: %v", identity.ErrUnavailable, hosts, err)
	}
	db := client.Database(database)
	s := &Store{
		client:     client,
		ids:        db.Collection(CollIdentities),
		refs:       db.Collection(CollReferences),
		changes:    db.Collection(CollChanges),
		cfg:        cfg,
		log:        cfg.logger.With("component", "mongostore", "mongodb", hosts, "database", database),
		hosts:      hosts,
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		unfinished: map[string]bool{},
	}

	octx, cancel := context.WithTimeout(ctx, cfg.openTimeout)
	defer cancel()
	err = client.Ping(octx, readpref.Primary())
	if err == nil {
		err = s.ensureIndexes(octx)
		if err == nil {
			s.ready.Store(true)
		}
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongostore: open: %w", ctx.Err())
	case cfg.lazy && !errors.Is(err, ErrIndexConflict) && errors.Is(s.classify(octx, "open", err), identity.ErrUnavailable):
		// Start unavailable; the probe creates the indexes once MongoDB
		// answers.
		s.markDown(err)
	default:
		client.Disconnect(context.Background())
		if errors.Is(err, identity.ErrUnavailable) || errors.Is(err, ErrIndexConflict) {
			return nil, fmt.Errorf("mongostore: open: %w", err)
		}
		return nil, fmt.Errorf("mongostore: %w: MongoDB at %s did not answer within %v: %v", identity.ErrUnavailable, hosts, cfg.openTimeout, err)
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// indexes returns the indexes Open creates. Changing one means a new
// name: MongoDB refuses an index whose name exists with other options. The
// models are made afresh for each Open: the driver writes to them.
func indexes(coll string) []mongo.IndexModel {
	switch coll {
	case CollIdentities:
		return []mongo.IndexModel{
			{Keys: bson.D{{Key: "publicKey", Value: 1}}, Options: options.Index().SetName("publicKey_unique").SetUnique(true)},
			{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("state_id")},
		}
	case CollReferences:
		return []mongo.IndexModel{
			{Keys: bson.D{{Key: "country", Value: 1}, {Key: "pnr", Value: 1}, {Key: "state", Value: 1}, {Key: "to", Value: 1}}, Options: options.Index().SetName("mfa_lookup")},
			{Keys: bson.D{{Key: "provider", Value: 1}, {Key: "state", Value: 1}, {Key: "country", Value: 1}}, Options: options.Index().SetName("countries")},
		}
	case CollChanges:
		return []mongo.IndexModel{
			{Keys: bson.D{{Key: "pending", Value: 1}}, Options: options.Index().SetName("pending").SetSparse(true)},
		}
	}
	return nil
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	for _, coll := range []*mongo.Collection{s.ids, s.refs, s.changes} {
		// One index per command: FerretDB 1.24 panics on a createIndexes
		// that names more than one existing index.
		for _, ix := range indexes(coll.Name()) {
			if _, err := coll.Indexes().CreateOne(ctx, ix); err != nil {
				var ce mongo.CommandError
				if errors.As(err, &ce) && (ce.Code == 85 || ce.Code == 86) {
					return fmt.Errorf("%w: %s: drop it to let the broker create its own: %v", ErrIndexConflict, coll.Name(), err)
				}
				return s.classify(ctx, fmt.Sprintf("create indexes on %s", coll.Name()), err)
			}
		}
	}
	return nil
}

// Close stops the background probe and disconnects the client. Calls after
// Close fail with identity.ErrUnavailable.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.opTimeout)
		defer cancel()
	}
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongostore: close: %w", err)
	}
	return nil
}

// begin starts a call: it refuses a cancelled context, a closed store, and,
// without waiting, a store known to be unavailable; and it gives the call
// its deadline.
func (s *Store) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("%w: the store is closed", identity.ErrUnavailable)
	}
	if s.down.Load() {
		return nil, nil, s.unavailableErr()
	}
	octx, cancel := context.WithTimeout(context.WithValue(ctx, callerKey{}, ctx), s.cfg.opTimeout)
	return octx, cancel, nil
}

// callerKey keeps the caller's context in a call's context, so that errors
// can be told apart: the caller cancelling or its deadline passing, or the
// store's own deadline passing.
type callerKey struct{}

// detached gives the steps after a change's commit point their own
// deadline: once a change is committed, a caller giving up must not leave
// it half done.
func (s *Store) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithValue(context.WithoutCancel(ctx), callerKey{}, context.Background()), s.cfg.opTimeout)
}

// Get returns the identity with the given ID.
func (s *Store) Get(ctx context.Context, id string) (identity.Identity, error) {
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: get %s: %w", id, err)
	}
	defer cancel()
	out, err := s.get(octx, id)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: get %s: %w", id, err)
	}
	return out, nil
}

func (s *Store) get(ctx context.Context, id string) (identity.Identity, error) {
	if identity.ValidateID(id) != nil {
		// No stored identity can have it; no need to ask.
		return identity.Identity{}, identity.ErrNotFound
	}
	return s.findOne(ctx, "get", bson.D{{Key: "_id", Value: id}})
}

func (s *Store) findOne(ctx context.Context, op string, filter bson.D) (identity.Identity, error) {
	var doc identityDoc
	if err := s.ids.FindOne(ctx, filter).Decode(&doc); err != nil {
		return identity.Identity{}, s.classify(ctx, op, err)
	}
	out, err := decodeIdentity(doc)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
	}
	return out, nil
}

// GetByPublicKey returns the identity bound to a device key.
func (s *Store) GetByPublicKey(ctx context.Context, key ed25519.PublicKey) (identity.Identity, error) {
	dev := identity.DeviceIDOf(key)
	if len(key) != ed25519.PublicKeySize {
		if err := ctx.Err(); err != nil {
			return identity.Identity{}, fmt.Errorf("mongostore: get device: %w", err)
		}
		return identity.Identity{}, fmt.Errorf("mongostore: get device: %w: public key has %d bytes", identity.ErrInvalid, len(key))
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: get device %s: %w", dev, err)
	}
	defer cancel()
	out, err := s.findOne(octx, "get device", bson.D{{Key: "publicKey", Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: key}}})
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: get device %s: %w", dev, err)
	}
	return out, nil
}

// purgeBatch bounds the applications one pass of PurgeApplications reads.
const purgeBatch = 1000

// PurgeApplications deletes old undecided applications one by one, each
// only if it is still Created, and its reference only once it is gone: an
// operator approving one at the same moment either wins, and it stays, or
// finds it gone.
func (s *Store) PurgeApplications(ctx context.Context, appliedBefore time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("mongostore: purge applications: %w", err)
	}
	filter := bson.D{
		{Key: "state", Value: string(identity.Created)},
		{Key: "created", Value: bson.D{{Key: "$lt", Value: date(appliedBefore)}}},
	}
	n := 0
	for {
		octx, cancel, err := s.begin(ctx)
		if err != nil {
			return n, fmt.Errorf("mongostore: purge applications: %w", err)
		}
		cur, err := s.ids.Find(octx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(purgeBatch))
		var found []struct {
			ID string `bson:"_id"`
		}
		if err == nil {
			err = cur.All(octx, &found)
		}
		if err != nil {
			cancel()
			return n, fmt.Errorf("mongostore: purge applications: %w", s.classify(octx, "find applications", err))
		}
		for _, f := range found {
			res, err := s.ids.DeleteOne(octx, append(bson.D{{Key: "_id", Value: f.ID}}, filter...))
			if err != nil {
				cancel()
				return n, fmt.Errorf("mongostore: purge applications: %w", s.classify(octx, "delete application", err))
			}
			if res.DeletedCount == 1 {
				n++
				if _, err := s.refs.DeleteOne(octx, bson.D{{Key: "_id", Value: f.ID}}); err != nil {
					cancel()
					return n, fmt.Errorf("mongostore: purge applications: %w", s.classify(octx, "delete reference", err))
				}
			}
		}
		cancel()
		if len(found) < purgeBatch {
			return n, nil
		}
	}
}

// maxPerPerson bounds how many references one lookup reads. A person has
// one identity per device; thousands would be an attack or a bug.
const maxPerPerson = 1000

// FindValid returns the identities of the person with this PNR and COUNTRY
// that are valid for MFA at the given time, ordered by ID.
func (s *Store) FindValid(ctx context.Context, pnr, country string, at time.Time) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mongostore: find valid: %w", err)
	}
	if pnr == "" || country == "" {
		return nil, nil
	}
	// Values no identity may have cannot match: answer without asking, so
	// junk never reaches the database.
	if identity.ValidateProperties([]identity.Property{{Name: identity.PropPNR, Value: pnr}, {Name: identity.PropCountry, Value: country}}) != nil {
		return nil, nil
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongostore: find valid: %w", err)
	}
	defer cancel()
	out, err := s.findValid(octx, pnr, country, at)
	if err != nil {
		return nil, fmt.Errorf("mongostore: find valid: %w", err)
	}
	return out, nil
}

// lookupFilter is the MFA lookup on LegalIdentityReferences, answered from
// the mfa_lookup index. BSON dates have milliseconds, so at is truncated:
// the filter may then admit an identity that ends within the millisecond,
// which the check on the identity itself removes.
func lookupFilter(pnr, country string, at time.Time) bson.D {
	d := date(at)
	return bson.D{
		{Key: "country", Value: country},
		{Key: "pnr", Value: pnr},
		{Key: "state", Value: string(identity.Approved)},
		{Key: "to", Value: bson.D{{Key: "$gte", Value: d}}},
		{Key: "from", Value: bson.D{{Key: "$lte", Value: d}}},
	}
}

// FindPerson returns every identity of the person, in any state, ordered
// by ID: from the references, on the lookup index's first two keys.
func (s *Store) FindPerson(ctx context.Context, pnr, country string) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mongostore: find person: %w", err)
	}
	if pnr == "" || country == "" || identity.ValidateProperties([]identity.Property{{Name: identity.PropPNR, Value: pnr}, {Name: identity.PropCountry, Value: country}}) != nil {
		return nil, nil
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongostore: find person: %w", err)
	}
	defer cancel()
	out, err := s.findReferenced(octx, bson.D{{Key: "country", Value: country}, {Key: "pnr", Value: pnr}}, func(id identity.Identity) bool {
		return id.Property(identity.PropPNR) == pnr && id.Property(identity.PropCountry) == country
	})
	if err != nil {
		return nil, fmt.Errorf("mongostore: find person: %w", err)
	}
	return out, nil
}

func (s *Store) findValid(ctx context.Context, pnr, country string, at time.Time) ([]identity.Identity, error) {
	return s.findReferenced(ctx, lookupFilter(pnr, country, at), func(id identity.Identity) bool {
		return id.ValidAt(at) && id.Property(identity.PropPNR) == pnr && id.Property(identity.PropCountry) == country
	})
}

// findReferenced reads the identities the references matching refFilter
// name, keeping those keep holds for: the identity is the truth, and a
// reference left behind by an unfinished write, or one that disagrees,
// changes nothing.
func (s *Store) findReferenced(ctx context.Context, refFilter bson.D, keep func(identity.Identity) bool) ([]identity.Identity, error) {
	cur, err := s.refs.Find(ctx, refFilter,
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(maxPerPerson))
	if err != nil {
		return nil, s.classify(ctx, "find references", err)
	}
	var refs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &refs); err != nil {
		return nil, s.classify(ctx, "read references", err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	var filter bson.D
	if len(refs) == 1 {
		// A plain _id lookup: indexed on every server, FerretDB included.
		filter = bson.D{{Key: "_id", Value: refs[0].ID}}
	} else {
		ids := make(bson.A, len(refs))
		for i, r := range refs {
			ids[i] = r.ID
		}
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	found, err := s.find(ctx, "find identities", filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	out := found[:0]
	for _, id := range found {
		if keep(id) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (s *Store) find(ctx context.Context, op string, filter bson.D, opts ...options.Lister[options.FindOptions]) ([]identity.Identity, error) {
	cur, err := s.ids.Find(ctx, filter, opts...)
	if err != nil {
		return nil, s.classify(ctx, op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []identity.Identity
	for cur.Next(ctx) {
		var doc identityDoc
		if err := cur.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", identity.ErrUnavailable, op, err)
		}
		id, err := decodeIdentity(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
		}
		out = append(out, id)
	}
	if err := cur.Err(); err != nil {
		return nil, s.classify(ctx, op, err)
	}
	return out, nil
}

// countriesQuery finds the first country after the given one among this
// broker's own references (provider "") of Approved identities: equality
// on the countries index's first two keys, a range and the sort on its
// third, one entry read. A string bound also skips any country that is not
// a string.
func countriesQuery(after string) (bson.D, *options.FindOneOptionsBuilder) {
	filter := bson.D{
		{Key: "provider", Value: ""},
		{Key: "state", Value: string(identity.Approved)},
		{Key: "country", Value: bson.D{{Key: "$gt", Value: after}}},
	}
	return filter, options.FindOne().
		SetSort(bson.D{{Key: "country", Value: 1}}).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "country", Value: 1}})
}

// maxCountries bounds Countries' walk: there are 249 country codes.
const maxCountries = 300

// Countries returns the distinct COUNTRY of the Approved identities,
// sorted, from the references, by a skip scan of the countries index
// (MongoDB's distinct would do the same, but FerretDB refuses it with a
// deadline). References follow their identities: a transition updates the
// identity first and its reference right after, and an interrupted one is
// finished by the repair loop, so the answer can trail a transition by at
// most WithRepairAfter.
func (s *Store) Countries(ctx context.Context) ([]string, error) {
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongostore: countries: %w", err)
	}
	defer cancel()
	var out []string
	for after := ""; len(out) < maxCountries; {
		filter, opts := countriesQuery(after)
		var ref struct {
			Country string `bson:"country"`
		}
		err := s.refs.FindOne(octx, filter, opts).Decode(&ref)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("mongostore: countries: %w", s.classify(octx, "find countries", err))
		}
		if ref.Country <= after {
			// The server broke the order it was asked for: stop rather
			// than loop.
			return nil, fmt.Errorf("mongostore: countries: %w: country %q after %q", identity.ErrUnavailable, ref.Country, after)
		}
		after = ref.Country
		// Every reference's country passed identity.ValidateProperties
		// when it was written; anything else was not written here, and is
		// not reported as a country this broker serves.
		if identity.IsCountryCode(ref.Country) {
			out = append(out, ref.Country)
		}
	}
	return nil, fmt.Errorf("mongostore: countries: %w: more than %d countries", identity.ErrUnavailable, maxCountries)
}

// List returns identities ordered by ID, from the _id index, or from the
// state_id index when restricted to a state.
func (s *Store) List(ctx context.Context, q identity.Query) ([]identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mongostore: list: %w", err)
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("mongostore: list: %w: negative limit %d", identity.ErrInvalid, q.Limit)
	}
	if q.State != "" {
		if st, err := identity.ParseState(string(q.State)); err != nil || st != q.State {
			return nil, fmt.Errorf("mongostore: list: %w: unknown state %q", identity.ErrInvalid, q.State)
		}
	}
	if !utf8.ValidString(q.After) {
		return nil, fmt.Errorf("mongostore: list: %w: After is not valid UTF-8", identity.ErrInvalid)
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongostore: list: %w", err)
	}
	defer cancel()
	filter := bson.D{}
	if q.State != "" {
		filter = append(filter, bson.E{Key: "state", Value: string(q.State)})
	}
	if q.After != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.After}}})
	}
	fo := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if q.Limit > 0 {
		fo.SetLimit(int64(q.Limit))
	}
	out, err := s.find(octx, "list", filter, fo)
	if err != nil {
		return nil, fmt.Errorf("mongostore: list: %w", err)
	}
	return out, nil
}

// Create stores a new identity. A zero Created is set to the current time
// and a zero Updated to Created. The identity is checked before anything
// is sent to MongoDB: identity.Validate (which refuses '$', '.' and NUL in
// names, control characters in values and oversized data), times within
// the years 1 to 9999, and an encoded size of at most MaxDocumentSize.
func (s *Store) Create(ctx context.Context, id identity.Identity) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mongostore: create %s: %w", id.ID, err)
	}
	if err := validate(id); err != nil {
		return fmt.Errorf("mongostore: create %s: %w", id.ID, err)
	}
	now := time.Now()
	if id.Created.IsZero() {
		id.Created = now
	}
	if id.Updated.IsZero() {
		id.Updated = id.Created
	}
	doc, err := encodeIdentity(id)
	if err != nil {
		return fmt.Errorf("mongostore: create %s: %w", id.ID, err)
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("mongostore: create %s: %w", id.ID, err)
	}
	defer cancel()
	if err := s.create(octx, id, doc, now); err != nil {
		return fmt.Errorf("mongostore: create %s: %w", id.ID, err)
	}
	return nil
}

func (s *Store) create(ctx context.Context, id identity.Identity, doc identityDoc, now time.Time) error {
	ref, hasRef := reference(id, now)
	if hasRef {
		ref.Token = newToken()
		if err := s.insertReference(ctx, ref); err != nil {
			return err
		}
	}
	_, err := s.ids.InsertOne(ctx, doc)
	if err == nil {
		return nil
	}
	err = s.classify(ctx, "insert identity", err)
	if !errors.Is(err, identity.ErrDuplicate) {
		// The insert may or may not have happened: keep the reference,
		// which is harmless either way.
		return err
	}
	// Refused by a unique index, on _id or on publicKey; the server does
	// not always say which. Undo the reference written above, unless it
	// now belongs to someone else.
	dctx, cancel := s.detached(ctx)
	defer cancel()
	existing, gerr := s.get(dctx, id.ID)
	switch {
	case gerr == nil:
		if hasRef {
			s.restoreReference(dctx, existing, ref.Token)
		}
		return fmt.Errorf("%w: ID in use", identity.ErrDuplicate)
	case errors.Is(gerr, identity.ErrNotFound):
		if hasRef {
			s.refs.DeleteOne(dctx, bson.D{{Key: "_id", Value: ref.LegalID}, {Key: "token", Value: ref.Token}})
		}
		// The other identity's ID is left out: the error may reach
		// whoever applied with the key.
		return fmt.Errorf("%w: public key bound to another identity", identity.ErrDuplicate)
	default:
		return fmt.Errorf("%w (and could not tell whether by ID or key: %v)", err, gerr)
	}
}

// insertReference inserts a new identity's reference. A reference with the
// same ID exists when the ID is taken, when another Create of it runs, or
// when an earlier Create stopped between reference and identity; only in
// the last case, told by the same content (a retry) or by age, is it taken
// over.
func (s *Store) insertReference(ctx context.Context, ref referenceDoc) error {
	_, err := s.refs.InsertOne(ctx, ref)
	if err == nil {
		return nil
	}
	if err = s.classify(ctx, "insert reference", err); !errors.Is(err, identity.ErrDuplicate) {
		return err
	}
	if _, gerr := s.get(ctx, ref.LegalID); gerr == nil {
		return fmt.Errorf("%w: ID in use", identity.ErrDuplicate)
	} else if !errors.Is(gerr, identity.ErrNotFound) {
		return gerr
	}
	var old referenceDoc
	if err := s.refs.FindOne(ctx, bson.D{{Key: "_id", Value: ref.LegalID}}).Decode(&old); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("%w: ID in use by a concurrent create", identity.ErrDuplicate)
		}
		return s.classify(ctx, "read reference", err)
	}
	sameContent := old.Country == ref.Country && old.PNR == ref.PNR && old.State == ref.State &&
		old.Version == ref.Version && optEqual(old.From, ref.From) && optEqual(old.To, ref.To)
	if !sameContent && time.Since(fromDate(old.Written)) < s.cfg.repairAfter {
		return fmt.Errorf("%w: ID in use by a concurrent create", identity.ErrDuplicate)
	}
	res, err := s.refs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: ref.LegalID}, {Key: "token", Value: old.Token}}, ref)
	if err != nil {
		return s.classify(ctx, "replace reference", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("%w: ID in use by a concurrent create", identity.ErrDuplicate)
	}
	return nil
}

func optEqual(a, b *bson.DateTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// restoreReference puts back the reference of an existing identity that a
// refused Create had taken over (token is the refused Create's). Failures
// are left to the identity's next transition.
func (s *Store) restoreReference(ctx context.Context, existing identity.Identity, token string) {
	filter := bson.D{{Key: "_id", Value: existing.ID}, {Key: "token", Value: token}}
	if ref, ok := reference(existing, time.Now()); ok {
		ref.Token = newToken()
		s.refs.ReplaceOne(ctx, filter, ref)
	} else {
		s.refs.DeleteOne(ctx, filter)
	}
}

func newToken() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Transition applies c to the identity if and only if its state is still
// c.From. The rules are identity.Change.Apply's; the compare-and-set is the
// insert of the change document "<ID>#<new version>", which only one of any
// number of racing transitions can make (see the package documentation).
func (s *Store) Transition(ctx context.Context, id string, c identity.Change) (identity.Identity, error) {
	if err := ctx.Err(); err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: transition %s: %w", id, err)
	}
	if c.At.IsZero() {
		// Change.Apply copies At into Updated as is; a zero At would
		// record the change as made in year 1.
		c.At = time.Now()
	}
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: transition %s: %w", id, err)
	}
	defer cancel()
	out, err := s.transition(octx, id, c)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("mongostore: transition %s: %w", id, err)
	}
	return out, nil
}

func (s *Store) transition(ctx context.Context, id string, c identity.Change) (identity.Identity, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return identity.Identity{}, err
	}
	next, err := c.Apply(cur)
	if err != nil {
		return identity.Identity{}, err
	}
	if err := validate(next); err != nil {
		return identity.Identity{}, err
	}
	next = stored(next)
	ch := changeDoc{
		ID:         changeID(id, next.Version),
		IdentityID: id,
		Version:    next.Version,
		From:       string(cur.State),
		To:         string(next.State),
		At:         date(next.Updated),
		Pending:    true,
		Written:    date(time.Now()),
	}
	if c.To == identity.Approved {
		ch.ValidFrom, ch.ValidTo = optDate(next.From), optDate(next.To)
	}
	if _, err := s.changes.InsertOne(ctx, ch); err != nil {
		err = s.classify(ctx, "record change", err)
		if errors.Is(err, identity.ErrDuplicate) {
			return identity.Identity{}, s.lost(ctx, ch, c)
		}
		// The insert may have happened: if it did, the change is
		// committed, and this broker finishes it when it can.
		s.addUnfinished(ch.ID)
		return identity.Identity{}, err
	}
	// Committed: finish even if the caller gives up now.
	dctx, dcancel := s.detached(ctx)
	defer dcancel()
	if err := s.apply(dctx, cur, next, ch.ID); err != nil {
		s.addUnfinished(ch.ID)
		return identity.Identity{}, fmt.Errorf("%w (the change to %s is recorded and will be applied when MongoDB answers again)", err, next.State)
	}
	return next, nil
}

// lost reports the compare-and-set lost to another transition.
func (s *Store) lost(ctx context.Context, mine changeDoc, c identity.Change) error {
	var won changeDoc
	if err := s.changes.FindOne(ctx, bson.D{{Key: "_id", Value: mine.ID}}).Decode(&won); err != nil {
		return fmt.Errorf("%w: %s was changed by another operator meanwhile", identity.ErrConflict, mine.IdentityID)
	}
	if won.Pending {
		// Normally the winner is finishing it right now; if it died, the
		// repair loop finishes it after WithRepairAfter.
		s.poke()
	}
	return fmt.Errorf("%w: %s is %s now, not %s", identity.ErrConflict, mine.IdentityID, won.To, c.From)
}

// apply makes a committed change visible: the identity, conditionally on
// it still being the version and state the change was made from, then its
// reference, then the change is no longer pending. Every step is
// idempotent, so a repair may repeat it.
func (s *Store) apply(ctx context.Context, cur, next identity.Identity, changeID string) error {
	set := bson.D{
		{Key: "state", Value: string(next.State)},
		{Key: "updated", Value: date(next.Updated)},
		{Key: "version", Value: next.Version},
	}
	if !next.From.IsZero() {
		set = append(set, bson.E{Key: "from", Value: date(next.From)}, bson.E{Key: "to", Value: date(next.To)})
	}
	filter := bson.D{{Key: "_id", Value: cur.ID}, {Key: "version", Value: cur.Version}, {Key: "state", Value: string(cur.State)}}
	if _, err := s.ids.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}}); err != nil {
		return s.classify(ctx, "update identity", err)
	}
	if err := s.updateReference(ctx, next); err != nil {
		return err
	}
	if _, err := s.changes.UpdateOne(ctx, bson.D{{Key: "_id", Value: changeID}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}}); err != nil {
		return s.classify(ctx, "clear pending change", err)
	}
	return nil
}

// updateReference brings the identity's reference up to its version; a
// reference already at that version or newer is left alone.
func (s *Store) updateReference(ctx context.Context, id identity.Identity) error {
	ref, ok := reference(id, time.Now())
	if !ok {
		return nil
	}
	ref.Token = newToken()
	filter := bson.D{{Key: "_id", Value: id.ID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: id.Version}}}}
	_, err := s.refs.ReplaceOne(ctx, filter, ref, options.Replace().SetUpsert(true))
	if err != nil {
		// The upsert collides with a reference that is already as new.
		if err = s.classify(ctx, "update reference", err); errors.Is(err, identity.ErrDuplicate) {
			return nil
		}
		return err
	}
	return nil
}

// Ping reports whether MongoDB answers. While the store knows MongoDB to be
// unavailable it answers at once, without waiting for a timeout, so a
// readiness check stays fast.
func (s *Store) Ping(ctx context.Context) error {
	octx, cancel, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("mongostore: ping: %w", err)
	}
	defer cancel()
	if err := s.client.Ping(octx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongostore: ping: %w", s.classify(octx, "ping", err))
	}
	return nil
}
