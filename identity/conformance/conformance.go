// Package conformance is the behaviour every identity.Store must show. Each
// store's tests call Run with a constructor for fresh, empty stores, so the
// embedded store and the MongoDB store are held to exactly the same contract
// (the pattern of dex's storage/conformance).
//
// Time precision: stores keep times in UTC with at least millisecond
// precision. The suite compares times after truncating both sides to the
// millisecond and requires returned times to be in UTC; callers that need
// identical behaviour on every store should use millisecond-aligned times,
// as the validity-window boundary tests here do.
package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// Domain is the broker domain of the identities the suite creates.
const Domain = "example.org"

// Run runs the whole suite. newStore returns a fresh, empty store for one
// subtest and registers its cleanup with t.Cleanup. Subtests run in
// parallel, each with its own store.
func Run(t *testing.T, newStore func(t *testing.T) identity.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s identity.Store)
	}{
		{"CreateGet", testCreateGet},
		{"GetUnknown", testGetUnknown},
		{"GetByPublicKey", testGetByPublicKey},
		{"DuplicateID", testDuplicateID},
		{"DuplicatePublicKey", testDuplicatePublicKey},
		{"CreateInvalid", testCreateInvalid},
		{"FindValidExactMatch", testFindValidExactMatch},
		{"FindValidWindow", testFindValidWindow},
		{"FindValidStates", testFindValidStates},
		{"FindValidWithoutPNR", testFindValidWithoutPNR},
		{"FindValidManyForOnePerson", testFindValidMany},
		{"FindPerson", testFindPerson},
		{"PurgeApplications", testPurgeApplications},
		{"Countries", testCountries},
		{"List", testList},
		{"ListPagination", testListPagination},
		{"AllowedTransitions", testAllowedTransitions},
		{"RefusedTransitions", testRefusedTransitions},
		{"ApprovalNeedsWindow", testApprovalNeedsWindow},
		{"StaleChange", testStaleChange},
		{"TransitionUnknown", testTransitionUnknown},
		{"ConcurrentTransitions", testConcurrentTransitions},
		{"ConcurrentCreates", testConcurrentCreates},
		{"CancelledContext", testCancelledContext},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// baseTime is deliberately not millisecond-aligned and not in UTC, so that
// round trips exercise both conversion and precision.
func baseTime() time.Time {
	return time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
}

// window is a millisecond-aligned validity window around now, for tests
// that check its boundaries exactly.
func window() (from, to time.Time) {
	from = time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)
	return from, from.Add(365 * 24 * time.Hour)
}

func newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key.Public().(ed25519.PublicKey)
}

// Person builds a valid Created identity for the person with this PNR and
// country, with a fresh ID and key. Store tests use it too.
func Person(t testing.TB, pnr, country string) identity.Identity {
	t.Helper()
	created := baseTime()
	return identity.Identity{
		ID:    identity.NewID(Domain),
		State: identity.Created,
		Properties: []identity.Property{
			{Name: identity.PropFirst, Value: "Tess"},
			{Name: identity.PropLast, Value: "Testsson"},
			{Name: identity.PropPNR, Value: pnr},
			{Name: identity.PropCountry, Value: country},
		},
		PublicKey: newKey(t),
		Created:   created,
		Updated:   created,
		Version:   1,
	}
}

// Approved builds a valid Approved identity, valid from a day ago for a
// year. Store tests use it too.
func Approved(t testing.TB, pnr, country string) identity.Identity {
	t.Helper()
	id := Person(t, pnr, country)
	id.State = identity.Approved
	id.From, id.To = window()
	return id
}

func create(t *testing.T, s identity.Store, ids ...identity.Identity) {
	t.Helper()
	for _, id := range ids {
		if err := s.Create(context.Background(), id); err != nil {
			t.Fatalf("Create(%s): %v", id.ID, err)
		}
	}
}

func get(t *testing.T, s identity.Store, id string) identity.Identity {
	t.Helper()
	got, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return got
}

func transition(t *testing.T, s identity.Store, id string, c identity.Change) identity.Identity {
	t.Helper()
	got, err := s.Transition(context.Background(), id, c)
	if err != nil {
		t.Fatalf("Transition(%s, %s→%s): %v", id, c.From, c.To, err)
	}
	return got
}

func approval(from, to time.Time) identity.Change {
	return identity.Change{From: identity.Created, To: identity.Approved, At: baseTime().Add(time.Hour), ValidFrom: from, ValidTo: to}
}

// inState creates an identity and moves it to st through the life cycle,
// the way an identity really gets there.
func inState(t *testing.T, s identity.Store, pnr, country string, st identity.State) identity.Identity {
	t.Helper()
	id := Person(t, pnr, country)
	create(t, s, id)
	from, to := window()
	switch st {
	case identity.Created:
		return get(t, s, id.ID)
	case identity.Approved:
		return transition(t, s, id.ID, approval(from, to))
	case identity.Rejected:
		return transition(t, s, id.ID, identity.Change{From: identity.Created, To: identity.Rejected, At: baseTime().Add(time.Hour)})
	}
	transition(t, s, id.ID, approval(from, to))
	return transition(t, s, id.ID, identity.Change{From: identity.Approved, To: st, At: baseTime().Add(2 * time.Hour)})
}

func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// diff lists how got differs from want, comparing times to the millisecond
// and requiring them in UTC.
func diff(got, want identity.Identity) []string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.State != want.State {
		d = append(d, fmt.Sprintf("State %q, want %q", got.State, want.State))
	}
	if !slices.Equal(got.Properties, want.Properties) {
		d = append(d, fmt.Sprintf("Properties %q, want %q", got.Properties, want.Properties))
	}
	if !bytes.Equal(got.PublicKey, want.PublicKey) {
		d = append(d, fmt.Sprintf("PublicKey %x, want %x", got.PublicKey, want.PublicKey))
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"From", got.From, want.From},
		{"To", got.To, want.To},
		{"Created", got.Created, want.Created},
		{"Updated", got.Updated, want.Updated},
	} {
		if !ms(f.got).Equal(ms(f.want)) {
			d = append(d, fmt.Sprintf("%s %v, want %v", f.name, f.got, f.want))
		}
		if f.got.Location() != time.UTC {
			d = append(d, fmt.Sprintf("%s %v is not in UTC", f.name, f.got))
		}
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("Version %d, want %d", got.Version, want.Version))
	}
	return d
}

func same(t *testing.T, what string, got, want identity.Identity) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func ids(list []identity.Identity) []string {
	out := make([]string, len(list))
	for i, id := range list {
		out[i] = id.ID
	}
	return out
}

// sameIDs compares ID sets, ignoring order.
func sameIDs(t *testing.T, what string, got []identity.Identity, want ...identity.Identity) {
	t.Helper()
	g, w := ids(got), ids(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: got %q, want %q", what, g, w)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

func testCreateGet(t *testing.T, s identity.Store) {
	ctx := context.Background()
	id := identity.Identity{
		ID:    identity.NewID(Domain),
		State: identity.Approved,
		// Out of alphabetical order, with multibyte and maximal values:
		// stores must not sort, normalise or truncate properties.
		Properties: []identity.Property{
			{Name: identity.PropPNR, Value: "19900101-1234"},
			{Name: identity.PropLast, Value: "Åström-Ñúñez 李"},
			{Name: identity.PropFirst, Value: "Zoë"},
			{Name: identity.PropCountry, Value: "SE"},
			{Name: "Z_CUSTOM9", Value: strings.Repeat("x", identity.MaxPropertyValue)},
			{Name: identity.PropEmail, Value: "zoe@example.org"},
			{Name: "A", Value: " leading and trailing spaces "},
		},
		PublicKey: newKey(t),
		From:      baseTime().Add(time.Minute),
		To:        baseTime().AddDate(2, 0, 0),
		Created:   baseTime(),
		Updated:   baseTime().Add(time.Second + 987654321),
		Version:   3,
	}
	if err := s.Create(ctx, id); err != nil {
		t.Fatalf("Create: %v", err)
	}
	same(t, "Get after Create", get(t, s, id.ID), id)
	byKey, err := s.GetByPublicKey(ctx, id.PublicKey)
	if err != nil {
		t.Fatalf("GetByPublicKey: %v", err)
	}
	same(t, "GetByPublicKey after Create", byKey, id)

	// The caller's copy and the stored one must not share memory.
	got := get(t, s, id.ID)
	got.PublicKey[0] ^= 0xff
	got.Properties[0].Value = "changed"
	same(t, "Get after modifying an earlier result", get(t, s, id.ID), id)
}

func testGetUnknown(t *testing.T, s identity.Store) {
	create(t, s, Person(t, "1", "SE"))
	_, err := s.Get(context.Background(), identity.NewID(Domain))
	wantErr(t, "Get of an unknown ID", err, identity.ErrNotFound)
}

func testGetByPublicKey(t *testing.T, s identity.Store) {
	ctx := context.Background()
	a, b := Person(t, "1", "SE"), Person(t, "2", "SE")
	create(t, s, a, b)
	for _, want := range []identity.Identity{a, b} {
		got, err := s.GetByPublicKey(ctx, want.PublicKey)
		if err != nil {
			t.Fatalf("GetByPublicKey(%s): %v", want.DeviceID(), err)
		}
		same(t, "GetByPublicKey", got, want)
	}
	_, err := s.GetByPublicKey(ctx, newKey(t))
	wantErr(t, "GetByPublicKey of an unknown key", err, identity.ErrNotFound)
}

func testDuplicateID(t *testing.T, s identity.Store) {
	ctx := context.Background()
	a := Person(t, "1", "SE")
	create(t, s, a)
	b := Person(t, "2", "NO")
	b.ID = a.ID
	wantErr(t, "Create with a used ID", s.Create(ctx, b), identity.ErrDuplicate)
	same(t, "first identity after a duplicate Create", get(t, s, a.ID), a)
	_, err := s.GetByPublicKey(ctx, b.PublicKey)
	wantErr(t, "GetByPublicKey of the refused identity's key", err, identity.ErrNotFound)
	got, err := s.FindValid(ctx, "2", "NO", time.Now())
	if err != nil || len(got) != 0 {
		t.Errorf("FindValid for the refused identity's person: %q, %v; want nothing", ids(got), err)
	}
}

func testDuplicatePublicKey(t *testing.T, s identity.Store) {
	ctx := context.Background()
	a := Person(t, "1", "SE")
	create(t, s, a)
	b := Approved(t, "2", "NO")
	b.PublicKey = slices.Clone(a.PublicKey)
	wantErr(t, "Create with a used public key", s.Create(ctx, b), identity.ErrDuplicate)
	_, err := s.Get(ctx, b.ID)
	wantErr(t, "Get of the refused identity", err, identity.ErrNotFound)
	got, err := s.GetByPublicKey(ctx, a.PublicKey)
	if err != nil {
		t.Fatalf("GetByPublicKey: %v", err)
	}
	same(t, "GetByPublicKey after a duplicate Create", got, a)
	found, err := s.FindValid(ctx, "2", "NO", time.Now())
	if err != nil || len(found) != 0 {
		t.Errorf("FindValid for the refused identity's person: %q, %v; want nothing", ids(found), err)
	}
}

func testCreateInvalid(t *testing.T, s identity.Store) {
	ctx := context.Background()
	props := func(id *identity.Identity, p ...identity.Property) { id.Properties = append(id.Properties, p...) }
	many := func(n, size int) []identity.Property {
		var out []identity.Property
		for i := range n {
			out = append(out, identity.Property{Name: fmt.Sprintf("P%d", i), Value: strings.Repeat("v", size)})
		}
		return out
	}
	cases := []struct {
		name   string
		mutate func(id *identity.Identity)
	}{
		{"empty ID", func(id *identity.Identity) { id.ID = "" }},
		{"ID without domain", func(id *identity.Identity) { id.ID = "abc" }},
		{"ID with empty local part", func(id *identity.Identity) { id.ID = "@legal.example.org" }},
		{"ID with space", func(id *identity.Identity) { id.ID = "a b@legal.example.org" }},
		{"ID with dollar", func(id *identity.Identity) { id.ID = "$where@legal.example.org" }},
		{"ID with NUL", func(id *identity.Identity) { id.ID = "a\x00b@legal.example.org" }},
		{"ID too long", func(id *identity.Identity) { id.ID = strings.Repeat("a", identity.MaxIDLength) + "@x" }},
		{"empty state", func(id *identity.Identity) { id.State = "" }},
		{"unknown state", func(id *identity.Identity) { id.State = "Pending" }},
		// Validate accepts any letter case, but a store that kept "approved"
		// would never find or transition the identity.
		{"state in lower case", func(id *identity.Identity) { id.State = "created" }},
		{"no properties", func(id *identity.Identity) { id.Properties = nil }},
		{"property name $where", func(id *identity.Identity) { props(id, identity.Property{Name: "$where", Value: "1"}) }},
		{"property name a.b", func(id *identity.Identity) { props(id, identity.Property{Name: "A.B", Value: "1"}) }},
		{"property name pnr in lower case", func(id *identity.Identity) {
			id.Properties = []identity.Property{{Name: "pnr", Value: "1"}, {Name: "COUNTRY", Value: "SE"}}
		}},
		{"empty property name", func(id *identity.Identity) { props(id, identity.Property{Name: "", Value: "1"}) }},
		{"property name starting with a digit", func(id *identity.Identity) { props(id, identity.Property{Name: "1A", Value: "1"}) }},
		{"property name too long", func(id *identity.Identity) {
			props(id, identity.Property{Name: strings.Repeat("A", identity.MaxPropertyName+1), Value: "1"})
		}},
		{"property given twice", func(id *identity.Identity) { props(id, identity.Property{Name: identity.PropFirst, Value: "Other"}) }},
		{"NUL in a value", func(id *identity.Identity) { props(id, identity.Property{Name: "NOTE", Value: "a\x00b"}) }},
		{"newline in a value", func(id *identity.Identity) { props(id, identity.Property{Name: "NOTE", Value: "a\nb"}) }},
		{"empty value", func(id *identity.Identity) { props(id, identity.Property{Name: "NOTE", Value: ""}) }},
		{"invalid UTF-8 value", func(id *identity.Identity) { props(id, identity.Property{Name: "NOTE", Value: "a\xffb"}) }},
		{"65 properties", func(id *identity.Identity) { id.Properties = many(identity.MaxProperties+1, 1) }},
		{"oversized value", func(id *identity.Identity) {
			props(id, identity.Property{Name: "NOTE", Value: strings.Repeat("v", identity.MaxPropertyValue+1)})
		}},
		{"oversized properties in total", func(id *identity.Identity) { id.Properties = many(17, identity.MaxPropertyValue) }},
		{"PNR without COUNTRY", func(id *identity.Identity) {
			id.Properties = slices.DeleteFunc(id.Properties, func(p identity.Property) bool { return p.Name == identity.PropCountry })
		}},
		{"COUNTRY not a country code", func(id *identity.Identity) { id.Properties[3].Value = "UK" }},
		{"no key", func(id *identity.Identity) { id.PublicKey = nil }},
		{"short key", func(id *identity.Identity) { id.PublicKey = id.PublicKey[:31] }},
		{"long key", func(id *identity.Identity) { id.PublicKey = append(slices.Clone(id.PublicKey), 0) }},
		{"Approved without validity window", func(id *identity.Identity) { id.State = identity.Approved }},
		{"Approved with empty validity window", func(id *identity.Identity) {
			id.State = identity.Approved
			id.From = time.Now()
			id.To = id.From
		}},
		{"Approved with reversed validity window", func(id *identity.Identity) {
			id.State = identity.Approved
			id.To = time.Now()
			id.From = id.To.Add(time.Hour)
		}},
	}
	for _, tc := range cases {
		id := Person(t, "199001011234", "SE")
		key := slices.Clone(id.PublicKey)
		tc.mutate(&id)
		wantErr(t, "Create with "+tc.name, s.Create(ctx, id), identity.ErrInvalid)
		if _, err := s.GetByPublicKey(ctx, key); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("after Create with %s: GetByPublicKey: %v, want ErrNotFound", tc.name, err)
		}
		if identity.ValidateID(id.ID) == nil {
			if _, err := s.Get(ctx, id.ID); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("after Create with %s: Get: %v, want ErrNotFound", tc.name, err)
			}
		}
	}
	all, err := s.List(ctx, identity.Query{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(all) != 0 {
		t.Errorf("invalid identities were stored: %q", ids(all))
	}
	from, to := window()
	found, err := s.FindValid(ctx, "199001011234", "SE", from.Add(to.Sub(from)/2))
	if err != nil || len(found) != 0 {
		t.Errorf("FindValid after invalid Creates: %q, %v; want nothing", ids(found), err)
	}
}

func testFindValidExactMatch(t *testing.T, s identity.Store) {
	ctx := context.Background()
	target := Approved(t, "199001011234", "SE")
	alnum := Approved(t, "AB123456c", "NO")
	others := []identity.Identity{
		Approved(t, "199001011234", "NO"), // same PNR, other country
		Approved(t, "199001011235", "SE"), // other PNR
		Approved(t, "19900101123", "SE"),  // prefix of the PNR
		Approved(t, "1990010112345", "SE"),
		Approved(t, "SE", "FI"), // PNR and COUNTRY must not be interchangeable
		Approved(t, "ab123456c", "NO"),
	}
	create(t, s, target, alnum)
	create(t, s, others...)
	now := time.Now()
	for _, tc := range []struct {
		pnr, country string
		want         []identity.Identity
	}{
		{"199001011234", "SE", []identity.Identity{target}},
		{"AB123456c", "NO", []identity.Identity{alnum}},
		{"199001011234", "se", nil},
		{"199001011234", "Se", nil},
		{"AB123456C", "NO", nil},
		{"Ab123456c", "NO", nil},
		{"19900101123", "NO", nil},
		{"1990010112", "SE", nil},
		{"19900101123456", "SE", nil},
		{" 199001011234", "SE", nil},
		{"199001011234 ", "SE", nil},
		{"199001011234", " SE", nil},
		{"199001011234", "DK", nil},
		{"SE", "199001011234", nil},
		{"FI", "SE", nil},
		{"199001011234SE", "", nil},
		{"", "SE", nil},
		{"", "", nil},
	} {
		got, err := s.FindValid(ctx, tc.pnr, tc.country, now)
		if err != nil {
			t.Errorf("FindValid(%q, %q): %v", tc.pnr, tc.country, err)
			continue
		}
		sameIDs(t, fmt.Sprintf("FindValid(%q, %q)", tc.pnr, tc.country), got, tc.want...)
	}
	got, err := s.FindValid(ctx, "199001011234", "SE", now)
	if err != nil || len(got) != 1 {
		t.Fatalf("FindValid: %q, %v; want the target", ids(got), err)
	}
	same(t, "FindValid result", got[0], target)
}

func testFindValidWindow(t *testing.T, s identity.Store) {
	ctx := context.Background()
	id := Approved(t, "199001011234", "SE")
	create(t, s, id)
	for _, tc := range []struct {
		name  string
		at    time.Time
		valid bool
	}{
		{"at From", id.From, true},
		{"at To", id.To, true},
		{"inside", id.From.Add(time.Hour), true},
		{"a millisecond before From", id.From.Add(-time.Millisecond), false},
		{"a millisecond after To", id.To.Add(time.Millisecond), false},
		{"long before", id.From.AddDate(-1, 0, 0), false},
		{"long after", id.To.AddDate(1, 0, 0), false},
		{"at From in another zone", id.From.In(time.FixedZone("X", -7*3600)), true},
	} {
		got, err := s.FindValid(ctx, "199001011234", "SE", tc.at)
		if err != nil {
			t.Fatalf("FindValid %s: %v", tc.name, err)
		}
		if (len(got) == 1) != tc.valid || len(got) > 1 {
			t.Errorf("FindValid %s (%v, window [%v, %v]): %q, want valid=%v", tc.name, tc.at, id.From, id.To, ids(got), tc.valid)
		}
	}
}

func testFindValidStates(t *testing.T, s identity.Store) {
	ctx := context.Background()
	const pnr, country = "199001011234", "SE"
	valid := []identity.Identity{
		inState(t, s, pnr, country, identity.Approved),
		Approved(t, pnr, country),
	}
	create(t, s, valid[1])
	for _, st := range []identity.State{identity.Created, identity.Rejected, identity.Obsoleted, identity.Compromised} {
		inState(t, s, pnr, country, st)
	}
	// Approved and then rejected: differs from Created→Rejected in that it
	// has a validity window that covers now.
	ar := inState(t, s, pnr, country, identity.Approved)
	transition(t, s, ar.ID, identity.Change{From: identity.Approved, To: identity.Rejected, At: time.Now()})
	// Stored directly in a final state, as a federation import might, with
	// a window that covers now.
	for _, st := range []identity.State{identity.Rejected, identity.Obsoleted, identity.Compromised} {
		id := Approved(t, pnr, country)
		id.State = st
		create(t, s, id)
	}
	expired := Approved(t, pnr, country)
	expired.From, expired.To = time.Now().AddDate(-2, 0, 0), time.Now().AddDate(-1, 0, 0)
	future := Approved(t, pnr, country)
	future.From, future.To = time.Now().AddDate(1, 0, 0), time.Now().AddDate(2, 0, 0)
	create(t, s, expired, future)

	got, err := s.FindValid(ctx, pnr, country, time.Now())
	if err != nil {
		t.Fatalf("FindValid: %v", err)
	}
	sameIDs(t, "FindValid among identities in every state", got, valid...)
	for _, id := range got {
		if id.State != identity.Approved {
			t.Errorf("FindValid returned %s in state %s", id.ID, id.State)
		}
	}
}

func testFindValidWithoutPNR(t *testing.T, s identity.Store) {
	ctx := context.Background()
	noPNR := Approved(t, "1", "SE")
	noPNR.Properties = []identity.Property{{Name: identity.PropFirst, Value: "Nils"}, {Name: identity.PropLast, Value: "Nummerlös"}}
	org := Approved(t, "1", "SE")
	org.Properties = []identity.Property{{Name: identity.PropOrgName, Value: "SE"}, {Name: identity.PropEmail, Value: "x@example.org"}}
	create(t, s, noPNR, org)
	for _, q := range [][2]string{{"", ""}, {"", "SE"}, {"1", ""}, {"Nils", "SE"}, {"SE", "SE"}} {
		got, err := s.FindValid(ctx, q[0], q[1], time.Now())
		if err != nil || len(got) != 0 {
			t.Errorf("FindValid(%q, %q): %q, %v; want nothing", q[0], q[1], ids(got), err)
		}
	}
	same(t, "identity without PNR", get(t, s, noPNR.ID), noPNR)
}

func testFindValidMany(t *testing.T, s identity.Store) {
	const pnr, country = "199001011234", "SE"
	var want []identity.Identity
	for range 50 {
		id := Approved(t, pnr, country)
		want = append(want, id)
	}
	create(t, s, want...)
	create(t, s, Approved(t, "199001011233", country))
	got, err := s.FindValid(context.Background(), pnr, country, time.Now())
	if err != nil {
		t.Fatalf("FindValid: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("FindValid returned %d identities, want %d", len(got), len(want))
	}
	sameIDs(t, "FindValid for a person with 50 identities", got, want...)
}

// testFindPerson: every identity of a person in any state, in ID order,
// as it is now (an approval moves it, it stays found), and no one else's.
func testFindPerson(t *testing.T, s identity.Store) {
	ctx := context.Background()
	const pnr, country = "199001011234", "SE"
	var want []identity.Identity
	for _, st := range []identity.State{identity.Created, identity.Approved, identity.Rejected, identity.Obsoleted, identity.Compromised} {
		want = append(want, inState(t, s, pnr, country, st))
	}
	pending := Person(t, pnr, country)
	create(t, s, pending)
	approved := transition(t, s, pending.ID, approval(window()))
	want = append(want, approved)
	create(t, s, Approved(t, pnr, "NO"), Approved(t, "199001011233", country))
	slices.SortFunc(want, func(a, b identity.Identity) int { return strings.Compare(a.ID, b.ID) })
	got, err := s.FindPerson(ctx, pnr, country)
	if err != nil {
		t.Fatalf("FindPerson: %v", err)
	}
	if strings.Join(ids(got), " ") != strings.Join(ids(want), " ") {
		t.Fatalf("FindPerson: %q, want %q in ID order", ids(got), ids(want))
	}
	for i := range want {
		if got[i].State != want[i].State {
			t.Errorf("FindPerson: %s is %s, want %s", got[i].ID, got[i].State, want[i].State)
		}
	}
	if got, err := s.FindPerson(ctx, "199001011299", country); err != nil || len(got) != 0 {
		t.Errorf("FindPerson for nobody: %q, %v", ids(got), err)
	}
}

// testPurgeApplications: only undecided applications older than the
// limit go, with their index entries, and their keys may apply again.
func testPurgeApplications(t *testing.T, s identity.Store) {
	ctx := context.Background()
	const pnr, country = "199001011234", "SE"
	old := Person(t, pnr, country)
	old.Created, old.Updated = time.Now().Add(-10*24*time.Hour), time.Now().Add(-10*24*time.Hour)
	recent := Person(t, pnr, country)
	recent.Created, recent.Updated = time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)
	oldApproved := Approved(t, pnr, country)
	oldApproved.Created = old.Created
	oldRejected := Person(t, pnr, country)
	oldRejected.Created, oldRejected.State = old.Created, identity.Rejected
	create(t, s, old, recent, oldApproved, oldRejected)
	n, err := s.PurgeApplications(ctx, time.Now().Add(-7*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeApplications: %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, old.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("the old application is still there: %v", err)
	}
	if _, err := s.GetByPublicKey(ctx, old.PublicKey); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("the old application's key still finds it: %v", err)
	}
	person, err := s.FindPerson(ctx, pnr, country)
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "the person after the purge", person, recent, oldApproved, oldRejected)
	again := Person(t, pnr, country)
	again.PublicKey = old.PublicKey
	again.Created, again.Updated = time.Now(), time.Now()
	create(t, s, again)
	if n, err := s.PurgeApplications(ctx, time.Now().Add(-7*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("a second purge: %d, %v", n, err)
	}
}

// countries calls Countries, which must succeed.
func countries(t *testing.T, s identity.Store) []string {
	t.Helper()
	got, err := s.Countries(context.Background())
	if err != nil {
		t.Fatalf("Countries: %v", err)
	}
	return got
}

// testCountries: the countries of the Approved identities, each once,
// sorted; identities in any other state, and ones without a COUNTRY, add
// none; a country goes when its last Approved identity leaves that state,
// and stays while another remains.
func testCountries(t *testing.T, s identity.Store) {
	if got := countries(t, s); len(got) != 0 {
		t.Errorf("Countries of an empty store: %q", got)
	}
	se1 := inState(t, s, "199001011231", "SE", identity.Approved)
	se2 := inState(t, s, "199001011232", "SE", identity.Approved)
	no := inState(t, s, "199001011233", "NO", identity.Approved)
	for st, country := range map[identity.State]string{
		identity.Created: "DK", identity.Rejected: "FI", identity.Obsoleted: "DE", identity.Compromised: "FR",
	} {
		inState(t, s, "199001011234", country, st)
	}
	// Approved whatever its window: a person whose approval has lapsed is
	// still this broker's to serve once the operator renews it.
	lapsed := Approved(t, "199001011235", "AT")
	lapsed.From, lapsed.To = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	nameless := Approved(t, "", "")
	nameless.Properties = nameless.Properties[:2] // FIRST and LAST only
	create(t, s, lapsed, nameless)

	want := []string{"AT", "NO", "SE"}
	if got := countries(t, s); !slices.Equal(got, want) {
		t.Fatalf("Countries: %q, want %q", got, want)
	}
	at := baseTime().Add(3 * time.Hour)
	transition(t, s, no.ID, identity.Change{From: identity.Approved, To: identity.Obsoleted, At: at})
	transition(t, s, se1.ID, identity.Change{From: identity.Approved, To: identity.Compromised, At: at})
	if got, want := countries(t, s), []string{"AT", "SE"}; !slices.Equal(got, want) {
		t.Errorf("Countries after NO's last and one of SE's identities left Approved: %q, want %q", got, want)
	}
	transition(t, s, se2.ID, identity.Change{From: identity.Approved, To: identity.Rejected, At: at})
	if got, want := countries(t, s), []string{"AT"}; !slices.Equal(got, want) {
		t.Errorf("Countries after SE's last identity left Approved: %q, want %q", got, want)
	}
	// A person approved again brings the country back.
	inState(t, s, "199001011233", "NO", identity.Approved)
	if got, want := countries(t, s), []string{"AT", "NO"}; !slices.Equal(got, want) {
		t.Errorf("Countries after NO is approved again: %q, want %q", got, want)
	}
}

func testList(t *testing.T, s identity.Store) {
	ctx := context.Background()
	byState := map[identity.State][]identity.Identity{}
	var all []identity.Identity
	for i := range 30 {
		st := identity.States()[i%len(identity.States())]
		id := inState(t, s, fmt.Sprint(i), "SE", st)
		byState[st] = append(byState[st], id)
		all = append(all, id)
	}
	slices.SortFunc(all, func(a, b identity.Identity) int { return strings.Compare(a.ID, b.ID) })

	got, err := s.List(ctx, identity.Query{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(ids(got), ids(all)) {
		t.Fatalf("List: %q, want all in ID order %q", ids(got), ids(all))
	}
	for i := range got {
		same(t, "List result", got[i], all[i])
	}
	for _, st := range identity.States() {
		want := slices.Clone(byState[st])
		slices.SortFunc(want, func(a, b identity.Identity) int { return strings.Compare(a.ID, b.ID) })
		got, err := s.List(ctx, identity.Query{State: st})
		if err != nil {
			t.Fatalf("List %s: %v", st, err)
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("List %s: %q, want %q", st, ids(got), ids(want))
		}
	}

	// After need not be a stored ID.
	mid := all[10].ID + "\x00"
	got, err = s.List(ctx, identity.Query{After: mid, Limit: 5})
	if err != nil {
		t.Fatalf("List after %q: %v", mid, err)
	}
	if !slices.Equal(ids(got), ids(all[11:16])) {
		t.Errorf("List after %q limit 5: %q, want %q", mid, ids(got), ids(all[11:16]))
	}
	got, err = s.List(ctx, identity.Query{After: all[len(all)-1].ID})
	if err != nil || len(got) != 0 {
		t.Errorf("List after the last ID: %q, %v; want nothing", ids(got), err)
	}
	got, err = s.List(ctx, identity.Query{Limit: 1})
	if err != nil || len(got) != 1 || got[0].ID != all[0].ID {
		t.Errorf("List limit 1: %q, %v; want %s", ids(got), err, all[0].ID)
	}
}

func testListPagination(t *testing.T, s identity.Store) {
	const n = 2500
	want := make([]identity.Identity, n)
	for i := range want {
		if i%5 == 0 {
			want[i] = Approved(t, fmt.Sprint(i), "SE")
		} else {
			want[i] = Person(t, fmt.Sprint(i), "SE")
		}
	}
	createConcurrently(t, s, want, 8)

	for _, tc := range []struct {
		state identity.State
		limit int
		count int
	}{
		{"", 97, n},
		{"", 1000, n},
		{identity.Approved, 33, n / 5},
		{identity.Created, 500, n - n/5},
	} {
		seen := map[string]int{}
		after, pages := "", 0
		for {
			page, err := s.List(context.Background(), identity.Query{State: tc.state, After: after, Limit: tc.limit})
			if err != nil {
				t.Fatalf("List page %d: %v", pages, err)
			}
			if len(page) > tc.limit {
				t.Fatalf("List page %d has %d identities, limit %d", pages, len(page), tc.limit)
			}
			if len(page) == 0 {
				break
			}
			pages++
			for _, id := range page {
				if id.ID <= after {
					t.Fatalf("List state %q: %s follows %s", tc.state, id.ID, after)
				}
				if tc.state != "" && id.State != tc.state {
					t.Fatalf("List state %q returned %s in state %s", tc.state, id.ID, id.State)
				}
				seen[id.ID]++
				after = id.ID
			}
		}
		if len(seen) != tc.count {
			t.Errorf("paging state %q by %d: saw %d identities, want %d", tc.state, tc.limit, len(seen), tc.count)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("paging state %q by %d: saw %s %d times", tc.state, tc.limit, id, c)
			}
		}
		if wantPages := (tc.count + tc.limit - 1) / tc.limit; pages != wantPages {
			t.Errorf("paging state %q by %d: %d pages, want %d", tc.state, tc.limit, pages, wantPages)
		}
	}
}

func createConcurrently(t *testing.T, s identity.Store, list []identity.Identity, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(list))
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(list); i += workers {
				if err := s.Create(context.Background(), list[i]); err != nil {
					errs <- fmt.Errorf("Create(%s): %w", list[i].ID, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func testAllowedTransitions(t *testing.T, s identity.Store) {
	for _, to := range []identity.State{identity.Approved, identity.Rejected} {
		before := inState(t, s, "1", "SE", identity.Created)
		from, until := window()
		c := identity.Change{From: identity.Created, To: to, At: baseTime().Add(90 * time.Minute), ValidFrom: from, ValidTo: until}
		want := before
		want.State, want.Updated, want.Version = to, c.At, before.Version+1
		if to == identity.Approved {
			want.From, want.To = from, until
		}
		checkTransition(t, s, before, c, want)
	}
	for _, to := range []identity.State{identity.Obsoleted, identity.Compromised, identity.Rejected} {
		before := inState(t, s, "1", "SE", identity.Approved)
		// A window in the change must not move the approved window.
		c := identity.Change{From: identity.Approved, To: to, At: baseTime().Add(3 * time.Hour), ValidFrom: baseTime(), ValidTo: baseTime().Add(time.Hour)}
		want := before
		want.State, want.Updated, want.Version = to, c.At, before.Version+1
		checkTransition(t, s, before, c, want)
	}
}

func checkTransition(t *testing.T, s identity.Store, before identity.Identity, c identity.Change, want identity.Identity) {
	t.Helper()
	what := fmt.Sprintf("%s→%s", c.From, c.To)
	got, err := s.Transition(context.Background(), before.ID, c)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	same(t, what+": returned identity", got, want)
	same(t, what+": stored identity", get(t, s, before.ID), want)
}

func testRefusedTransitions(t *testing.T, s identity.Store) {
	ctx := context.Background()
	targets := append(identity.States(), "Pending", "")
	for _, from := range identity.States() {
		before := inState(t, s, "1", "SE", from)
		for _, to := range targets {
			if identity.CanTransition(from, to) {
				continue
			}
			vf, vt := window()
			_, err := s.Transition(ctx, before.ID, identity.Change{From: from, To: to, At: time.Now(), ValidFrom: vf, ValidTo: vt})
			wantErr(t, fmt.Sprintf("Transition %s→%q", from, to), err, identity.ErrTransition)
			same(t, fmt.Sprintf("after refused %s→%q", from, to), get(t, s, before.ID), before)
		}
	}
}

func testApprovalNeedsWindow(t *testing.T, s identity.Store) {
	before := inState(t, s, "1", "SE", identity.Created)
	now := time.Now()
	for _, w := range [][2]time.Time{{}, {now, time.Time{}}, {now, now}, {now, now.Add(-time.Hour)}} {
		_, err := s.Transition(context.Background(), before.ID, approval(w[0], w[1]))
		wantErr(t, fmt.Sprintf("approval with window [%v, %v]", w[0], w[1]), err, identity.ErrInvalid)
		same(t, "after refused approval", get(t, s, before.ID), before)
	}
}

func testStaleChange(t *testing.T, s identity.Store) {
	ctx := context.Background()
	before := inState(t, s, "1", "SE", identity.Approved)
	from, to := window()
	for _, c := range []identity.Change{
		approval(from, to),
		{From: identity.Created, To: identity.Rejected, At: time.Now()},
		{From: identity.Obsoleted, To: identity.Rejected, At: time.Now()},
	} {
		_, err := s.Transition(ctx, before.ID, c)
		wantErr(t, fmt.Sprintf("stale %s→%s on an Approved identity", c.From, c.To), err, identity.ErrConflict)
		same(t, "after stale change", get(t, s, before.ID), before)
	}
}

func testTransitionUnknown(t *testing.T, s identity.Store) {
	create(t, s, Person(t, "1", "SE"))
	from, to := window()
	_, err := s.Transition(context.Background(), identity.NewID(Domain), approval(from, to))
	wantErr(t, "Transition of an unknown ID", err, identity.ErrNotFound)
}

func testConcurrentTransitions(t *testing.T, s identity.Store) {
	const racers = 16
	before := inState(t, s, "199001011234", "SE", identity.Created)
	type result struct {
		id  identity.Identity
		err error
	}
	results := make([]result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		c := identity.Change{From: identity.Created, To: identity.Rejected, At: baseTime().Add(time.Duration(i) * time.Minute)}
		if i%2 == 0 {
			c.To = identity.Approved
			c.ValidFrom, c.ValidTo = window()
			c.ValidTo = c.ValidTo.Add(time.Duration(i) * time.Hour)
		}
		wg.Go(func() {
			<-start
			id, err := s.Transition(context.Background(), before.ID, c)
			results[i] = result{id, err}
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i, r := range results {
		switch {
		case r.err == nil:
			winners = append(winners, i)
		case !errors.Is(r.err, identity.ErrConflict):
			t.Errorf("racer %d: %v, want success or ErrConflict", i, r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d transitions succeeded (%v), want exactly one", len(winners), winners)
	}
	won := results[winners[0]].id
	if won.Version != before.Version+1 {
		t.Errorf("winner's Version %d, want %d", won.Version, before.Version+1)
	}
	same(t, "stored identity after the race", get(t, s, before.ID), won)
}

func testConcurrentCreates(t *testing.T, s identity.Store) {
	list := make([]identity.Identity, 200)
	for i := range list {
		list[i] = Approved(t, fmt.Sprint(1000+i), "SE")
	}
	createConcurrently(t, s, list, 8)
	all, err := s.List(context.Background(), identity.Query{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	sameIDs(t, "List after concurrent creates", all, list...)
	for _, want := range list {
		same(t, "Get after concurrent create", get(t, s, want.ID), want)
		found, err := s.FindValid(context.Background(), want.Property(identity.PropPNR), "SE", time.Now())
		if err != nil || len(found) != 1 || found[0].ID != want.ID {
			t.Errorf("FindValid for %s: %q, %v", want.ID, ids(found), err)
		}
	}
}

func testCancelledContext(t *testing.T, s identity.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	existing := inState(t, s, "199001011234", "SE", identity.Created)
	fresh := Approved(t, "199001011235", "SE")
	from, to := window()

	wantErr(t, "Create", s.Create(ctx, fresh), context.Canceled)
	if _, err := s.Get(context.Background(), fresh.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("Create with a cancelled context stored the identity (Get: %v)", err)
	}
	_, err := s.Get(ctx, existing.ID)
	wantErr(t, "Get", err, context.Canceled)
	_, err = s.GetByPublicKey(ctx, existing.PublicKey)
	wantErr(t, "GetByPublicKey", err, context.Canceled)
	_, err = s.FindValid(ctx, "199001011234", "SE", time.Now())
	wantErr(t, "FindValid", err, context.Canceled)
	_, err = s.List(ctx, identity.Query{})
	wantErr(t, "List", err, context.Canceled)
	_, err = s.Countries(ctx)
	wantErr(t, "Countries", err, context.Canceled)
	_, err = s.Transition(ctx, existing.ID, approval(from, to))
	wantErr(t, "Transition", err, context.Canceled)
	same(t, "after Transition with a cancelled context", get(t, s, existing.ID), existing)
	wantErr(t, "Ping", s.Ping(ctx), context.Canceled)
}

func testPing(t *testing.T, s identity.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping on an empty store: %v", err)
	}
	create(t, s, Person(t, "1", "SE"))
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
