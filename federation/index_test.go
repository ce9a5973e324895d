package federation

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
)

func TestIndex(t *testing.T) {
	t.Parallel()
	x, err := OpenIndex(filepath.Join(t.TempDir(), "federation.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	home, _ := identity.GenerateKey()
	homeID := api.PeerID(home.Public().(ed25519.PublicKey))
	lk := testLookupKey()
	id := testIdentity(t)
	r3, _ := NewReference(id, home, lk)
	if got, _ := x.Find("SE", "19791231-1234", []string{homeID}); len(got) != 0 {
		t.Fatal("found before anything was shared")
	}
	if err := x.SetLookupKey(homeID, lk); err != nil {
		t.Fatal(err)
	}
	if err := x.Apply(homeID, []Change{{Ref: r3}}, 7); err != nil {
		t.Fatal(err)
	}
	got, err := x.Find("SE", "19791231-1234", []string{homeID})
	if err != nil || len(got) != 1 || got[0].LegalID != id.ID || x.Revision(homeID) != 7 || x.Count(homeID) != 1 {
		t.Fatalf("found %+v, %v; revision %d", got, err, x.Revision(homeID))
	}
	if got, _ := x.Find("SE", "19791231-1235", []string{homeID}); len(got) != 0 {
		t.Fatal("another number found the reference")
	}
	if got, _ := x.Find("SE", "19791231-1234", []string{"another"}); len(got) != 0 {
		t.Fatal("another peer's lookup found the reference")
	}
	// A newer version (obsoleted) replaces it; a late older copy does not
	// bring it back.
	obsolete := id
	obsolete.State, obsolete.Version = identity.Obsoleted, 4
	r4, _ := NewReference(obsolete, home, lk)
	if err := x.Apply(homeID, []Change{{Ref: r4}, {Ref: r3}}, 9); err != nil {
		t.Fatal(err)
	}
	if got, _ := x.Find("SE", "19791231-1234", []string{homeID}); len(got) != 1 || got[0].State != identity.Obsoleted {
		t.Fatalf("after the newer version: %+v", got)
	}
	// A changed number moves the reference.
	moved := obsolete
	moved.Version = 5
	moved.Properties = []identity.Property{{Name: "PNR", Value: "19791231-9999"}, {Name: "COUNTRY", Value: "SE"}}
	r5, _ := NewReference(moved, home, lk)
	x.Apply(homeID, []Change{{Ref: r5}}, 10)
	if got, _ := x.Find("SE", "19791231-1234", []string{homeID}); len(got) != 0 {
		t.Fatal("the old number still finds it")
	}
	if got, _ := x.Find("SE", "19791231-9999", []string{homeID}); len(got) != 1 || x.Count(homeID) != 1 {
		t.Fatalf("the new number: %+v, count %d", got, x.Count(homeID))
	}
	if err := x.Apply(homeID, []Change{{Ref: r5, Forget: true}}, 11); err != nil || x.Count(homeID) != 0 {
		t.Fatalf("forget one: %v, count %d", err, x.Count(homeID))
	}
	x.Apply(homeID, []Change{{Ref: r5}}, 12)
	if err := x.Forget(homeID); err != nil || x.Count(homeID) != 0 || x.Revision(homeID) != 0 {
		t.Fatalf("forget the peer: %v", err)
	}
}

// BenchmarkIndexFind looks up one person among a million references.
func BenchmarkIndexFind(b *testing.B) {
	x, err := OpenIndex(filepath.Join(b.TempDir(), "federation.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	home, _ := identity.GenerateKey()
	homeID := api.PeerID(home.Public().(ed25519.PublicKey))
	lk := testLookupKey()
	x.SetLookupKey(homeID, lk)
	const n = 1_000_000
	id := testIdentity(b)
	start := time.Now()
	batch := make([]Change, 0, 10000)
	for i := range n {
		id.ID = fmt.Sprintf("%08d-0000-4000-8000-000000000001@legal.b.test", i)
		id.Properties = []identity.Property{{Name: "PNR", Value: fmt.Sprintf("19%08d", i)}, {Name: "COUNTRY", Value: "SE"}}
		r, _ := NewReference(id, home, lk)
		batch = append(batch, Change{Ref: r})
		if len(batch) == cap(batch) {
			if err := x.Apply(homeID, batch, uint64(i)); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("indexed %d references in %s", n, time.Since(start))
	b.ResetTimer()
	for i := range b.N {
		got, err := x.Find("SE", fmt.Sprintf("19%08d", i%n), []string{homeID})
		if err != nil || len(got) != 1 {
			b.Fatalf("%d: %v %v", i, got, err)
		}
	}
}
