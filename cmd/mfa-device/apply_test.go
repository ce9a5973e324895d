package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/internal/syncbuf"
)

func TestInitCreatesKeyAndRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	env := map[string]string{"MFA_DEVICE_DIR": dir}
	r := runCmd(t, env, "", "init")
	if r.err != nil {
		t.Fatal(r.err)
	}
	pub, err := identity.ParsePublicKey(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("init printed %q, not a public key: %v", r.stdout, err)
	}
	key, err := identity.ReadKeyFile(filepath.Join(dir, keyFileName))
	if err != nil || !bytes.Equal(key.Public().(ed25519.PublicKey), pub) {
		t.Fatalf("device.key does not hold the printed key: %v", err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, keyFileName): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, keyFileName))
	r = runCmd(t, env, "", "init")
	if r.err == nil || !errors.Is(r.err, errKeyExists) || !strings.Contains(r.err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v, want a refusal", r.err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, keyFileName))
	if string(before) != string(after) {
		t.Fatal("the key was replaced")
	}
}

func TestDirResolution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		g    globalFlags
		env  map[string]string
		want string
	}{
		{"flag wins", globalFlags{dir: "/flag", dirSet: true}, map[string]string{"MFA_DEVICE_DIR": "/env", "HOME": "/home/a"}, "/flag"},
		{"env next", globalFlags{}, map[string]string{"MFA_DEVICE_DIR": "/env", "HOME": "/home/a"}, "/env"},
		{"home last", globalFlags{}, map[string]string{"HOME": "/home/a"}, "/home/a/.mfa-device"},
	}
	for _, tt := range tests {
		d, err := tt.g.resolveDir(envOf(tt.env))
		if err != nil || d.path != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, d.path, err, tt.want)
		}
	}
	if _, err := (globalFlags{}).resolveDir(envOf(nil)); err == nil {
		t.Error("no HOME and no dir: want an error")
	}
}

func TestGlobalDirFlagBeforeOrAfterCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--dir", "D", "init"}, {"init", "--dir", "D"}} {
		dir := filepath.Join(t.TempDir(), "dev")
		for i := range args {
			if args[i] == "D" {
				args[i] = dir
			}
		}
		if r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": filepath.Join(t.TempDir(), "wrong")}, "", args...); r.err != nil {
			t.Fatal(r.err)
		}
		if _, err := os.Stat(filepath.Join(dir, keyFileName)); err != nil {
			t.Errorf("%v: no key in the --dir directory: %v", args, err)
		}
	}
}

// Mistakes in the properties are reported before the broker is asked.
func TestApplyValidatesBeforeAnyNetworkCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	const pnr = "19791231-1234"
	tests := []struct {
		name  string
		props []string
		want  string
	}{
		{"none", nil, "give the identity's properties"},
		{"not name=value", []string{pnr}, "--property number 1 is not NAME=VALUE"},
		{"lower-case name", []string{"first=Alice"}, "only A-Z"},
		{"PNR without COUNTRY", []string{"FIRST=Alice", "PNR=" + pnr}, "PNR and COUNTRY go together"},
		{"bad country", []string{"PNR=" + pnr, "COUNTRY=XX"}, "ISO 3166-1"},
		{"duplicate", []string{"FIRST=A", "FIRST=B"}, "more than once"},
		{"empty value", []string{"FIRST="}, "empty value"},
		{"control character", []string{"FIRST=A\x1b[2J"}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"apply", "--broker", srv.URL}
			for _, p := range tt.props {
				args = append(args, "--property", p)
			}
			dir := filepath.Join(t.TempDir(), "dev")
			r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": dir}, "", args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", r.err, tt.want)
			}
			if strings.Contains(r.err.Error()+r.stdout+r.stderr, pnr) {
				t.Errorf("the PNR was echoed: %v", r.err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused application left %s behind", dir)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the broker was called %d times", n)
	}
}

func TestApplyReportsBrokerErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"Code":"store-unavailable","Message":"The identity store is unavailable\u001b[2J."}`))
	}))
	t.Cleanup(srv.Close)
	r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": filepath.Join(t.TempDir(), "dev")}, "",
		"apply", "--broker", srv.URL, "--property", "FIRST=Alice")
	if r.err == nil || !strings.Contains(r.err.Error(), "503 store-unavailable: The identity store is unavailable␛[2J.") {
		t.Fatalf("err = %v", r.err)
	}
	if r.stdout != "" {
		t.Fatalf("stdout %q: a failed apply prints no LegalId", r.stdout)
	}
}

func TestApplyRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--broker", "localhost:8080"},
		{"--broker", "ftp://x"},
		{"--nats-url", "http://x:4222"},
	} {
		r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": filepath.Join(t.TempDir(), "dev")}, "",
			append(append([]string{"apply"}, args...), "--property", "FIRST=A")...)
		if r.err == nil || cli.ExitCode(r.err) != 2 {
			t.Errorf("%v: err %v, want a usage error", args, r.err)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if r := runCmd(t, nil, ""); r.err == nil || cli.ExitCode(r.err) != 2 || !strings.Contains(r.stderr, "Commands:") {
		t.Errorf("no command: %v, stderr %q", r.err, r.stderr)
	}
	if r := runCmd(t, nil, "", "frobnicate"); r.err == nil || cli.ExitCode(r.err) != 2 {
		t.Errorf("unknown command: %v", r.err)
	}
	if r := runCmd(t, nil, "", "help"); r.err != nil || !strings.Contains(r.stdout, "listen") {
		t.Errorf("help: %v, %q", r.err, r.stdout)
	}
	r := runCmd(t, nil, "", "listen", "-h")
	if cli.ExitCode(r.err) != 0 || !strings.Contains(r.stdout, `prompt <RequestId> from verified <LegalId> "<Name>"`) || !strings.Contains(r.stdout, "--auto-delay") {
		t.Errorf("listen -h does not document the --auto lines: %v\n%s", r.err, r.stdout)
	}
	// Help is asked for: it goes to stdout, with status 0, and spells
	// every flag --name.
	for _, args := range [][]string{{"-h"}, {"--help"}, {"sign", "-h"}, {"apply", "--help"}} {
		r := runCmd(t, nil, "", args...)
		if cli.ExitCode(r.err) != 0 || r.stdout == "" || regexp.MustCompile(`(?m)^\s+-[a-z]`).MatchString(r.stdout) {
			t.Errorf("%v: status %d, help:\n%s", args, cli.ExitCode(r.err), r.stdout)
		}
	}
	if r := runCmd(t, nil, "", "version"); r.err != nil || !strings.HasPrefix(r.stdout, "mfa-device ") {
		t.Errorf("version: %v %q", r.err, r.stdout)
	}
	if r := runCmd(t, nil, "", "listen", "--auto", "maybe"); r.err == nil || cli.ExitCode(r.err) != 2 {
		t.Errorf("--auto maybe: %v", r.err)
	}
	// Answering blindly is never switched on by the environment.
	r = runCmd(t, map[string]string{"MFA_DEVICE_AUTO": "maybe", "MFA_DEVICE_DIR": t.TempDir()}, "", "listen")
	if r.err == nil || strings.Contains(r.err.Error(), "--auto") || !errors.Is(r.err, errNotApplied) {
		t.Errorf("MFA_DEVICE_AUTO was read: %v", r.err)
	}
}

func TestEnvironmentFillsFlags(t *testing.T) {
	t.Parallel()
	var got string
	c := newCommand(env{stderr: &syncbuf.Buffer{}}, globalFlags{}, "x", "")
	c.Flags.StringVar(&got, "broker", "", "")
	c.Flags.String("auto-delay", "", "")
	c.MoreEnv["broker"] = []string{"MFA_BROKER_URL"}
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"MFA_BROKER_URL": "http://b"}, nil, "http://b"},
		{map[string]string{"MFA_BROKER_URL": "http://b", "MFA_DEVICE_BROKER": "http://d"}, nil, "http://d"},
		{map[string]string{"MFA_DEVICE_BROKER": "http://d"}, []string{"--broker", "http://f"}, "http://f"},
	}
	for _, tt := range tests {
		got = ""
		if err := c.parse(tt.args, envOf(tt.env)); err != nil || got != tt.want {
			t.Errorf("env %v args %v: %q, %v; want %q", tt.env, tt.args, got, err, tt.want)
		}
	}
	if c.EnvName("auto-delay") != "MFA_DEVICE_AUTO_DELAY" {
		t.Errorf("EnvName(auto-delay) = %s", c.EnvName("auto-delay"))
	}
}
