// Command mfa-broker runs the legal-identity MFA broker, and gives its
// operator commands to decide on identities while it runs.
//
//	mfa-broker [serve] [flags]
//	mfa-broker identity list|show|approve|reject|obsolete|compromise ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/legalmfa/mfa/bus"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/identity"
)

// runNATSConfig prints the authorization block an external nats-server
// needs so that it admits the broker and lets the broker's callout judge
// everyone else. It creates the broker key if there is none yet, so the
// configuration can be made before the broker first starts.
func runNATSConfig(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cfg config
	fs := flag.NewFlagSet("mfa-broker nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &cfg)
	keyFlags(fs, &cfg)
	if err := parseFlags(fs, args, getenv); err != nil {
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
	_, err = io.WriteString(stdout, creds.ServerAuthConfig())
	return err
}

const usage = `mfa-broker: the legal-identity MFA broker

Usage:
  mfa-broker [serve] [flags]          run the broker (flags: mfa-broker serve -h)
  mfa-broker identity list [--state S]
  mfa-broker identity show LEGALID
  mfa-broker identity approve LEGALID [--valid-for 8760h]
  mfa-broker identity reject|obsolete|compromise LEGALID [--from STATE]
  mfa-broker nats-config              print the nats-server configuration an
                                      external NATS server or cluster needs

Operator commands reach the running broker through the operator socket in
its data directory (--data-dir or MFA_DATA_DIR), which only the broker's
user can use. Every flag can also be set as MFA_<FLAG_NAME>.
`

func main() {
	gin.SetMode(gin.ReleaseMode)
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mfa-broker:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for usage errors, as flag does, and 1 otherwise.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "identity" || args[0] == "nats-config" || args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stderr, getenv)
	case "identity":
		return runIdentity(ctx, args, stdout, stderr, getenv)
	case "nats-config":
		return runNATSConfig(args, stdout, stderr, getenv)
	}
	fmt.Fprint(stdout, usage)
	return nil
}

func runServe(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	var cfg config
	fs := flag.NewFlagSet("mfa-broker serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverFlags(fs, &cfg)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
