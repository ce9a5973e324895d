package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
)

// runMainEnv makes the test binary run mfa-broker's main instead of the
// tests, so a test can watch the real process exit.
const runMainEnv = "MFA_BROKER_TEST_RUN_MAIN"

const errInUse = "is in use by another broker (pid"

// TestStartupFailures: whatever stops the broker from starting is one line
// naming the cause, and leaves nothing behind: no port held, no operator
// socket, no lock on the data directory.
func TestStartupFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup prepares the clash; an address it takes itself is in
		// taken, which the test does not expect to find free afterwards.
		setup func(t *testing.T, dataDir string, args map[string]string, taken func() string)
		want  string
	}{
		{"HTTP address in use", func(t *testing.T, _ string, args map[string]string, taken func() string) {
			args["--http-addr"] = taken()
		}, "HTTP address 127.0.0.1:"},
		{"NATS address in use", func(t *testing.T, _ string, args map[string]string, taken func() string) {
			args["--nats-listen"] = taken()
		}, "NATS address 127.0.0.1:"},
		{"data directory under a file", func(t *testing.T, dataDir string, args map[string]string, _ func() string) {
			if err := os.WriteFile(filepath.Join(filepath.Dir(dataDir), "file"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			args["--data-dir"] = filepath.Join(filepath.Dir(dataDir), "file", "data")
		}, "cannot create the data directory"},
		{"data directory not writable", func(t *testing.T, dataDir string, _ map[string]string, _ func() string) {
			if os.Geteuid() == 0 {
				t.Skip("root writes anywhere")
			}
			if err := os.MkdirAll(dataDir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dataDir, 0o700) })
		}, "is not writable"},
		{"a broker runs on the data directory", func(t *testing.T, dataDir string, _ map[string]string, _ func() string) {
			startBroker(t, func(c *config) { c.DataDir = dataDir })
		}, errInUse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			args := map[string]string{"--data-dir": dataDir, "--http-addr": freeAddr(t), "--nats-listen": freeAddr(t)}
			held := map[string]bool{}
			c.setup(t, dataDir, args, func() string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				held[ln.Addr().String()] = true
				return ln.Addr().String()
			})
			var flat []string
			for k, v := range args {
				flat = append(flat, k, v)
			}
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"serve", "--log-level", "warn"}, flat...), &bytes.Buffer{}, &stderr, func(string) string { return "" })
			if err == nil {
				t.Fatal("the broker started")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q", err, c.want)
			}
			if stderr.Len() > 0 {
				t.Errorf("logged before failing:\n%s", stderr.String())
			}
			// Nothing is left: the addresses the broker was given are free,
			// and no operator socket remains.
			for _, flag := range []string{"--http-addr", "--nats-listen"} {
				if held[args[flag]] {
					continue
				}
				ln, err := net.Listen("tcp", args[flag])
				if err != nil {
					t.Errorf("%s %s is still held: %v", flag, args[flag], err)
					continue
				}
				ln.Close()
			}
			if _, err := os.Stat(filepath.Join(args["--data-dir"], "admin.sock")); err == nil && c.want != errInUse {
				t.Error("the operator socket was left behind")
			}
		})
	}
}

// TestDataDirectoryReleased: a broker that failed to start, or stopped,
// leaves the data directory to the next one.
func TestDataDirectoryReleased(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"--data-dir", dataDir, "--http-addr", ln.Addr().String(), "--nats-listen", "127.0.0.1:0"},
		&bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil {
		t.Fatal("started on a taken port")
	}
	for range 2 {
		tb := startBroker(t, func(c *config) { c.DataDir = dataDir })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tb.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

// TestStartupFailureExits runs the real process: a start-up failure is one
// line on stderr, with no stack trace, and exit status 1.
func TestStartupFailureExits(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "--data-dir", filepath.Join(t.TempDir(), "data"), "--http-addr", ln.Addr().String(), "--nats-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "mfa-broker: HTTP address ") || strings.Contains(stderr.String(), "panic") {
		t.Fatalf("stderr is not one line naming the cause:\n%s", stderr.String())
	}
}

// freeAddr is a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := mongotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
