package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/legalmfa/mfa/api"

	"github.com/legalmfa/mfa/identity"
)

const statusHelp = `
Usage: mfa-device status [--broker URL]

Asks the broker about this device's identity (GET /Identities/{id}) and
prints its state and validity:

  LegalId:    <id>
  State:      Created | Approved | Rejected | Obsoleted | Compromised
  Valid from: <RFC 3339>          (once approved)
  Valid to:   <RFC 3339>          (once approved)
  Usable:     yes | no (<why>)
  Broker:     <domain> at <URL>
  Device:     <device ID, as in NATS subjects>

The broker is the one the device applied at, unless --broker names another.
`

func cmdStatus(ctx context.Context, e env, g globalFlags, args []string) error {
	c := newCommand(e, g, "status", statusHelp)
	// No environment fallback: device.json names the broker the identity
	// lives at, and a shell-wide MFA_BROKER_URL must not override that.
	brokerURL := c.Flags.String("broker", "", "broker base URL (default: the one in device.json)")
	c.NoEnv["broker"] = true
	if err := c.parse(args, e.getenv); err != nil {
		return err
	}
	cfg, key, err := c.g.loadDevice(e.getenv)
	if err != nil {
		return err
	}
	if *brokerURL == "" {
		*brokerURL = cfg.BrokerURL
	}
	client, err := newBrokerClient(*brokerURL, cfg.CAFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pub, err := client.identity(ctx, cfg.LegalID)
	if isNotFound(err) {
		return fmt.Errorf("the broker at %s does not know identity %s", client.base, cfg.LegalID)
	}
	if err != nil {
		return err
	}
	own := key.Public().(ed25519.PublicKey)
	if k, err := identity.ParsePublicKey(pub.PublicKey); err != nil || !bytes.Equal(k, own) {
		return fmt.Errorf("the broker holds another public key for %s than this device's: this directory's key does not belong to that identity", cfg.LegalID)
	}
	// Fixed columns, not a tabwriter, so the layout does not depend on
	// which lines are present: scripts may read "State: " lines.
	line := func(label, value string) { fmt.Fprintf(e.stdout, "%-12s%s\n", label+":", value) }
	line("LegalId", sanitizeLine(pub.ID))
	line("State", sanitizeLine(pub.State))
	if !pub.ValidFrom.IsZero() {
		line("Valid from", pub.ValidFrom.UTC().Format(time.RFC3339))
	}
	if !pub.ValidTo.IsZero() {
		line("Valid to", pub.ValidTo.UTC().Format(time.RFC3339))
	}
	line("Usable", usable(pub, time.Now()))
	line("Broker", sanitizeLine(cfg.Domain)+" at "+client.base)
	line("Device", identity.DeviceIDOf(own))
	return nil
}

// usable says whether requests can reach the identity now, and if not why.
func usable(pub api.PublicIdentity, now time.Time) string {
	switch {
	case pub.State == string(identity.Created):
		return "no (waiting for an operator to approve it)"
	case pub.State != string(identity.Approved):
		return fmt.Sprintf("no (%s)", sanitizeLine(pub.State))
	case now.Before(pub.ValidFrom):
		return "no (not valid yet)"
	case !pub.ValidTo.IsZero() && now.After(pub.ValidTo):
		return "no (expired)"
	}
	return "yes"
}
