package boltstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/conformance"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identities.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, path
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) identity.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	a, b := conformance.Approved(t, "1", "SE"), conformance.Approved(t, "2", "SE")
	for _, id := range []identity.Identity{a, b} {
		if err := s.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := s.Transition(ctx, b.ID, identity.Change{From: identity.Approved, To: identity.Compromised, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	for _, want := range []identity.Identity{a, moved} {
		got, err := s2.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get(%s) after reopen: %v", want.ID, err)
		}
		// This store keeps nanoseconds, so compare exactly.
		if got.State != want.State || got.Version != want.Version || !got.Updated.Equal(want.Updated) ||
			!got.From.Equal(want.From) || !got.To.Equal(want.To) || !got.Created.Equal(want.Created) ||
			!bytes.Equal(got.PublicKey, want.PublicKey) || fmt.Sprint(got.Properties) != fmt.Sprint(want.Properties) {
			t.Errorf("after reopen got %+v, want %+v", got, want)
		}
	}
	found, err := s2.FindValid(ctx, "1", "SE", time.Now())
	if err != nil || len(found) != 1 || found[0].ID != a.ID {
		t.Errorf("FindValid after reopen: %v, %v", found, err)
	}
	if _, err := s2.GetByPublicKey(ctx, b.PublicKey); err != nil {
		t.Errorf("GetByPublicKey after reopen: %v", err)
	}
	checkFile(t, s2)
}

func TestCreateFillsBookkeeping(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	id := conformance.Approved(t, "1", "SE")
	id.Created, id.Updated = time.Time{}, time.Time{}
	before := time.Now()
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Created.Before(before) || got.Created.After(time.Now()) || !got.Updated.Equal(got.Created) {
		t.Errorf("Created %v, Updated %v; want both the time of Create", got.Created, got.Updated)
	}
	moved, err := s.Transition(ctx, id.ID, identity.Change{From: identity.Approved, To: identity.Obsoleted})
	if err != nil {
		t.Fatal(err)
	}
	if moved.Updated.Before(before) {
		t.Errorf("Transition without At set Updated to %v", moved.Updated)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	s, path := openTemp(t)
	start := time.Now()
	s2, err := Open(path)
	elapsed := time.Since(start)
	if err == nil {
		s2.Close(context.Background())
		t.Fatal("second Open of a store in use succeeded")
	}
	if !errors.Is(err, ErrInUse) || !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("error %v, want ErrInUse and ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "data directory is in use by another broker") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not say which file is in use by another broker", err)
	}
	if elapsed >= time.Second {
		t.Errorf("second Open took %v, want under a second", elapsed)
	}
	// The first store still works, and once closed the file can be opened.
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping of the first store: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s3.Close(context.Background())
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "identities.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s has mode %v, want at most %v", p, got, want)
		}
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	id := conformance.Approved(t, "1", "SE")
	if err := s.Create(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if err := s.Ping(ctx); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, id.ID); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Create(ctx, conformance.Approved(t, "2", "SE")); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Create after Close: %v, want ErrUnavailable", err)
	}
}

func TestRefusesOtherFormatVersion(t *testing.T) {
	s, path := openTemp(t)
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte{formatVersion + 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	s2, err := Open(path)
	if err == nil {
		s2.Close(context.Background())
		t.Fatal("Open accepted a file of another format version")
	}
	if !strings.Contains(err.Error(), "format version") {
		t.Errorf("error %q does not mention the format version", err)
	}
}

func TestGetByPublicKeyWrongSize(t *testing.T) {
	s, _ := openTemp(t)
	for _, key := range []ed25519.PublicKey{nil, make([]byte, 31), make([]byte, 64)} {
		if _, err := s.GetByPublicKey(context.Background(), key); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("GetByPublicKey with %d bytes: %v, want ErrInvalid", len(key), err)
		}
	}
}

func TestListRefusesBadQuery(t *testing.T) {
	s, _ := openTemp(t)
	for _, q := range []identity.Query{{Limit: -1}, {State: "approved"}, {State: "Pending"}} {
		if _, err := s.List(context.Background(), q); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("List(%+v): %v, want ErrInvalid", q, err)
		}
	}
}

// checkFile verifies bbolt's own invariants and that the four buckets
// agree: every record has exactly its index entries and every index entry
// names a record that needs it.
func checkFile(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		ids, keys, refs, countries := tx.Bucket(bucketIdentities), tx.Bucket(bucketKeys), tx.Bucket(bucketReferences), tx.Bucket(bucketCountries)
		wantRefs, wantCountries := 0, 0
		err := ids.ForEach(func(k, v []byte) error {
			id, err := decodeRecord(k, v)
			if err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if err := validate(id); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if got := keys.Get(id.PublicKey); string(got) != id.ID {
				return fmt.Errorf("key of %s maps to %q", id.ID, got)
			}
			if ref := referenceKey(id); ref != nil {
				wantRefs++
				if refs.Get(ref) == nil {
					return fmt.Errorf("reference of %s missing", id.ID)
				}
			}
			if ck := countryKey(id); ck != nil {
				wantCountries++
				if countries.Get(ck) == nil {
					return fmt.Errorf("countries entry of %s missing", id.ID)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n, m := ids.Stats().KeyN, keys.Stats().KeyN; n != m {
			return fmt.Errorf("%d identities but %d keys", n, m)
		}
		if n := refs.Stats().KeyN; n != wantRefs {
			return fmt.Errorf("%d references, want %d", n, wantRefs)
		}
		if n := countries.Stats().KeyN; n != wantCountries {
			return fmt.Errorf("%d countries entries, want %d", n, wantCountries)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const crashChildEnv = "BOLTSTORE_CRASH_CHILD_PATH"

// TestCrashSafety kills a process that is creating identities and checks
// that every identity whose Create had returned survived, in a consistent
// file. The child is this test binary re-executed with crashChildEnv set.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "identities.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	lines := bufio.NewScanner(out)
	killed := false
	for lines.Scan() {
		id, ok := strings.CutPrefix(lines.Text(), "created ")
		if !ok {
			continue
		}
		acked = append(acked, id)
		// Kill mid-run: the child is between two Creates, or inside one.
		if len(acked) == 150 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	waitErr := cmd.Wait()
	if !killed {
		t.Fatalf("child finished before it was killed after %d creates: %v", len(acked), waitErr)
	}
	var exit *exec.ExitError
	if !errors.As(waitErr, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", waitErr)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close(context.Background())
	for _, id := range acked {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Errorf("acknowledged identity %s lost: %v", id, err)
		}
	}
	checkFile(t, s)
	all, err := s.List(context.Background(), identity.Query{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d creates acknowledged before SIGKILL, %d in the file", len(acked), len(all))
	if len(all) < len(acked) {
		t.Errorf("file has %d identities, %d were acknowledged", len(all), len(acked))
	}
}

func crashChild(t *testing.T, path string) {
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Runs until killed; the bound only stops a child whose parent died.
	for i := range 1_000_000 {
		id := conformance.Approved(t, fmt.Sprint(i), "SE")
		if err := s.Create(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		// os.Stdout is unbuffered: once this returns the parent can read it.
		fmt.Fprintln(os.Stdout, "created", id.ID)
	}
}

// TestRebuildsOlderIndex: a file whose reference index has the first
// layout (no state in the key) and no countries bucket is rebuilt when
// opened, and its lookups work.
func TestRebuildsOlderIndex(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	approved := conformance.Approved(t, "19900101-1234", "SE")
	pending := conformance.Person(t, "19900101-1234", "SE")
	for _, id := range []identity.Identity{approved, pending} {
		if err := s.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Back to layout 1: prefix ‖ ID, and no index version.
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketReferences); err != nil {
			return err
		}
		refs, err := tx.CreateBucket(bucketReferences)
		if err != nil {
			return err
		}
		for _, id := range []identity.Identity{approved, pending} {
			p := referencePrefix("SE", "19900101-1234")
			if err := refs.Put(append(p[:], id.ID...), nil); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketCountries); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(metaIndex)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	found, err := s.FindValid(ctx, "19900101-1234", "SE", time.Now())
	if err != nil || len(found) != 1 || found[0].ID != approved.ID {
		t.Fatalf("FindValid after the rebuild: %v, %v", found, err)
	}
	all, err := s.FindPerson(ctx, "19900101-1234", "SE")
	if err != nil || len(all) != 2 {
		t.Fatalf("FindPerson after the rebuild: %v, %v", all, err)
	}
	if got, err := s.Countries(ctx); err != nil || !slices.Equal(got, []string{"SE"}) {
		t.Fatalf("Countries after the rebuild: %q, %v", got, err)
	}
	checkFile(t, s)
}

// BenchmarkFindValidAmongApplications: the MFA lookup of a person one of
// whose identity is approved and 6,000 applied for with the same PNR
// (anyone can apply): it reads the approved one only.
//
//	go test -run '^$' -bench AmongApplications ./identity/boltstore/
func BenchmarkFindValidAmongApplications(b *testing.B) {
	path := filepath.Join(b.TempDir(), "identities.db")
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	if err := s.Create(ctx, conformance.Approved(b, "19900101-1234", "SE")); err != nil {
		b.Fatal(err)
	}
	for range 6000 {
		if err := s.Create(ctx, conformance.Person(b, "19900101-1234", "SE")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if found, err := s.FindValid(ctx, "19900101-1234", "SE", time.Now()); err != nil || len(found) != 1 {
			b.Fatalf("%d found, %v", len(found), err)
		}
	}
}
