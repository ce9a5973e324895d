package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestDeployNATSConfigLoads checks that the example deployment's NATS
// configuration, with the authorization block nats-config writes, is one
// nats-server accepts, with the callout in force.
func TestDeployNATSConfigLoads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var auth bytes.Buffer
	if err := run(context.Background(), []string{"nats-config", "--data-dir", filepath.Join(dir, "data")}, &auth, &auth, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	// As in the compose file: the secrets volume beside nats.conf.
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "nats-auth.conf"), auth.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(conf), "store_dir: /data", "store_dir: "+filepath.Join(dir, "js"), 1)
	confFile := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(confFile)
	if err != nil {
		t.Fatalf("deploy/nats.conf does not load: %v", err)
	}
	if opts.AuthCallout == nil || len(opts.AuthCallout.AuthUsers) != 1 || len(opts.Nkeys) != 1 || !opts.JetStream || opts.Cluster.Name != "mfa" {
		t.Fatalf("loaded without the callout, the broker user, JetStream or the cluster: %+v", opts)
	}
}
