package mongostore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/conformance"
	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// open opens a store on a fresh database of the test's own.
func open(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openURI(t, mongotest.Start(t), opts...)
}

func openURI(t testing.TB, uri string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), uri, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestConformance is about what the store does, not how fast: FerretDB on
// SQLite scans where MongoDB uses an index, so its calls get time to spare.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) identity.Store { return open(t, WithOperationTimeout(30*time.Second)) })
}

func testIdentity(t testing.TB, pnr string) identity.Identity {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return identity.Identity{
		ID:    identity.NewID("example.org"),
		State: identity.Approved,
		Properties: []identity.Property{
			{Name: identity.PropFirst, Value: "Tess"},
			{Name: identity.PropPNR, Value: pnr},
			{Name: identity.PropCountry, Value: "SE"},
		},
		PublicKey: key.Public().(ed25519.PublicKey),
		From:      now.Add(-time.Hour),
		To:        now.AddDate(1, 0, 0),
		Created:   now,
		Updated:   now,
		Version:   1,
	}
}

func created(t testing.TB, pnr string) identity.Identity {
	id := testIdentity(t, pnr)
	id.State, id.From, id.To = identity.Created, time.Time{}, time.Time{}
	return id
}

func approval() identity.Change {
	now := time.Now()
	return identity.Change{From: identity.Created, To: identity.Approved, At: now, ValidFrom: now.Add(-time.Minute), ValidTo: now.AddDate(1, 0, 0)}
}

// count returns how many documents each collection holds.
func count(t testing.TB, s *Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, c := range []*mongo.Collection{s.ids, s.refs, s.changes} {
		n, err := c.CountDocuments(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		out[c.Name()] = n
	}
	return out
}

// logBuffer collects what a store logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDocumentLayout(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	id := testIdentity(t, "199001011234")
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.ids.FindOne(ctx, bson.D{{Key: "_id", Value: id.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"_id", "format", "state", "properties", "publicKey", "deviceId", "from", "to", "created", "updated", "version"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("identity document lacks %q: %v", f, raw)
		}
	}
	if len(raw) != 11 {
		t.Errorf("identity document has %d fields, want 11: %v", len(raw), raw)
	}
	props, ok := raw["properties"].(bson.A)
	if !ok || len(props) != 3 {
		t.Fatalf("properties %T %v, want an array of 3", raw["properties"], raw["properties"])
	}
	if p, ok := props[1].(bson.D); !ok || len(p) != 2 || p[0] != (bson.E{Key: "name", Value: "PNR"}) || p[1] != (bson.E{Key: "value", Value: "199001011234"}) {
		t.Errorf("property %v, want {name: PNR, value: 199001011234}", props[1])
	}
	if k, ok := raw["publicKey"].(bson.Binary); !ok || !bytes.Equal(k.Data, id.PublicKey) || k.Subtype != 0 {
		t.Errorf("publicKey %T %v, want binary subtype 0", raw["publicKey"], raw["publicKey"])
	}
	for _, f := range []string{"from", "to", "created", "updated"} {
		if _, ok := raw[f].(bson.DateTime); !ok {
			t.Errorf("%s is %T, want a BSON date", f, raw[f])
		}
	}
	if raw["deviceId"] != id.DeviceID() || raw["state"] != "Approved" {
		t.Errorf("deviceId %v state %v", raw["deviceId"], raw["state"])
	}

	var ref bson.M
	if err := s.refs.FindOne(ctx, bson.D{{Key: "_id", Value: id.ID}}).Decode(&ref); err != nil {
		t.Fatal(err)
	}
	want := bson.M{"country": "SE", "pnr": "199001011234", "provider": "", "state": "Approved"}
	for k, v := range want {
		if ref[k] != v {
			t.Errorf("reference %s = %v, want %v", k, ref[k], v)
		}
	}
	for _, f := range []string{"from", "to", "version", "written", "token"} {
		if _, ok := ref[f]; !ok {
			t.Errorf("reference lacks %q: %v", f, ref)
		}
	}

	// An identity without PNR and COUNTRY has no reference.
	noPNR := testIdentity(t, "1")
	noPNR.Properties = noPNR.Properties[:1]
	if err := s.Create(ctx, noPNR); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s); n[CollIdentities] != 2 || n[CollReferences] != 1 || n[CollChanges] != 0 {
		t.Errorf("documents %v, want 2 identities, 1 reference, no changes", n)
	}
}

func TestOpenTwiceIndexes(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.Start(t)
	s1 := openURI(t, uri)
	s2 := openURI(t, uri) // creating the indexes again is a no-op
	if err := s2.Create(ctx, testIdentity(t, "1")); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]struct {
		keys   string
		unique bool
	}{
		CollIdentities: {
			"_id_":             {`{"_id": 1}`, false},
			"publicKey_unique": {`{"publicKey": 1}`, true},
			"state_id":         {`{"state": 1,"_id": 1}`, false},
		},
		CollReferences: {
			"_id_":       {`{"_id": 1}`, false},
			"mfa_lookup": {`{"country": 1,"pnr": 1,"state": 1,"to": 1}`, false},
			"countries":  {`{"provider": 1,"state": 1,"country": 1}`, false},
		},
		CollChanges: {
			"_id_":    {`{"_id": 1}`, false},
			"pending": {`{"pending": 1}`, false},
		},
	}
	for _, c := range []*mongo.Collection{s1.ids, s1.refs, s1.changes} {
		cur, err := c.Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Name   string   `bson:"name"`
			Key    bson.Raw `bson:"key"`
			Unique bool     `bson:"unique"`
		}
		if err := cur.All(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want[c.Name()]) {
			t.Errorf("%s has %d indexes, want %d: %v", c.Name(), len(got), len(want[c.Name()]), got)
		}
		for _, ix := range got {
			w, ok := want[c.Name()][ix.Name]
			if !ok {
				t.Errorf("%s: unexpected index %s", c.Name(), ix.Name)
				continue
			}
			// Key orders are numbers of any BSON type; compare their text.
			keys := strings.NewReplacer(`{"$numberInt":"1"}`, "1", `{"$numberLong":"1"}`, "1", `{"$numberDouble":"1.0"}`, "1").Replace(ix.Key.String())
			if keys != w.keys || ix.Unique != w.unique {
				t.Errorf("%s.%s: keys %s unique %v, want %s unique %v", c.Name(), ix.Name, keys, ix.Unique, w.keys, w.unique)
			}
		}
	}
}

func TestOpenRefusesBadURI(t *testing.T) {
	for _, uri := range []string{"mongodb://user:s3cret@host:99999/db", "http://user:s3cret@host/db", "mongodb://user:s3cret@host/db?w=x&journal=maybe"} {
		_, err := Open(context.Background(), uri)
		if !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q shows the password", err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	addr, err := mongotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(context.Background(), "mongodb://user:s3cret@"+addr+"/mfa", WithOpenTimeout(time.Second))
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Open of an unreachable server: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Open took %v with an open timeout of 1s", el)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	id := testIdentity(t, "1")
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, id.ID); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

func TestUnsafeDataRefused(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	cases := []struct {
		name   string
		mutate func(id *identity.Identity)
	}{
		{"property name $where", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "$where", Value: "sleep(1000)"})
		}},
		{"property name a.b", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "a.b", Value: "1"})
		}},
		{"property name A.B", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "A.B", Value: "1"})
		}},
		{"property name with NUL", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "A\x00B", Value: "1"})
		}},
		{"NUL in a value", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "NOTE", Value: "a\x00b"})
		}},
		{"NUL in the PNR", func(id *identity.Identity) { id.Properties[1].Value = "1990\x000101" }},
		{"NUL in the ID", func(id *identity.Identity) { id.ID = "a\x00b@legal.example.org" }},
		{"$ in the ID", func(id *identity.Identity) { id.ID = "$gt@legal.example.org" }},
		{"oversized value", func(id *identity.Identity) {
			id.Properties = append(id.Properties, identity.Property{Name: "NOTE", Value: strings.Repeat("x", 1<<20)})
		}},
		{"oversized document", func(id *identity.Identity) {
			for i := range 60 {
				id.Properties = append(id.Properties, identity.Property{Name: fmt.Sprintf("P%d", i), Value: strings.Repeat("x", identity.MaxPropertyValue)})
			}
		}},
		{"time beyond year 9999", func(id *identity.Identity) { id.To = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"Created beyond year 9999", func(id *identity.Identity) { id.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tc := range cases {
		id := testIdentity(t, "199001011234")
		tc.mutate(&id)
		err := s.Create(ctx, id)
		if !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("Create with %s: %v, want ErrInvalid", tc.name, err)
		}
	}
	for coll, n := range count(t, s) {
		if n != 0 {
			t.Errorf("%s has %d documents after refused creates, want none", coll, n)
		}
	}
	// Lookups with such values never reach the database either, and find
	// nothing.
	for _, q := range [][2]string{{"1990\x000101", "SE"}, {"1", "S\x00"}, {strings.Repeat("1", 1<<20), "SE"}, {"1", "$ne"}, {"\xff", "SE"}} {
		got, err := s.FindValid(ctx, q[0], q[1], time.Now())
		if err != nil || len(got) != 0 {
			t.Errorf("FindValid(%q, %q): %v, %v; want nothing", q[0], q[1], got, err)
		}
	}
	if _, err := s.List(ctx, identity.Query{After: "\xff"}); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("List after invalid UTF-8: %v, want ErrInvalid", err)
	}
}

// TestSizeGuard checks the store's own limit on the encoded document: it
// refuses what is too large, and no identity Validate accepts comes near it.
func TestSizeGuard(t *testing.T) {
	id := testIdentity(t, "199001011234")
	id.ID = strings.Repeat("a", identity.MaxIDLength-20) + "@legal.example.org"
	// The largest property list Validate allows: 64 properties with names
	// of 32 characters whose values fill the total.
	id.Properties = id.Properties[1:]
	for i := len(id.Properties); i < identity.MaxProperties; i++ {
		name := fmt.Sprintf("P%031d", i)
		id.Properties = append(id.Properties, identity.Property{Name: name, Value: "x"})
	}
	total := 0
	for _, p := range id.Properties {
		total += len(p.Name) + len(p.Value)
	}
	for i := 2; total < identity.MaxPropertiesLength; i++ {
		add := min(identity.MaxPropertyValue-1, identity.MaxPropertiesLength-total)
		id.Properties[i].Value += strings.Repeat("é", add/2)
		total += add / 2 * 2
		if add < 2 {
			break
		}
	}
	if err := id.Validate(); err != nil {
		t.Fatalf("the largest valid identity is not valid: %v", err)
	}
	doc, err := encodeIdentity(id)
	if err != nil {
		t.Fatalf("the largest valid identity is refused: %v", err)
	}
	raw, _ := bson.Marshal(doc)
	t.Logf("largest valid identity: %d bytes of properties, %d bytes as BSON; limit %d", total, len(raw), MaxDocumentSize)
	if len(raw) > MaxDocumentSize/2 {
		t.Errorf("the largest valid identity takes %d bytes, more than half the guard's %d", len(raw), MaxDocumentSize)
	}
	if err := checkSize(doc, len(raw)-1); !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("checkSize below the document's size: %v, want ErrInvalid saying the size", err)
	}
}

// TestRacingOperators has two operators approve and reject the same new
// identity at once, round after round: exactly one wins each round, and the
// other is told the state the identity is in now.
func TestRacingOperators(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	wins := map[identity.State]int{}
	for r := range rounds {
		id := created(t, fmt.Sprint(r))
		if err := s.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
		changes := []identity.Change{approval(), {From: identity.Created, To: identity.Rejected, At: time.Now()}}
		results := make([]error, 2)
		got := make([]identity.Identity, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range changes {
			wg.Go(func() {
				<-start
				got[i], results[i] = s.Transition(ctx, id.ID, c)
			})
		}
		close(start)
		wg.Wait()
		var winner = -1
		for i, err := range results {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: both operators won", r)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", r, results)
		}
		loser := 1 - winner
		won := changes[winner].To
		wins[won]++
		if !errors.Is(results[loser], identity.ErrConflict) {
			t.Errorf("round %d: loser got %v, want ErrConflict", r, results[loser])
		} else if want := fmt.Sprintf("is %s now, not Created", won); !strings.Contains(results[loser].Error(), want) {
			t.Errorf("round %d: loser's error %q does not say %q", r, results[loser], want)
		}
		stored, err := s.Get(ctx, id.ID)
		if err != nil || stored.State != won || stored.Version != 2 || got[winner].Version != 2 {
			t.Errorf("round %d: stored %s v%d (%v), winner %s", r, stored.State, stored.Version, err, won)
		}
	}
	t.Logf("wins: %v", wins)
}

// TestNoLostUpdates runs many concurrent transitions on a few identities
// and checks that every successful one is accounted for: the version counts
// them, the state is the last one's, the history has each once.
func TestNoLostUpdates(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	const people, workers = 5, 8
	ids := make([]identity.Identity, people)
	for i := range ids {
		ids[i] = created(t, fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := s.Create(ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	type success struct {
		id      string
		from    identity.State
		to      identity.State
		version int64
	}
	var mu sync.Mutex
	var done []success
	steps := []identity.Change{
		approval(),
		{From: identity.Approved, To: identity.Compromised},
		{From: identity.Approved, To: identity.Obsoleted},
		{From: identity.Created, To: identity.Rejected},
		{From: identity.Approved, To: identity.Rejected},
	}
	for w := range workers {
		wg.Go(func() {
			for i := range 30 {
				id := ids[(w+i)%people]
				c := steps[(w*7+i)%len(steps)]
				c.At = time.Now()
				got, err := s.Transition(ctx, id.ID, c)
				switch {
				case err == nil:
					mu.Lock()
					done = append(done, success{id.ID, c.From, c.To, got.Version})
					mu.Unlock()
				case errors.Is(err, identity.ErrConflict):
				default:
					t.Errorf("Transition %s→%s: %v", c.From, c.To, err)
				}
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		var mine []success
		for _, d := range done {
			if d.id == id.ID {
				mine = append(mine, d)
			}
		}
		got, err := s.Get(ctx, id.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != id.Version+int64(len(mine)) {
			t.Errorf("%s: version %d after %d successful transitions from version %d", id.ID, got.Version, len(mine), id.Version)
		}
		// Successes form one chain: versions 2, 3, … each from the state
		// the one before left.
		state := identity.Created
		for v := id.Version + 1; v <= got.Version; v++ {
			var step []success
			for _, d := range mine {
				if d.version == v {
					step = append(step, d)
				}
			}
			if len(step) != 1 {
				t.Fatalf("%s: %d successful transitions made version %d", id.ID, len(step), v)
			}
			if step[0].from != state {
				t.Errorf("%s: version %d went from %s, but the identity was %s", id.ID, v, step[0].from, state)
			}
			state = step[0].to
		}
		if got.State != state {
			t.Errorf("%s: state %s, the last successful transition left %s", id.ID, got.State, state)
		}
		n, err := s.changes.CountDocuments(ctx, bson.D{{Key: "identityId", Value: id.ID}})
		if err != nil || n != int64(len(mine)) {
			t.Errorf("%s: %d changes recorded (%v), want %d", id.ID, n, err, len(mine))
		}
	}
	if n, err := s.changes.CountDocuments(ctx, bson.D{{Key: "pending", Value: true}}); err != nil || n != 0 {
		t.Errorf("%d changes still pending (%v)", n, err)
	}
	t.Logf("%d successful transitions", len(done))
}
