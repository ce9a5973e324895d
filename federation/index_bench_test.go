package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/latency"
)

// benchIndexVersion names what benchIndex writes; bump it when that
// changes, so that a cached file made by older code is not reused.
const benchIndexVersion = 1

// BenchmarkIndexLookup measures the lookup of a person among the references
// one peer shares: Index.Find for a random person of the peer's, in an
// index of 100,000 references, and, with MFA_BENCH_REFERENCES=N set, of N
// as well (1000000 for the federation's scale target). Besides ns/op it
// reports the median, 99th percentile and maximum of single lookups
// (p50-ns, p99-ns, max-ns) over people the timed loop did not look up.
//
// The index is filled as a broker fills it from the mirror of the peer's
// share bucket: signed references, in batches of importBatch, one
// transaction each, in the order of the peer's identity IDs, which is
// random to the lookup hashes. It is cached in os.TempDir() as
// legalmfa-federation-index-<n>-v<version>.db; delete it to make it anew.
// The figures hold for a file in the page cache, which the timed loop
// warms; mfa-bench --federated-references measures the same lookup over
// an index a broker filled by replication. (BenchmarkIndexFind times
// people in order, each a neighbour of the last in its numbers, over an
// index it fills anew each run.)
func BenchmarkIndexLookup(b *testing.B) {
	sizes := []int{100_000}
	if v := os.Getenv("MFA_BENCH_REFERENCES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("MFA_BENCH_REFERENCES=%q: want a number of references, at least 1000", v)
		}
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("references=%d", n), func(b *testing.B) { benchmarkIndexLookup(b, n) })
	}
}

// benchHome is the key of the peer whose references the benchmark index
// holds.
var benchHome = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func benchLookupKey() LookupKey {
	k := sha256.Sum256([]byte("benchmark lookup key"))
	return k[:]
}

// benchPerson is person i's PNR and COUNTRY; each has one identity.
func benchPerson(i int) (pnr, country string) {
	countries := [...]string{"SE", "NO", "DK", "FI"}
	return fmt.Sprintf("%04d%08d", 1940+i%70, i), countries[i%len(countries)]
}

func benchLegalID(i int) string {
	u := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("index bench id"), uint64(i)))
	return fmt.Sprintf("%x-%x-%x-%x-%x@legal.home.example", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func benchmarkIndexLookup(b *testing.B, n int) {
	path := benchIndex(b, n)
	x, err := OpenIndex(path)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	home := api.PeerID(benchHome.Public().(ed25519.PublicKey))
	if got := x.Count(home); got != n {
		b.Fatalf("the index holds %d references, want %d (delete %s)", got, n, path)
	}
	peers := []string{home}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	lookup := func(i int) {
		pnr, country := benchPerson(i)
		refs, err := x.Find(country, pnr, peers)
		if err != nil || len(refs) != 1 || refs[0].LegalID != benchLegalID(i) {
			b.Fatalf("Find(%s, %s): %d references, %v", country, pnr, len(refs), err)
		}
	}
	loop := make([]int, 1<<14)
	for i := range loop {
		loop[i] = rng.IntN(n)
	}
	samples := make([]int, 50_000)
	for i := range samples {
		samples[i] = rng.IntN(n)
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		lookup(loop[i%len(loop)])
		i++
	}

	latency.Report(b, len(samples), time.Minute, func(i int) { lookup(samples[i]) })
}

// benchIndex returns the path of an index holding n references of one
// peer, making it when it is not cached.
func benchIndex(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("legalmfa-federation-index-%d-v%d.db", n, benchIndexVersion))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + fmt.Sprintf(".building-%d", os.Getpid())
	os.Remove(tmp)
	start := time.Now()
	if err := fillIndex(tmp, n); err != nil {
		os.Remove(tmp)
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("indexed %d references in %s (%d MiB) at %s", n, time.Since(start).Round(time.Millisecond), fi.Size()>>20, path)
	return path
}

func fillIndex(path string, n int) error {
	x, err := OpenIndex(path)
	if err != nil {
		return err
	}
	defer x.Close()
	home := api.PeerID(benchHome.Public().(ed25519.PublicKey))
	lookup := benchLookupKey()
	if err := x.SetLookupKey(home, lookup); err != nil {
		return err
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// In the order the peer exports them: by identity ID.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = benchLegalID(i)
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case ids[a] < ids[b]:
			return -1
		case ids[a] > ids[b]:
			return 1
		}
		return 0
	})
	batch := make([]Change, 0, importBatch)
	for rev, i := range order {
		pnr, country := benchPerson(i)
		key := sha256.Sum256([]byte(ids[i]))
		ref, ok := NewReference(identity.Identity{
			ID: ids[i], State: identity.Approved, PublicKey: key[:], From: from, To: from.AddDate(50, 0, 0), Version: 2,
			Properties: []identity.Property{{Name: identity.PropPNR, Value: pnr}, {Name: identity.PropCountry, Value: country}},
		}, benchHome, lookup)
		if !ok {
			return fmt.Errorf("no reference for identity %d", i)
		}
		batch = append(batch, Change{Ref: ref})
		if len(batch) == importBatch || rev == n-1 {
			if err := x.Apply(home, batch, uint64(rev+1)); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
