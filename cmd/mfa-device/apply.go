package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/internal/cli"

	"github.com/legalmfa/mfa/identity"
)

const initHelp = `
Usage: mfa-device init [--dir DIR]

Creates the device's Ed25519 identity key (device.key, PKCS#8 PEM, mode
0600) and prints its public key in base64 on stdout. It never replaces an
existing key: an identity cannot be recovered without its key. 'apply'
runs init by itself when there is no key yet.
`

func cmdInit(_ context.Context, e env, g globalFlags, args []string) error {
	c := newCommand(e, g, "init", initHelp)
	if err := c.parse(args, e.getenv); err != nil {
		return err
	}
	dir, err := c.g.resolveDir(e.getenv)
	if err != nil {
		return err
	}
	key, err := dir.createKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(e.stderr, "created %s (device %s)\n", dir.keyPath(), identity.DeviceIDOf(pub))
	fmt.Fprintln(e.stdout, identity.EncodePublicKey(pub))
	return nil
}

const applyHelp = `
Usage: mfa-device apply [--broker URL] --property NAME=VALUE ... [--nats-url URL]

Applies for a legal identity: fetches the broker's domain, key and NATS URL
(GET /Broker), signs an application with the device key (creating the key
first if there is none), posts it (POST /Identities) and saves device.json.

Prints only the new LegalId on stdout, so that scripts can write
  ID=$(mfa-device apply --property FIRST=Alice ...)
Notes for people go to stderr. The identity starts out Created: an operator
must approve it before requests reach the device ('mfa-device status').

Properties are NAME=VALUE with NAME in upper case (FIRST, MIDDLE, LAST,
PNR, COUNTRY, ORGNAME, EMAIL, ...); PNR and COUNTRY go together, COUNTRY
is an ISO 3166-1 alpha-2 code. They are checked before anything is sent.
A requester identity (a relying party that signs its requests) applies the
same way, e.g. with --property ORGNAME=Example Bank.

One device directory holds one identity; apply refuses to run twice.
`

func cmdApply(ctx context.Context, e env, g globalFlags, args []string) error {
	c := newCommand(e, g, "apply", applyHelp)
	var props propertiesFlag
	c.Flags.Var(&props, "property", "identity property NAME=VALUE; repeat for each property")
	c.NoEnv["property"] = true
	brokerURL := c.Flags.String("broker", "", "broker base URL (env MFA_DEVICE_BROKER or MFA_BROKER_URL; default "+defaultBrokerURL+")")
	c.MoreEnv["broker"] = []string{"MFA_BROKER_URL"}
	natsURL := c.Flags.String("nats-url", "", "NATS URL to save instead of the one the broker advertises")
	caFile := c.Flags.String("ca", "", "PEM file of the CA the broker's HTTPS and NATS TLS certificates chain to, when not a public one; saved for later commands")
	if err := c.parse(args, e.getenv); err != nil {
		return err
	}
	if err := props.check(); err != nil {
		return err
	}
	// Everything that can be checked here is checked before any network
	// call, so mistakes get a clear answer and nothing half-done.
	if len(props.props) == 0 {
		return cli.Usagef("apply: give the identity's properties with --property NAME=VALUE, e.g. --property FIRST=Alice --property LAST=Smith --property PNR=... --property COUNTRY=SE")
	}
	if err := identity.ValidateProperties(props.props); err != nil {
		return cli.Usagef("apply: %v", err)
	}
	if *natsURL != "" {
		if err := checkNATSURL(*natsURL); err != nil {
			return err
		}
	}
	if *brokerURL == "" {
		*brokerURL = defaultBrokerURL
	}
	if *caFile != "" {
		abs, err := filepath.Abs(*caFile)
		if err != nil {
			return err
		}
		*caFile = abs
	}
	client, err := newBrokerClient(*brokerURL, *caFile)
	if err != nil {
		return err
	}
	dir, err := c.g.resolveDir(e.getenv)
	if err != nil {
		return err
	}
	if prev, err := dir.loadConfig(); err == nil {
		return fmt.Errorf("this device already applied for %s at %s: a device directory holds one identity, so use another --dir for a new one", prev.LegalID, prev.BrokerURL)
	}
	key, err := applyKey(dir, e)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := client.info(ctx)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	brokerKey, err := identity.ParsePublicKey(info.PublicKey)
	if err != nil {
		return fmt.Errorf("apply: the broker's public key: %w", err)
	}
	if info.Domain == "" {
		return fmt.Errorf("apply: the broker at %s did not say its domain", client.base)
	}
	app := identity.NewApplication(info.Domain, props.props, key)
	resp, err := client.apply(ctx, api.ApplicationRequest{
		Properties: app.Properties,
		PublicKey:  identity.EncodePublicKey(app.PublicKey),
		Proof:      base64.StdEncoding.EncodeToString(app.Proof),
	})
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := checkApplication(resp, info, app.PublicKey); err != nil {
		return fmt.Errorf("apply: %w", err)
	}

	cfg := deviceConfig{
		BrokerURL: client.base, NATSURL: info.NATSURL, Domain: info.Domain,
		BrokerPublicKey: identity.EncodePublicKey(brokerKey), MaxTimeout: info.MaxTimeout,
		LegalID: resp.Identity.ID, AppliedAt: time.Now().UTC(), CAFile: *caFile,
	}
	if *natsURL != "" {
		cfg.NATSURL = *natsURL
	}
	if err := dir.saveConfig(cfg); err != nil {
		return fmt.Errorf("the broker created identity %s, but %w", resp.Identity.ID, err)
	}
	fmt.Fprintf(e.stderr, "applied for %s at %s; it is %s until an operator approves it (check with 'mfa-device status')\n",
		resp.Identity.ID, info.Domain, resp.Identity.State)
	fmt.Fprintln(e.stdout, resp.Identity.ID)
	return nil
}

// applyKey loads the device key, creating it first when there is none.
func applyKey(dir deviceDir, e env) (ed25519.PrivateKey, error) {
	ok, err := dir.hasKey()
	if err != nil {
		return nil, err
	}
	if ok {
		return dir.loadKey()
	}
	key, err := dir.createKey()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "created %s\n", dir.keyPath())
	return key, nil
}

// checkApplication makes sure the broker created the identity this device
// asked for, so device.json never names an identity bound to another key.
func checkApplication(resp api.ApplicationResponse, info api.BrokerInfo, pub ed25519.PublicKey) error {
	got, err := identity.ParsePublicKey(resp.Identity.PublicKey)
	if err != nil {
		return fmt.Errorf("the answer's public key: %w", err)
	}
	if !bytes.Equal(got, pub) {
		return fmt.Errorf("the broker answered with identity %s, which has another public key than this device", resp.Identity.ID)
	}
	if err := identity.ValidateID(resp.Identity.ID); err != nil {
		return fmt.Errorf("the broker answered with a malformed LegalId: %w", err)
	}
	if !strings.HasSuffix(resp.Identity.ID, "@legal."+info.Domain) {
		return fmt.Errorf("the broker answered with identity %s, which is not on its domain %s", resp.Identity.ID, info.Domain)
	}
	return nil
}

// checkNATSURL accepts the URL forms nats.go connects to.
func checkNATSURL(raw string) error {
	for _, one := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || u.Host == "" {
			return cli.Usagef("NATS URL %q: want nats://host:port (or tls://, ws://, wss://)", raw)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return cli.Usagef("NATS URL %q: scheme %q is not one of nats, tls, ws, wss", raw, u.Scheme)
		}
	}
	return nil
}
