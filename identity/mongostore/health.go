package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/legalmfa/mfa/identity"
)

// classify maps a driver error to the identity package's errors, and
// notes what it says about MongoDB's availability:
//
//   - no document: identity.ErrNotFound; a unique index refused a write:
//     identity.ErrDuplicate;
//   - the caller cancelled or its deadline passed: the caller's error,
//     which says nothing about MongoDB;
//   - no server could be selected, or a network error: identity.ErrUnavailable,
//     and the store is marked unavailable;
//   - the store's own deadline passed: identity.ErrUnavailable, and a probe
//     finds out whether MongoDB is down or only slow;
//   - anything else MongoDB said: identity.ErrUnavailable with its message.
func (s *Store) classify(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return identity.ErrNotFound
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("%w: %s: %v", identity.ErrDuplicate, op, err)
	}
	if caller, ok := ctx.Value(callerKey{}).(context.Context); ok && caller.Err() != nil {
		return caller.Err()
	}
	if errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("%w: the store is closed", identity.ErrUnavailable)
	}
	var sel topology.ServerSelectionError
	if errors.As(err, &sel) || mongo.IsNetworkError(err) {
		s.markDown(err)
		return fmt.Errorf("%w: %s: MongoDB at %s is unreachable: %v", identity.ErrUnavailable, op, s.hosts, err)
	}
	if mongo.IsTimeout(err) {
		s.poke()
		return fmt.Errorf("%w: %s: MongoDB at %s did not answer within %v", identity.ErrUnavailable, op, s.hosts, s.cfg.opTimeout)
	}
	return fmt.Errorf("%w: %s: %v", identity.ErrUnavailable, op, err)
}

// markDown records that MongoDB is unavailable. Only the first of any
// number of failures logs and notifies.
func (s *Store) markDown(err error) {
	if s.closed.Load() || !s.down.CompareAndSwap(false, true) {
		return
	}
	s.healthMu.Lock()
	s.downSince, s.downErr = time.Now(), err
	s.healthMu.Unlock()
	s.log.Error("MongoDB unavailable: identity store calls fail at once until a probe reaches it again",
		"err", err, "probe_interval", s.cfg.probeInterval)
	if f := s.cfg.onAvailability; f != nil {
		f(false, err)
	}
	s.poke()
}

// markUp records that MongoDB answers again; only the background probe
// calls it, so a call that happened to succeed during an outage cannot
// make the state flap.
func (s *Store) markUp() {
	if !s.down.CompareAndSwap(true, false) {
		return
	}
	s.healthMu.Lock()
	since := s.downSince
	s.healthMu.Unlock()
	s.log.Info("MongoDB available again", "unavailable_for", time.Since(since).Round(time.Millisecond))
	if f := s.cfg.onAvailability; f != nil {
		f(true, nil)
	}
}

func (s *Store) unavailableErr() error {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return fmt.Errorf("%w: MongoDB at %s unreachable since %s: %v", identity.ErrUnavailable, s.hosts, s.downSince.UTC().Format(time.RFC3339), s.downErr)
}

// Available reports whether the store currently considers MongoDB
// reachable. Unlike Ping it never waits.
func (s *Store) Available() bool { return !s.closed.Load() && !s.down.Load() }

// poke makes the background loop probe now.
func (s *Store) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Store) addUnfinished(id string) {
	s.unfinishedMu.Lock()
	s.unfinished[id] = true
	s.unfinishedMu.Unlock()
	s.poke()
}

// loop probes MongoDB, every probe interval while it is unavailable and
// every health interval while it is available, and finishes pending
// changes while it is available.
func (s *Store) loop() {
	defer s.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-timer.C:
		}
		if s.probe() {
			s.repair()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if s.down.Load() {
			timer.Reset(s.cfg.probeInterval)
		} else {
			timer.Reset(s.cfg.healthInterval)
		}
	}
}

// probe pings MongoDB and records the outcome. Before a recovery is
// announced, the changes this broker could not finish are finished, so
// that no reader sees an identity without a change it was told of.
func (s *Store) probe() bool {
	ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.opTimeout, 2*time.Second))
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := s.client.Ping(ctx, readpref.Primary())
	if err != nil {
		if s.closed.Load() {
			return false
		}
		s.markDown(err)
		return false
	}
	if !s.ready.Load() {
		if err := s.ensureIndexes(ctx); err != nil {
			s.markDown(err)
			return false
		}
		s.ready.Store(true)
	}
	if s.down.Load() {
		s.repairUnfinished()
		s.markUp()
	}
	return true
}

// repairUnfinished finishes the changes this broker committed but could not
// finish.
func (s *Store) repairUnfinished() {
	s.unfinishedMu.Lock()
	ids := make([]string, 0, len(s.unfinished))
	for id := range s.unfinished {
		ids = append(ids, id)
	}
	s.unfinishedMu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.opTimeout)
	defer cancel()
	ids2 := make(bson.A, len(ids))
	for i, id := range ids {
		ids2[i] = id
	}
	s.repairWhere(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids2}}}, {Key: "pending", Value: true}}, true)
	// Those not pending any more are done, or were never inserted.
	for _, id := range ids {
		var ch changeDoc
		err := s.changes.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&ch)
		if errors.Is(err, mongo.ErrNoDocuments) || err == nil && !ch.Pending {
			s.unfinishedMu.Lock()
			delete(s.unfinished, id)
			s.unfinishedMu.Unlock()
		}
	}
}

// repair finishes pending changes: this broker's own at once, and those of
// other brokers once they have been pending longer than repairAfter (their
// broker died or lost MongoDB halfway).
func (s *Store) repair() {
	s.repairUnfinished()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.opTimeout)
	defer cancel()
	s.repairWhere(ctx, bson.D{
		{Key: "pending", Value: true},
		{Key: "written", Value: bson.D{{Key: "$lt", Value: date(time.Now().Add(-s.cfg.repairAfter))}}},
	}, false)
}

func (s *Store) repairWhere(ctx context.Context, filter bson.D, own bool) {
	cur, err := s.changes.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "identityId", Value: 1}, {Key: "version", Value: 1}}).SetLimit(1000))
	if err != nil {
		s.classify(ctx, "find pending changes", err)
		return
	}
	var pending []changeDoc
	if err := cur.All(ctx, &pending); err != nil {
		s.classify(ctx, "read pending changes", err)
		return
	}
	for _, ch := range pending {
		if err := s.finishChange(ctx, ch); err != nil {
			s.log.Warn("could not finish a pending identity change; will retry", "change", ch.ID, "err", err)
			return
		}
		s.log.Info("finished a pending identity change", "change", ch.ID, "own", own)
	}
}

// finishChange applies a committed change that is still pending.
func (s *Store) finishChange(ctx context.Context, ch changeDoc) error {
	cur, err := s.get(ctx, ch.IdentityID)
	if errors.Is(err, identity.ErrNotFound) {
		// A change is only ever recorded for an existing identity.
		return fmt.Errorf("change %s names a missing identity", ch.ID)
	}
	if err != nil {
		return err
	}
	unset := bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}}
	switch {
	case cur.Version >= ch.Version:
		// Applied already; the reference may still lag.
		if err := s.updateReference(ctx, cur); err != nil {
			return err
		}
		_, err := s.changes.UpdateOne(ctx, bson.D{{Key: "_id", Value: ch.ID}}, unset)
		return s.classify(ctx, "clear pending change", err)
	case cur.Version < ch.Version-1:
		return fmt.Errorf("change %s waits for an earlier one (identity at version %d)", ch.ID, cur.Version)
	}
	c := identity.Change{From: identity.State(ch.From), To: identity.State(ch.To), At: fromDate(ch.At),
		ValidFrom: fromOptDate(ch.ValidFrom), ValidTo: fromOptDate(ch.ValidTo)}
	next, err := c.Apply(cur)
	if err != nil {
		// Cannot happen: the change was checked against this very version.
		// Leave it pending for an operator to look at.
		return fmt.Errorf("change %s does not apply to %s at version %d: %w", ch.ID, cur.ID, cur.Version, err)
	}
	return s.apply(ctx, cur, stored(next), ch.ID)
}
