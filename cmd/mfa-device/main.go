// Command mfa-device is the device app of the legal-identity MFA broker: it
// holds an identity key, applies for a legal identity, and shows the MFA
// requests pushed to it so that its holder can approve or deny them. It can
// also sign MFA requests for a requester identity.
//
//	mfa-device [--dir DIR] init|apply|status|listen|sign [flags]
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

	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/version"
)

const usage = `mfa-device: the device app of the legal-identity MFA broker

Usage:
  mfa-device [--dir DIR] COMMAND [flags]

Commands:
  init     create this device's identity key and print its public key
  apply    apply for a legal identity at a broker; prints only the new LegalId
  status   show the identity's state and validity as the broker sees it
  listen   show MFA requests as they arrive and answer them (or --auto)
  sign     sign an MFA request as a requester identity
  version  print the version

Run 'mfa-device COMMAND -h' for a command's flags.

The device directory (--dir, or MFA_DEVICE_DIR; default $HOME/.mfa-device)
holds device.key, the identity's private key, and device.json, what the
device learnt when it applied. One directory is one identity.

Every flag can also be set as MFA_DEVICE_<FLAG>, upper case with dashes as
underscores (--auto-delay is MFA_DEVICE_AUTO_DELAY); --broker also reads
MFA_BROKER_URL (so MFA_BROKER_URL=http://localhost:9090 points every
command at a broker on another port). A flag on the command line wins over
the environment.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mfa-device:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}

// env is what every command gets from the process: its streams and
// environment, passed in so that tests run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// run is the whole program; main adds only the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	// Global flags may come before the command; each command accepts them too.
	var g globalFlags
	fs := flag.NewFlagSet("mfa-device", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return err
		}
		return cli.Usagef("%v (see 'mfa-device -h')", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.Usagef("give a command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "init":
		return cmdInit(ctx, e, g, rest)
	case "apply":
		return cmdApply(ctx, e, g, rest)
	case "status":
		return cmdStatus(ctx, e, g, rest)
	case "listen":
		return cmdListen(ctx, e, g, rest)
	case "sign":
		return cmdSign(ctx, e, g, rest)
	case "version":
		fmt.Fprintln(stdout, "mfa-device", version.String())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return cli.Usagef("unknown command %q; the commands are init, apply, status, listen, sign and version", cmd)
}
