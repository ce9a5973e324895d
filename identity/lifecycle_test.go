package identity_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity"
)

func TestCanTransitionMatrix(t *testing.T) {
	// The life cycle from the design brief, written out independently of
	// the code under test.
	allowed := map[[2]identity.State]bool{
		{identity.Created, identity.Approved}:     true,
		{identity.Created, identity.Rejected}:     true,
		{identity.Approved, identity.Obsoleted}:   true,
		{identity.Approved, identity.Compromised}: true,
		{identity.Approved, identity.Rejected}:    true,
	}
	states := append(identity.States(), "", "Pending", "approved", "CREATED")
	count := 0
	for _, from := range states {
		for _, to := range states {
			want := allowed[[2]identity.State{from, to}]
			if got := identity.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
			if want {
				count++
			}
		}
	}
	if count != len(allowed) {
		t.Fatalf("matrix covered %d allowed transitions, want %d", count, len(allowed))
	}
}

func TestStatesOrder(t *testing.T) {
	want := []identity.State{identity.Created, identity.Approved, identity.Rejected, identity.Obsoleted, identity.Compromised}
	if got := identity.States(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("States() = %v, want %v", got, want)
	}
	// Callers may modify the result without changing the next one.
	identity.States()[0] = "X"
	if identity.States()[0] != identity.Created {
		t.Error("States() shares its slice between calls")
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want identity.State
	}{
		{"Created", identity.Created},
		{"created", identity.Created},
		{"APPROVED", identity.Approved},
		{"rEjEcTeD", identity.Rejected},
		{"Obsoleted", identity.Obsoleted},
		{"compromised", identity.Compromised},
	} {
		got, err := identity.ParseState(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseState(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", " Created", "Created ", "Approve", "Pending", "Créated", "Created\x00"} {
		if got, err := identity.ParseState(in); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("ParseState(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestValidAt(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	id := identity.Identity{State: identity.Approved, From: from, To: to}
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"at From", from, true},
		{"at To", to, true},
		{"between", from.Add(time.Hour), true},
		{"a nanosecond before From", from.Add(-1), false},
		{"a nanosecond after To", to.Add(1), false},
		{"at From in another zone", from.In(time.FixedZone("X", 5*3600)), true},
		{"zero time", time.Time{}, false},
	} {
		if got := id.ValidAt(tc.at); got != tc.want {
			t.Errorf("ValidAt %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, st := range identity.States() {
		if st == identity.Approved {
			continue
		}
		id.State = st
		if id.ValidAt(from.Add(time.Hour)) {
			t.Errorf("%s identity is valid inside its window", st)
		}
	}
}

func TestChangeApply(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	at := time.Date(2026, 2, 3, 4, 5, 6, 7, cet)
	vf, vt := at, at.AddDate(2, 0, 0)
	base := identity.Identity{ID: "a@b", State: identity.Created, Version: 4, Updated: at.Add(-time.Hour)}

	got, err := identity.Change{From: identity.Created, To: identity.Approved, At: at, ValidFrom: vf, ValidTo: vt}.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != identity.Approved || got.Version != 5 || !got.Updated.Equal(at) || !got.From.Equal(vf) || !got.To.Equal(vt) {
		t.Errorf("approval gave %+v", got)
	}
	for _, tm := range []time.Time{got.Updated, got.From, got.To} {
		if tm.Location() != time.UTC {
			t.Errorf("approval left %v outside UTC", tm)
		}
	}
	if base.State != identity.Created || base.Version != 4 {
		t.Error("Apply modified its argument")
	}

	rejected, err := identity.Change{From: identity.Approved, To: identity.Rejected, At: at.Add(time.Hour), ValidFrom: at, ValidTo: at.Add(time.Minute)}.Apply(got)
	if err != nil {
		t.Fatal(err)
	}
	if !rejected.From.Equal(vf) || !rejected.To.Equal(vt) || rejected.Version != 6 {
		t.Errorf("rejection changed the window or version: %+v", rejected)
	}

	for _, tc := range []struct {
		name string
		c    identity.Change
		want error
	}{
		{"stale From", identity.Change{From: identity.Approved, To: identity.Obsoleted, At: at}, identity.ErrConflict},
		{"stale From and forbidden", identity.Change{From: identity.Rejected, To: identity.Created, At: at}, identity.ErrConflict},
		{"forbidden", identity.Change{From: identity.Created, To: identity.Obsoleted, At: at}, identity.ErrTransition},
		{"to itself", identity.Change{From: identity.Created, To: identity.Created, At: at}, identity.ErrTransition},
		{"approval without window", identity.Change{From: identity.Created, To: identity.Approved, At: at}, identity.ErrInvalid},
		{"approval with empty window", identity.Change{From: identity.Created, To: identity.Approved, At: at, ValidFrom: vf, ValidTo: vf}, identity.ErrInvalid},
		{"approval with reversed window", identity.Change{From: identity.Created, To: identity.Approved, At: at, ValidFrom: vt, ValidTo: vf}, identity.ErrInvalid},
	} {
		got, err := tc.c.Apply(base)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if got.State != base.State || got.Version != base.Version || !got.Updated.Equal(base.Updated) {
			t.Errorf("%s: refused change still changed the identity: %+v", tc.name, got)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := identity.Identity{
		ID:         "a@legal.example.org",
		State:      identity.Created,
		Properties: []identity.Property{{Name: identity.PropPNR, Value: "1"}, {Name: identity.PropCountry, Value: "SE"}},
		PublicKey:  make(ed25519.PublicKey, ed25519.PublicKeySize),
	}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid identity: %v", err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		mutate func(*identity.Identity)
	}{
		{"bad ID", func(id *identity.Identity) { id.ID = "nodomain" }},
		{"unknown state", func(id *identity.Identity) { id.State = "Pending" }},
		{"no properties", func(id *identity.Identity) { id.Properties = nil }},
		{"short key", func(id *identity.Identity) { id.PublicKey = id.PublicKey[:31] }},
		{"private-key-sized key", func(id *identity.Identity) { id.PublicKey = make([]byte, ed25519.PrivateKeySize) }},
		{"Approved without window", func(id *identity.Identity) { id.State = identity.Approved }},
		{"Approved with To == From", func(id *identity.Identity) { id.State, id.From, id.To = identity.Approved, now, now }},
		{"Approved with only From", func(id *identity.Identity) { id.State, id.From = identity.Approved, now }},
	} {
		id := valid
		tc.mutate(&id)
		if err := id.Validate(); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	ok := valid
	ok.State, ok.From, ok.To = identity.Approved, now, now.Add(time.Millisecond)
	if err := ok.Validate(); err != nil {
		t.Errorf("Approved with a 1 ms window: %v", err)
	}
}
