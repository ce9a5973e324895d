package mongotest

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"mongodb://127.0.0.1:1234/", "mongodb://127.0.0.1:1234/db1"},
		{"mongodb://127.0.0.1:1234", "mongodb://127.0.0.1:1234/db1"},
		{"mongodb://u:p@h1,h2/other?replicaSet=rs0&w=majority", "mongodb://u:p@h1,h2/db1?replicaSet=rs0&w=majority"},
	} {
		got, err := withDatabase(tc.base, "db1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
	if _, err := withDatabase("http://x/", "db1"); err == nil {
		t.Error("withDatabase accepted an http URI")
	}
}

// recorder stands in for a test, to see whether unavailable skips or fails.
type recorder struct {
	testing.TB
	fatal, skip bool
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatalf(string, ...any)     { r.fatal = true }
func (r *recorder) Skipf(string, ...any)      { r.skip = true }
func (r *recorder) Logf(string, ...any)       {}
func (r *recorder) Errorf(f string, a ...any) { r.fatal = true }

func TestMissingServerFailsInCI(t *testing.T) {
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		unavailable(r, errors.New("no server"))
		if ci == "true" && (!r.fatal || r.skip) {
			t.Errorf("CI=true: fatal %v skip %v, want a failure", r.fatal, r.skip)
		}
		if ci == "" && (r.fatal || !r.skip) {
			t.Errorf("CI unset: fatal %v skip %v, want a skip", r.fatal, r.skip)
		}
	}
}

func TestStartGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	var first string
	t.Run("first", func(t *testing.T) {
		first = Start(t)
		c := connect(t, first)
		db := c.Database(strings.TrimPrefix(first[strings.LastIndex(first, "/"):], "/"))
		if _, err := db.Collection("x").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
			t.Fatal(err)
		}
	})
	second := Start(t)
	if second == first {
		t.Fatalf("Start gave %s twice", first)
	}
	c := connect(t, second)
	names, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	firstDB := first[strings.LastIndex(first, "/")+1:]
	if slices.Contains(names, firstDB) {
		t.Errorf("database %s of a finished test was not dropped: %v", firstDB, names)
	}
}

// TestPrivateServerLifeCycle stops, restarts and kills a private server:
// it comes back on the same address with its data.
func TestPrivateServerLifeCycle(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	srv := StartPrivate(t)
	t.Logf("cached FerretDB started in %v", time.Since(start).Round(time.Millisecond))
	addr := srv.Addr()
	c := connect(t, srv.URI("life"))
	coll := c.Database("life").Collection("x")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []struct {
		name string
		fn   func()
	}{{"Stop", srv.Stop}, {"Kill", srv.Kill}} {
		stop.fn()
		stop.fn() // stopping a stopped server does nothing
		if err := c.Ping(ctx, nil); err == nil {
			t.Fatalf("ping after %s succeeded", stop.name)
		}
		if err := srv.Restart(); err != nil {
			t.Fatalf("Restart after %s: %v", stop.name, err)
		}
		if srv.Addr() != addr {
			t.Errorf("address after %s and Restart %s, want %s", stop.name, srv.Addr(), addr)
		}
		if err := srv.Restart(); err == nil {
			t.Error("Restart of a running server succeeded")
		}
		n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: "kept"}})
		if err != nil || n != 1 {
			t.Errorf("after %s and Restart: %d documents, %v; want the one inserted", stop.name, n, err)
		}
	}
	t.Logf("cached FerretDB: start, insert, two restarts in %v", time.Since(start).Round(time.Millisecond))
}

func TestBinaryIsCached(t *testing.T) {
	if os.Getenv(EnvURI) != "" {
		t.Skip("uses " + EnvURI)
	}
	bin, err := Binary()
	if err != nil {
		unavailable(t, err)
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("FerretDB binary %s: %v %v", bin, fi, err)
	}
	if !strings.Contains(bin, "ferretdb-"+FerretDBVersion+"-") {
		t.Errorf("binary %s is not named after the version and module hash", bin)
	}
	// A second build, as by another test binary, finds it.
	path, err := build()
	if err != nil || path != bin {
		t.Errorf("build() again: %s, %v; want the cached %s", path, err, bin)
	}
}
