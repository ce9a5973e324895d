package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/identity"
)

// Buckets in a peer's account. This broker's references for the peer are
// in ShareBucket of the peer's account here; the peer's for this broker
// arrive in RefsBucket, a mirror of the peer's ShareBucket across the
// link.
const (
	ShareBucket = "MFA_SHARE"
	RefsBucket  = "MFA_REFS"
)

// Keys in a share bucket besides the references ("r.<base32 LegalId>").
const (
	keyShareLookup  = "lookup-key"
	keyShareSharing = "sharing"
	sharingOn       = "on"
	sharingOff      = "off"
)

// Identities is what federation reads of the broker's own identities, to
// share them.
type Identities interface {
	List(ctx context.Context, q identity.Query) ([]identity.Identity, error)
}

// Home serves a peer's request to ask one of this broker's people, with
// this broker's own rules; the broker is one. It fills in the reply's
// outcome; federation addresses and signs it.
type Home interface {
	ServePeer(ctx context.Context, peer Peer, req AskRequest) AskReply
}

// Config is what federation needs of the broker.
type Config struct {
	Key   ed25519.PrivateKey
	Creds *bus.BrokerCredentials
	// Server is the embedded NATS server, which federation reconfigures
	// as peers come and go; nil on an external server or cluster, which
	// the operator configures (bus.ServerFederationConfig).
	Server *bus.EmbeddedServer
	// NATSURL is where the broker's connections in its peers' accounts
	// are made, with ConnectOptions besides the credentials (TLS).
	NATSURL        string
	ConnectOptions []nats.Option
	Domain         string
	Peers          *Peers
	Index          *Index
	Identities     Identities
	LookupKey      LookupKey
	Home           Home
	Logger         *slog.Logger
	Now            func() time.Time
}

// Federation keeps this broker's links with its approved peers: their
// accounts and links on NATS, the references shared both ways, and the
// requests asked and served across.
type Federation struct {
	cfg Config
	me  string

	// reconciling serializes reconciles, which talk to JetStream and may
	// export every identity; mu guards links only, briefly, so that
	// lookups never wait for a reconcile.
	reconciling sync.Mutex
	mu          sync.Mutex
	links       map[string]*link

	stop    context.CancelFunc
	stopped chan struct{}
}

// link is everything of one approved peer. Its ID and key never change;
// what the operator decides about it does, so peer is read under mu.
type link struct {
	id     string
	key    ed25519.PublicKey
	nc     *nats.Conn
	js     jetstream.JetStream
	ctx    context.Context // ends with the link
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	peer    Peer
	share   jetstream.KeyValue            // when this broker shares with the peer
	serving map[string]context.CancelFunc // the peer's requests served here
	seen    map[string]time.Time          // their IDs, until they expire
	pruneAt time.Time                     // when seen is next swept
	up      bool                          // as watchLink last saw it
	dropped chan struct{}                 // closed when the link has been down linkDownAfter
	// jobCancel stops the export or unsharing running in the
	// background, and jobDone is closed when it has.
	jobCancel context.CancelFunc
	jobDone   chan struct{}
}

// Start brings up the links with the approved peers, and follows the
// operator's decisions from then on.
func Start(ctx context.Context, cfg Config) (*Federation, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Federation{cfg: cfg, me: api.PeerID(cfg.Key.Public().(ed25519.PublicKey)), links: map[string]*link{}, stopped: make(chan struct{})}
	if err := f.reconcile(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	changed := cfg.Peers.Changed()
	go func() {
		defer close(f.stopped)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-changed:
			case <-tick.C:
				// A link whose setup failed (the peer's server was down)
				// is tried again.
			}
			cctx, cancel := context.WithTimeout(rctx, 30*time.Second)
			if err := f.reconcile(cctx); err != nil {
				f.cfg.Logger.Warn("federation: peers not all set up", "err", err)
			}
			cancel()
		}
	}()
	return f, nil
}

// Close ends every link.
func (f *Federation) Close() {
	if f.stop != nil {
		f.stop()
		<-f.stopped
	}
	f.reconciling.Lock()
	defer f.reconciling.Unlock()
	f.mu.Lock()
	links := f.links
	f.links = map[string]*link{}
	f.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// ID is this broker's peer ID.
func (f *Federation) ID() string { return f.me }

// reconcile makes the links what the operator decided.
func (f *Federation) reconcile(ctx context.Context) error {
	f.reconciling.Lock()
	defer f.reconciling.Unlock()
	var approved []bus.Peer
	want := map[string]Peer{}
	for _, p := range f.cfg.Peers.List() {
		if p.Approved {
			approved = append(approved, bus.Peer{ID: p.ID, Key: p.PublicKey, LeafURL: p.LeafURL})
			want[p.ID] = p
		}
	}
	var errs []error
	f.mu.Lock()
	var ended []*link
	for id, l := range f.links {
		if _, ok := want[id]; !ok {
			ended = append(ended, l)
			delete(f.links, id)
		}
	}
	f.mu.Unlock()
	for _, l := range ended {
		id := l.id
		{
			// What was shared goes with the link, before the account
			// does: nothing of it stays readable in the peer's account.
			// The link's own work stops first.
			l.cancel()
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			for _, bucket := range []string{ShareBucket, RefsBucket} {
				if err := l.js.DeleteKeyValue(dctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
					f.cfg.Logger.Warn("federation: a bucket of an ended link not deleted", "peer", id, "bucket", bucket, "err", err)
				}
			}
			cancel()
			l.close()
			if err := f.cfg.Index.Forget(id); err != nil {
				errs = append(errs, err)
			}
			f.cfg.Logger.Info("federation: peer link ended", "peer", id)
		}
	}
	if f.cfg.Server != nil {
		if err := f.cfg.Server.SetPeers(f.cfg.Creds, f.me, approved); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	for id, p := range want {
		f.mu.Lock()
		l := f.links[id]
		f.mu.Unlock()
		if l == nil {
			var err error
			if l, err = f.open(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", id, err))
				continue
			}
			f.mu.Lock()
			f.links[id] = l
			f.mu.Unlock()
			f.cfg.Logger.Info("federation: peer link set up", "peer", id, "domain", p.Domain)
		}
		l.mu.Lock()
		l.peer = p
		l.mu.Unlock()
		if err := f.setSharing(ctx, l, p.Share); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: sharing: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// open makes the broker's connection in the peer's account, the mirror of
// the peer's references, and the subscriptions for the peer's requests.
func (f *Federation) open(ctx context.Context, p Peer) (*link, error) {
	opts := append(f.cfg.Creds.FederationConnectOptions(p.ID), nats.MaxReconnects(-1))
	nc, err := nats.Connect(f.cfg.NATSURL, append(opts, f.cfg.ConnectOptions...)...)
	if err != nil {
		if f.cfg.Server == nil {
			return nil, fmt.Errorf("connect in the peer's account (does the NATS configuration have it? print it with 'mfa-broker nats-config --federation-listen' and reload the servers): %w", err)
		}
		return nil, fmt.Errorf("connect in the peer's account: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// The share bucket exists from the start, shared with or not: the
	// peer's mirror of it can then be set up at once, and what this
	// broker decides later arrives as data in it.
	if _, err := js.CreateOrUpdateKeyValue(ctx, shareBucketConfig); err != nil {
		nc.Close()
		return nil, fmt.Errorf("share bucket: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &link{id: p.ID, key: p.PublicKey, peer: p, nc: nc, js: js, ctx: lctx, cancel: cancel,
		serving: map[string]context.CancelFunc{}, seen: map[string]time.Time{}, dropped: make(chan struct{})}
	// Replicas of this broker share the asks; cancels and pings reach
	// all, and only the replica serving an ask acts on its cancel.
	if _, err := nc.QueueSubscribe(askSubject(f.me), queueGroup, func(m *nats.Msg) { f.serve(l, m) }); err != nil {
		l.close()
		return nil, err
	}
	if _, err := nc.QueueSubscribe(pingSubject(f.me), queueGroup, func(m *nats.Msg) { m.Respond(nil) }); err != nil {
		l.close()
		return nil, err
	}
	if _, err := nc.Subscribe(cancelSubject(f.me), func(m *nats.Msg) { f.cancelServed(l, m) }); err != nil {
		l.close()
		return nil, err
	}
	l.up = f.linkUp(l)
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		f.keepMirror(lctx, l)
	}()
	go func() {
		defer l.wg.Done()
		f.watchLink(lctx, l)
	}()
	return l, nil
}

// current is the peer as last decided.
func (l *link) current() Peer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peer
}

func (l *link) close() {
	l.cancel()
	l.mu.Lock()
	for _, cancel := range l.serving {
		cancel()
	}
	l.mu.Unlock()
	l.nc.Close()
	l.wg.Wait()
}

// watchLink follows the link's state for the asks across it, and ends
// the requests served for the peer when it drops: its caller can no
// longer hear the answer, so its devices withdraw. One watcher per link,
// however many requests are pending.
func (f *Federation) watchLink(ctx context.Context, l *link) {
	tick := time.NewTicker(linkCheck)
	defer tick.Stop()
	downSince := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		up := f.linkUp(l)
		if up {
			downSince = time.Time{}
			l.markUp()
			continue
		}
		l.mu.Lock()
		l.up = false
		switch {
		case downSince.IsZero():
			downSince = time.Now()
		case time.Since(downSince) >= linkDownAfter:
			select {
			case <-l.dropped:
			default:
				close(l.dropped)
				for id, cancel := range l.serving {
					cancel()
					delete(l.serving, id)
				}
			}
		}
		l.mu.Unlock()
	}
}

// queueGroup is where the replicas of a broker share a peer's requests.
const queueGroup = "mfa-broker"

// pingTimeout bounds a ping across a link.
const pingTimeout = 500 * time.Millisecond

// linkUp looks whether the link with a peer is up: the embedded server
// knows its leaf-node connections; on an external one, the peer
// answering a ping across the link says so.
func (f *Federation) linkUp(l *link) bool {
	if f.cfg.Server != nil {
		return f.cfg.Server.LinkUp(l.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	_, err := l.nc.RequestWithContext(ctx, pingSubject(l.id), nil)
	return err == nil
}

// markUp records the link up; a drop after this is news.
func (l *link) markUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up = true
	select {
	case <-l.dropped:
		l.dropped = make(chan struct{})
	default:
	}
}

// state is whether the link was up when last looked at, and a channel
// closed when it has dropped.
func (l *link) state() (up bool, dropped <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up, l.dropped
}

var shareBucketConfig = jetstream.KeyValueConfig{
	Bucket:      ShareBucket,
	Description: "this broker's identity references, shared with the peer",
	Storage:     jetstream.FileStorage,
	History:     1,
}

// mirrorCheck is how often the mirror of the peer's references is looked
// after, and mirrorStale how long it may go without hearing from the
// peer's bucket while the link is up before it is set up anew.
const (
	mirrorCheck = time.Second
	// A healthy mirror hears its source's heartbeat every second.
	mirrorStale = 5 * time.Second
)

// keepMirror sets up the mirror of the peer's share bucket once the peer
// has one, follows it into the index, and sets it up anew when it stalls.
// JetStream retries a mirror that could not reach its source by itself,
// but backs off up to minutes; a peer back from an outage is followed
// again within seconds this way.
func (f *Federation) keepMirror(ctx context.Context, l *link) {
	peerJS, err := jetstream.NewWithDomain(l.nc, l.id)
	if err != nil {
		f.cfg.Logger.Error("federation: the peer's JetStream", "peer", l.id, "err", err)
		return
	}
	var importing sync.WaitGroup
	var stopImport context.CancelFunc
	defer func() {
		if stopImport != nil {
			stopImport()
		}
		importing.Wait()
	}()
	var madeAt time.Time // by this process; zero: by an earlier one
	tick := time.NewTicker(mirrorCheck)
	defer tick.Stop()
	for {
		if up, _ := l.state(); up {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			before := madeAt
			refs, err := f.ensureMirror(cctx, l, peerJS, &madeAt)
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				f.cfg.Logger.Debug("federation: the peer's references not mirrored yet", "peer", l.id, "err", err)
			case refs != nil && (stopImport == nil || madeAt != before):
				// A mirror made anew is followed anew at once: a watcher
				// of the one deleted would notice only after its own
				// heartbeats failed.
				if stopImport != nil {
					stopImport()
					importing.Wait()
				}
				ictx, cancel := context.WithCancel(ctx)
				stopImport = cancel
				importing.Add(1)
				go func() {
					defer importing.Done()
					f.importRefs(ictx, l, refs)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ensureMirror returns the mirror of the peer's references, making it
// when the peer's bucket is there to mirror, and anew when it is stale.
func (f *Federation) ensureMirror(ctx context.Context, l *link, peerJS jetstream.JetStream, madeAt *time.Time) (jetstream.KeyValue, error) {
	stream, err := l.js.Stream(ctx, "KV_"+RefsBucket)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return nil, err
	default:
		info, err := stream.Info(ctx)
		if err != nil {
			return nil, err
		}
		m := info.Mirror
		heard := m != nil && m.Active >= 0 && m.Active < mirrorStale
		young := m != nil && m.Active < 0 && time.Since(*madeAt) < mirrorStale
		if m == nil || (m.Error == nil && (heard || young)) {
			return l.js.KeyValue(ctx, RefsBucket)
		}
		// Stalled: JetStream is backing off. Sequences in a mirror are
		// the source's, so one made anew resumes where the index is.
		f.cfg.Logger.Info("federation: the mirror of the peer's references is set up anew", "peer", l.id)
		if err := l.js.DeleteStream(ctx, "KV_"+RefsBucket); err != nil {
			return nil, err
		}
	}
	if _, err := peerJS.Stream(ctx, "KV_"+ShareBucket); err != nil {
		return nil, fmt.Errorf("the peer's share bucket: %w", err)
	}
	*madeAt = time.Now()
	return l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RefsBucket,
		Description: "the identity references the peer shares with this broker",
		Storage:     jetstream.FileStorage,
		Mirror:      &jetstream.StreamSource{Name: "KV_" + ShareBucket, Domain: l.id},
	})
}

// refKeyName is a reference's key in a share bucket: its LegalId in
// base32, which a key-value key may hold and which reads back.
func refKeyName(legalID string) string {
	return "r." + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(legalID))
}

func legalIDOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "r.")
	if !ok {
		return "", false
	}
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(rest)
	return string(b), err == nil
}

// setSharing shares this broker's references with the peer, or stops.
func (f *Federation) setSharing(ctx context.Context, l *link, share bool) error {
	l.mu.Lock()
	sharing := l.share != nil
	l.mu.Unlock()
	if share == sharing {
		return nil
	}
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, shareBucketConfig)
	if err != nil {
		return err
	}
	if !share {
		l.mu.Lock()
		l.share = nil
		l.mu.Unlock()
		l.background(func(ctx context.Context) {
			// Deletes are new records, so they reach the mirror: the
			// marker first, for the peer to drop everything at once, then
			// each reference, in the background: a million take minutes.
			if _, err := kv.PutString(ctx, keyShareSharing, sharingOff); err != nil {
				f.cfg.Logger.Warn("federation: unsharing not told to the peer", "peer", l.id, "err", err)
				return
			}
			f.cfg.Logger.Info("federation: references no longer shared", "peer", l.id)
			keys, err := kv.ListKeys(ctx)
			if err != nil {
				return
			}
			for k := range keys.Keys() {
				if strings.HasPrefix(k, "r.") {
					kv.Delete(ctx, k)
				}
			}
		})
		return nil
	}
	if _, err := kv.Put(ctx, keyShareLookup, []byte(base64.StdEncoding.EncodeToString(f.cfg.LookupKey))); err != nil {
		return err
	}
	// Changes made while the export runs are shared as they happen; the
	// export never puts back an older version than they did.
	l.mu.Lock()
	l.share = kv
	l.mu.Unlock()
	// The export runs on the link's own context, not the operator's
	// request or a reconcile's: a million identities take minutes.
	l.background(func(ctx context.Context) {
		start := time.Now()
		n, err := f.exportAll(ctx, kv)
		if err == nil {
			_, err = kv.PutString(ctx, keyShareSharing, sharingOn)
		}
		if err != nil {
			if ctx.Err() == nil {
				f.cfg.Logger.Warn("federation: references not all shared; trying again", "peer", l.id, "shared", n, "err", err)
				l.mu.Lock()
				if l.share == kv {
					l.share = nil // the next reconcile starts again
				}
				l.mu.Unlock()
			}
			return
		}
		f.cfg.Logger.Info("federation: references shared", "peer", l.id, "references", n, "took", time.Since(start))
	})
	return nil
}

// background runs job on the link's context, after stopping the job
// started before it: an export and an unsharing never run at once.
func (l *link) background(job func(ctx context.Context)) {
	l.mu.Lock()
	stop, done := l.jobCancel, l.jobDone
	ctx, cancel := context.WithCancel(l.ctx)
	l.jobCancel, l.jobDone = cancel, make(chan struct{})
	finished := l.jobDone
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(finished)
		defer cancel()
		job(ctx)
	}()
}

// exportPage is how many identities are read at a time to export.
const exportPage = 1000

// exportAll puts the reference of every identity with a number into a
// share bucket: approved ones, and the others too, so that a peer that had
// an earlier version learns it is revoked.
func (f *Federation) exportAll(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	n := 0
	after := ""
	for {
		page, err := f.cfg.Identities.List(ctx, identity.Query{After: after, Limit: exportPage})
		if err != nil {
			return n, err
		}
		for _, id := range page {
			if ref, ok := NewReference(id, f.cfg.Key, f.cfg.LookupKey); ok && id.State != identity.Created {
				if err := putNewer(ctx, kv, ref); err != nil {
					return n, err
				}
				n++
			}
		}
		if len(page) < exportPage {
			return n, nil
		}
		after = page[len(page)-1].ID
	}
}

// IdentityChanged shares an identity's new state with the peers shared
// with, at once: an approval, and a revocation above all.
func (f *Federation) IdentityChanged(ctx context.Context, id identity.Identity) {
	ref, ok := NewReference(id, f.cfg.Key, f.cfg.LookupKey)
	if !ok || id.State == identity.Created {
		return
	}
	f.mu.Lock()
	var shares []jetstream.KeyValue
	for _, l := range f.links {
		l.mu.Lock()
		if l.share != nil {
			shares = append(shares, l.share)
		}
		l.mu.Unlock()
	}
	f.mu.Unlock()
	for _, kv := range shares {
		if err := putNewer(ctx, kv, ref); err != nil {
			f.cfg.Logger.Warn("federation: reference not shared", "identity", id.ID, "err", err)
		}
	}
}

// putNewer puts a reference in a share bucket unless the bucket holds the
// same or a later version: an export running beside a change must not
// put back what the change replaced, and a restart's export writes only
// what changed while the broker was down. Writes are compare-and-set.
func putNewer(ctx context.Context, kv jetstream.KeyValue, ref Reference) error {
	key, value := refKeyName(ref.LegalID), ref.Encode()
	for {
		_, err := kv.Create(ctx, key, value)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile: Create again
		}
		if err != nil {
			return err
		}
		if held, err := DecodeReference(e.Value()); err == nil && held.Version >= ref.Version {
			return nil
		}
		_, err = kv.Update(ctx, key, value, e.Revision())
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return err
		}
		// Written meanwhile: look again.
	}
}

// importBatch bounds the changes written to the index at once, and
// importWait how long a change waits for others to join it.
const (
	importBatch = 2000
	importWait  = 50 * time.Millisecond
)

// importRefs follows the mirror of the peer's references into the index,
// from where it left off. References are believed only when signed by the
// peer as their home.
func (f *Federation) importRefs(ctx context.Context, l *link, refs jetstream.KeyValue) {
	for ctx.Err() == nil {
		opts := []jetstream.WatchOpt{}
		if rev := f.cfg.Index.Revision(l.id); rev > 0 {
			opts = append(opts, jetstream.ResumeFromRevision(rev+1))
		}
		w, err := refs.WatchAll(ctx, opts...)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		f.follow(ctx, l, w)
		w.Stop()
	}
}

func (f *Federation) follow(ctx context.Context, l *link, w jetstream.KeyWatcher) {
	var batch []Change
	var rev uint64
	flush := func() {
		if rev == 0 {
			return
		}
		if err := f.cfg.Index.Apply(l.id, batch, rev); err != nil {
			f.cfg.Logger.Error("federation: references not indexed", "peer", l.id, "err", err)
		}
		batch, rev = batch[:0], 0
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case <-timer.C:
			flush()
		case e, ok := <-w.Updates():
			if !ok {
				flush()
				return
			}
			if e == nil {
				flush() // the initial values are in
				continue
			}
			if e.Key() == keyShareLookup || e.Key() == keyShareSharing {
				// In order: what came before is indexed first.
				flush()
				f.control(l, e)
				if err := f.cfg.Index.Apply(l.id, nil, e.Revision()); err != nil {
					f.cfg.Logger.Error("federation: references not indexed", "peer", l.id, "err", err)
				}
				continue
			}
			if change, ok := f.decodeEntry(l, e); ok {
				batch = append(batch, change...)
			}
			if rev == 0 {
				timer.Reset(importWait)
			}
			rev = e.Revision()
			if len(batch) >= importBatch {
				flush()
			}
		}
	}
}

// control applies the peer's lookup key, or its decision to stop sharing.
func (f *Federation) control(l *link, e jetstream.KeyValueEntry) {
	switch e.Key() {
	case keyShareLookup:
		raw, err := base64.StdEncoding.DecodeString(string(e.Value()))
		if err == nil {
			err = f.cfg.Index.SetLookupKey(l.id, raw)
		}
		if err != nil {
			f.cfg.Logger.Warn("federation: the peer's lookup key is unreadable", "peer", l.id, "err", err)
		}
	case keyShareSharing:
		if string(e.Value()) == sharingOff {
			if err := f.cfg.Index.Forget(l.id); err != nil {
				f.cfg.Logger.Error("federation: the peer's references not forgotten", "peer", l.id, "err", err)
			}
			f.cfg.Logger.Info("federation: the peer no longer shares its references", "peer", l.id)
		}
	}
}

// decodeEntry turns a mirrored reference into an index change.
func (f *Federation) decodeEntry(l *link, e jetstream.KeyValueEntry) ([]Change, bool) {
	legalID, ok := legalIDOfKey(e.Key())
	if !ok {
		return nil, false
	}
	if e.Operation() != jetstream.KeyValuePut {
		return []Change{{Ref: Reference{LegalID: legalID}, Forget: true}}, true
	}
	ref, err := DecodeReference(e.Value())
	if err == nil {
		err = ref.Verify(l.key)
	}
	if err == nil && ref.LegalID != legalID {
		err = fmt.Errorf("%w: stored under another LegalId", ErrBadReference)
	}
	if err != nil {
		f.cfg.Logger.Warn("federation: a reference from the peer ignored", "peer", l.id, "err", err)
		return nil, false
	}
	return []Change{{Ref: ref}}, true
}
