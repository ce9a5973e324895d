// Command mfa-broker runs the legal-identity MFA broker, and gives its
// operator commands to decide on identities and blocks while it runs.
//
//	mfa-broker [serve] [flags]
//	mfa-broker identity list|show|approve|reject|obsolete|compromise ...
//	mfa-broker block list|remove ...
//	mfa-broker peer add|list|approve|share|unshare|withdraw|remove ...
//	mfa-broker audit verify|tail ...
//	mfa-broker nats-config | version | help
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/version"
)

const usage = `mfa-broker: the legal-identity MFA broker

Usage:
  mfa-broker [serve] [flags]         run the broker (flags: mfa-broker serve -h)
  mfa-broker identity COMMAND ...    list, show and decide on identities
                                     (mfa-broker identity -h)
  mfa-broker block COMMAND ...       list and lift "not me" blocks
                                     (mfa-broker block -h)
  mfa-broker peer COMMAND ...        federate with other brokers
                                     (mfa-broker peer -h)
  mfa-broker audit COMMAND ...       verify and follow the audit trail of
                                     decisions (mfa-broker audit -h)
  mfa-broker nats-config             print the nats-server configuration an
                                     external NATS server or cluster needs
  mfa-broker version                 print the version

Operator commands reach the running broker through the operator socket in
its data directory (--data-dir or MFA_DATA_DIR), which only the broker's
user can use. Every flag can also be set as MFA_<FLAG_NAME>, upper case with
dashes as underscores (--max-timeout is MFA_MAX_TIMEOUT); a flag on the
command line wins.
`

func main() {
	gin.SetMode(gin.ReleaseMode)
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mfa-broker:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}

// env is what a command gets from the process: its streams and
// environment, passed in so that tests run commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	e := env{stdout: stdout, stderr: stderr, getenv: getenv}
	// Flags first, or nothing: the server.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return runServe(ctx, e, args)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, e, rest)
	case "identity":
		return runIdentity(ctx, e, rest)
	case "block":
		return runBlock(ctx, e, rest)
	case "peer":
		return runPeer(ctx, e, rest)
	case "audit":
		return runAudit(ctx, e, rest)
	case "nats-config":
		return runNATSConfig(e, rest)
	case "version":
		fmt.Fprintln(stdout, "mfa-broker", version.String())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		if isHelp(cmd) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return cli.Usagef("unknown command %q; the commands are serve, identity, block, peer, audit, nats-config and version (mfa-broker help)", cmd)
	}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

const serveHelp = `
Usage: mfa-broker [serve] [flags]

Runs the broker: HTTP (the MFA resource, the test form, the identity
endpoints), an embedded NATS server for devices unless --nats-url names an
external one, and the operator socket in the data directory. With no flags
it needs nothing else: the identity store and keys live in ./mfa-data.
On SIGINT or SIGTERM it answers pending requests 503 shutting-down,
withdraws their prompts, and exits.
`

func runServe(ctx context.Context, e env, args []string) error {
	var cfg config
	c := cli.New("mfa-broker serve", serveHelp, envPrefix, e.stdout)
	serverFlags(c, &cfg)
	if _, err := c.Parse(args, e.getenv); err != nil {
		return err
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	log, err := newLogger(e.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	s, err := service.Start(ctx, cfg.Config, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.Done():
		log.Error("a listener failed", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

const natsConfigHelp = `
Usage: mfa-broker nats-config [--data-dir DIR] [--broker-key-file FILE]
                              [--federation-listen HOST:PORT]

Prints the authorization block an external nats-server needs so that it
admits the broker and lets the broker's callout judge every other client.
It creates the broker key if there is none yet, so the configuration can be
made before the broker first starts.

With --federation-listen, it also prints what the servers need for the
broker to federate: the leaf-node listener peers link to, the JetStream
domain, and an account for each approved peer with the links this broker
makes, as the running broker knows them (through its operator socket).
Print it anew and reload the servers after approving, withdrawing or
removing a peer; run the broker with --federation-url naming the leaf-node
listener as peers reach it.
`

func runNATSConfig(e env, args []string) error {
	var cfg config
	c := cli.New("mfa-broker nats-config", natsConfigHelp, envPrefix, e.stdout)
	dataDirFlags(c, &cfg)
	keyFlags(c, &cfg)
	var leafListen string
	c.Flags.StringVar(&leafListen, "federation-listen", "", "address where the NATS servers listen for federated peers' leaf-node links, e.g. 0.0.0.0:7422")
	if _, err := c.Parse(args, e.getenv); err != nil {
		return err
	}
	cfg.Defaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	key, err := identity.LoadOrCreateKeyFile(cfg.BrokerKeyFile)
	if err != nil {
		return fmt.Errorf("broker key: %w", err)
	}
	creds, err := bus.NewBrokerCredentials(key)
	if err != nil {
		return err
	}
	if _, err = io.WriteString(e.stdout, creds.ServerAuthConfig()); err != nil || leafListen == "" {
		return err
	}
	peers, err := approvedPeers(cfg)
	if err != nil {
		return err
	}
	fed, err := creds.ServerFederationConfig(api.PeerID(key.Public().(ed25519.PublicKey)), leafListen, peers)
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, fed)
	return err
}

// approvedPeers are the peers the running broker's operator approved; none
// when no broker runs on the data directory yet (the first configuration,
// made before it starts).
func approvedPeers(cfg config) ([]bus.Peer, error) {
	if _, err := os.Stat(cfg.AdminSocket); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), operatorTimeout)
	defer cancel()
	all, err := operator.New(cfg.AdminSocket).Peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("the running broker's peers: %w", err)
	}
	var peers []bus.Peer
	for _, p := range all {
		if p.Approved {
			peers = append(peers, bus.Peer{ID: p.ID, Key: p.PublicKey, LeafURL: p.LeafURL})
		}
	}
	return peers, nil
}
