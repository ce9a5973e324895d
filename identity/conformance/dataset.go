package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/latency"
)

// The benchmark dataset every store's lookup benchmark uses, so their
// figures compare: n identities, all Approved and valid now. One person in
// a thousand has a second identity (two phones); everyone else has one.

// DatasetExtra is how many people have a second identity.
func DatasetExtra(n int) int { return n / 1000 }

// DatasetPeople is how many people the n identities belong to.
func DatasetPeople(n int) int { return n - DatasetExtra(n) }

// datasetOwner is the person identity i belongs to. The second identities
// go to people spread over the whole range.
func datasetOwner(n, i int) int {
	people := DatasetPeople(n)
	if i < people {
		return i
	}
	return (i - people) * (people / DatasetExtra(n))
}

// DatasetIdentitiesOf is how many identities person p has.
func DatasetIdentitiesOf(n, p int) int {
	people := DatasetPeople(n)
	if p%(people/DatasetExtra(n)) == 0 && p/(people/DatasetExtra(n)) < DatasetExtra(n) {
		return 2
	}
	return 1
}

// DatasetPerson is person p's PNR and COUNTRY.
func DatasetPerson(p int) (pnr, country string) {
	countries := [...]string{"SE", "NO", "DK", "FI", "DE", "NL", "FR", "IS"}
	return fmt.Sprintf("%04d%08d", 1940+p%70, p), countries[p%len(countries)]
}

// DatasetIdentity generates identity i deterministically. The public key
// is 32 pseudo-random bytes rather than a generated Ed25519 key: stores
// treat keys as opaque, and a million key generations would dominate
// building the dataset.
func DatasetIdentity(n, i int) identity.Identity {
	seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("bench"), uint64(i)))
	key := sha256.Sum256(seed[:])
	u := seed[:16]
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	p := datasetOwner(n, i)
	pnr, country := DatasetPerson(p)
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return identity.Identity{
		ID:    fmt.Sprintf("%x-%x-%x-%x-%x@legal.bench.example.org", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
		State: identity.Approved,
		Properties: []identity.Property{
			{Name: identity.PropFirst, Value: fmt.Sprintf("First%d", p)},
			{Name: identity.PropLast, Value: fmt.Sprintf("Lastname%d", p)},
			{Name: identity.PropPNR, Value: pnr},
			{Name: identity.PropCountry, Value: country},
			{Name: identity.PropEmail, Value: fmt.Sprintf("person%d@example.org", p)},
		},
		PublicKey: key[:],
		From:      t,
		To:        t.AddDate(50, 0, 0),
		Created:   t,
		Updated:   t,
		Version:   2,
	}
}

// BenchmarkLookup times FindValid on s, which holds the dataset of n
// identities, for random people: ns/op over the benchmark loop, then the
// median, 99th percentile and maximum of single lookups (p50-ns, p99-ns,
// max-ns) over up to samples people the loop did not look up, or as many as
// budget allows (at least 20).
func BenchmarkLookup(b *testing.B, s identity.Store, n, samples int, budget time.Duration) {
	ctx := context.Background()
	type query struct {
		pnr, country string
		want         int
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	queries := func(k int) []query {
		qs := make([]query, k)
		for i := range qs {
			p := rng.IntN(DatasetPeople(n))
			pnr, country := DatasetPerson(p)
			qs[i] = query{pnr, country, DatasetIdentitiesOf(n, p)}
		}
		return qs
	}
	// Drawn in advance, so that the loop measures only the lookup.
	loopQueries := queries(1 << 14)
	sampleQueries := queries(samples)
	now := time.Now()
	lookup := func(q query) {
		got, err := s.FindValid(ctx, q.pnr, q.country, now)
		if err != nil || len(got) != q.want {
			b.Fatalf("FindValid(%s, %s): %d identities, %v; want %d", q.pnr, q.country, len(got), err, q.want)
		}
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		lookup(loopQueries[i%len(loopQueries)])
		i++
	}

	latency.Report(b, len(sampleQueries), budget, func(i int) { lookup(sampleQueries[i]) })
}
