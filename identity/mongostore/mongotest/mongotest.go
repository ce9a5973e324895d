// Package mongotest gives tests a real MongoDB wire-protocol server.
//
// With MFA_TEST_MONGODB_URI set (a real mongod or replica set), Start hands
// out fresh databases on that server. Otherwise it builds FerretDB v1.24.2
// with its SQLite backend from the Go module proxy, once per machine (the
// binary is cached, see Binary), and starts one FerretDB process shared by
// the whole test binary, in a temporary directory, on a free loopback port.
// StartPrivate starts a FerretDB process of a test's own, which the test may
// stop, kill and restart.
//
// The FerretDB command lives in the module in the ferretdb subdirectory, so
// that FerretDB never enters the product's go.mod.
//
// When no server can be had, Start and StartPrivate skip the test with the
// reason, except under CI=true, where they fail it: in CI a missing MongoDB
// is a failure, never a silent skip.
//
// Use it from TestMain so the shared server is stopped when the tests end:
//
//	func TestMain(m *testing.M) { mongotest.Main(m) }
//
// Without Main the server still ends with the test binary: it exits when
// its standard input, a pipe from the test binary, closes.
package mongotest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/legalmfa/mfa/internal/syncbuf"
)

// EnvURI names the environment variable with the URI of a real MongoDB
// server to test against instead of FerretDB.
const EnvURI = "MFA_TEST_MONGODB_URI"

// Main runs the tests and then stops the shared FerretDB server, if one was
// started. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

var shared struct {
	once sync.Once
	srv  *Server
	dir  string
	err  error
}

func stopShared() {
	if shared.srv != nil {
		shared.srv.Stop()
		os.RemoveAll(shared.dir)
	}
}

// Start returns the URI of a fresh, empty database of the test's own, and
// drops the database when the test ends. The URI names the database in its
// path, as mongostore.Open expects.
func Start(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURI)
	if base == "" {
		shared.once.Do(func() {
			var bin string
			bin, shared.err = Binary()
			if shared.err == nil {
				shared.dir, shared.err = os.MkdirTemp("", "mfa-ferretdb-shared-")
				if shared.err != nil {
					return
				}
				shared.srv, shared.err = startServer(bin, shared.dir, "127.0.0.1:0")
			}
		})
		if shared.err != nil {
			unavailable(t, fmt.Errorf("no MongoDB for tests: %s is not set and FerretDB could not be started: %w", EnvURI, shared.err))
		}
		base = shared.srv.baseURI()
	}
	uri, err := withDatabase(base, newDatabaseName())
	if err != nil {
		t.Fatalf("mongotest: %s: %v", EnvURI, err)
	}
	t.Cleanup(func() { dropDatabase(t, uri) })
	return uri
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("mongotest: %v (CI=true: a missing MongoDB is a failure)", err)
	} else {
		t.Skipf("mongotest: %v", err)
	}
}

func newDatabaseName() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	// FerretDB allows [a-zA-Z0-9_-]{1,63}; MongoDB is more lenient.
	return "mfatest_" + hex.EncodeToString(b[:])
}

// withDatabase puts the database name into the URI's path, keeping its
// host list and options.
func withDatabase(base, db string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("not a URI: %w", err)
	}
	if u.Scheme != "mongodb" && u.Scheme != "mongodb+srv" {
		return "", fmt.Errorf("scheme %q, want mongodb or mongodb+srv", u.Scheme)
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

// dropDatabase removes a test's database, so a long-lived real server does
// not collect them. Failures are only logged: the test is over.
func dropDatabase(t testing.TB, uri string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, _ := url.Parse(uri)
	db := strings.TrimPrefix(u.Path, "/")
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		t.Logf("mongotest: drop %s: %v", db, err)
		return
	}
	defer c.Disconnect(ctx)
	if err := c.Database(db).Drop(ctx); err != nil {
		t.Logf("mongotest: drop %s: %v", db, err)
	}
}

// Server is a FerretDB process started by this package.
type Server struct {
	bin, dir, addr string
	mu             sync.Mutex
	cmd            *exec.Cmd
	stdin          io.Closer
	exited         chan struct{}
}

// StartPrivate starts a FerretDB process for the calling test alone, with
// its data in a directory of the test's own, and stops it when the test
// ends. It is FerretDB even when MFA_TEST_MONGODB_URI is set, since tests use
// it to stop and kill the server.
func StartPrivate(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		unavailable(t, fmt.Errorf("FerretDB could not be built: %w", err))
	}
	s, err := startServer(bin, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		unavailable(t, fmt.Errorf("FerretDB could not be started: %w", err))
	}
	t.Cleanup(s.Stop)
	return s
}

// URI returns the URI of a database named db on the server.
func (s *Server) URI(db string) string {
	uri, err := withDatabase(s.baseURI(), db)
	if err != nil {
		panic(err)
	}
	return uri
}

func (s *Server) baseURI() string { return "mongodb://" + s.addr + "/" }

// Addr returns the server's host:port; it stays the same across restarts.
func (s *Server) Addr() string { return s.addr }

// Stop stops the server with SIGTERM, as an operator would, and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.stdin.Close()
	s.cmd = nil
}

// Restart starts the server again on the same address with the same data.
// It retries for a while if the port is not free yet.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("mongotest: Restart of a running server")
	}
	var err error
	for range 50 {
		if err = s.run(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func startServer(bin, dir, listen string) (*Server, error) {
	s := &Server{bin: bin, dir: dir, addr: listen}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the process and waits for its ready line. s.mu is held or s
// is not shared yet.
func (s *Server) run() error {
	cmd := exec.Command(s.bin, "-listen", s.addr, "-dir", s.dir, "-watch-stdin")
	// The process watches its standard input: when this process dies,
	// however it dies, the pipe closes and FerretDB exits with it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// The start of the log, where a failure to start is explained; a
	// long run is not kept.
	stderr := syncbuf.Buffer{Limit: 64 << 10}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), "ferretdb ready "); ok {
				ready <- uri
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case uri := <-ready:
		u, err := url.Parse(uri)
		if err != nil {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("ferretdb printed %q: %w", uri, err)
		}
		s.addr = u.Host
		s.cmd, s.stdin, s.exited = cmd, stdin, exited
		return nil
	case <-exited:
		return fmt.Errorf("ferretdb exited before it was ready: %s", strings.TrimSpace(stderr.String()))
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("ferretdb not ready after 60s: %s", strings.TrimSpace(stderr.String()))
	}
}

// FreePort is a helper for tests that need an address where nothing listens.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
