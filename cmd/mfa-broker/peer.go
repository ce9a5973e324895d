package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/internal/cli"
)

const peerHelp = `
Usage:
  mfa-broker peer add URL [--json]
  mfa-broker peer list [--json]
  mfa-broker peer approve|withdraw|share|unshare PEERID [--json]
  mfa-broker peer remove PEERID

Federation lets this broker serve MFA for people whose identities another
broker holds. It takes both operators: each adds the other broker (add
fetches its discovery documents and prints its fingerprint: compare it
with the one the other operator reads out to you, by phone or in person,
before approving), and each approves the other. Nothing flows until both
have. Then each decides apart whether to share its own identity references
with the other (share; unshare stops). A broker that does not share still
serves MFA for its peers' people, when they share with it.

withdraw undoes an approval, remove forgets a peer; either takes effect on
both brokers within seconds. The broker must run with --federation-listen.
`

var peerVerbs = map[string]string{
	"add":      "Usage: mfa-broker peer add URL [--json]\n\nFetches the broker at URL's discovery documents (it must be MFA-capable) and keeps it as a peer, not approved.",
	"list":     "Usage: mfa-broker peer list [--json]\n\nLists the peers: ID, domain, fingerprint, what was decided here, whether the link is up, references received.",
	"approve":  "Usage: mfa-broker peer approve PEERID [--json]\n\nApproves a peer: once its operator approves this broker too, the link comes up.",
	"withdraw": "Usage: mfa-broker peer withdraw PEERID [--json]\n\nWithdraws the approval: the link ends, and the peer is kept to approve again.",
	"share":    "Usage: mfa-broker peer share PEERID [--json]\n\nShares this broker's identity references with an approved peer: it can then serve MFA for this broker's people.",
	"unshare":  "Usage: mfa-broker peer unshare PEERID [--json]\n\nStops sharing: the peer drops the references within seconds.",
	"remove":   "Usage: mfa-broker peer remove PEERID\n\nForgets a peer: the link ends, and what it shared is dropped.",
}

func runPeer(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("peer: give a command: add, list, approve, withdraw, share, unshare or remove (mfa-broker peer -h)")
	}
	verb := args[0]
	if isHelp(verb) {
		fmt.Fprintln(e.stdout, strings.TrimSpace(peerHelp))
		return nil
	}
	help, ok := peerVerbs[verb]
	if !ok {
		return cli.Usagef("peer: unknown command %q: use add, list, approve, withdraw, share, unshare or remove", verb)
	}
	var cfg config
	c := cli.New("mfa-broker peer "+verb, help, envPrefix, e.stdout)
	var asJSON *bool
	if verb != "remove" {
		asJSON = c.Flags.Bool("json", false, "print JSON instead of text")
	}
	c.Args = verb != "list"
	dataDirFlags(c, &cfg)
	positional, op, err := reach(c, &cfg, args[1:], e.getenv)
	if err != nil {
		return err
	}
	if verb != "list" && len(positional) != 1 {
		return cli.Usagef("peer %s takes exactly one %s", verb, map[bool]string{true: "URL", false: "PEERID"}[verb == "add"])
	}
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	var one federation.PeerStatus
	switch verb {
	case "list":
		list, err := op.PeerList(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, list.Peers)
		}
		// This broker first: its fingerprint is what the operator reads
		// out to the other.
		fmt.Fprintf(e.stdout, "this broker %s (%s)\nfingerprint %s\n\n", list.Self.ID, list.Self.Domain, list.Self.Fingerprint)
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tDOMAIN\tFINGERPRINT\tAPPROVED\tSHARED\tLINK\tREFERENCES")
		for _, p := range list.Peers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.ID, p.Domain, p.Fingerprint, yesNo(p.Approved), yesNo(p.Share), map[bool]string{true: "up", false: "down"}[p.LinkUp], p.References)
		}
		return tw.Flush()
	case "add":
		one, err = op.AddPeer(ctx, positional[0])
	case "remove":
		if err := op.RemovePeer(ctx, positional[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed peer %s\n", positional[0])
		return nil
	default:
		one, err = op.DecidePeer(ctx, positional[0], verb)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, one)
	}
	fmt.Fprintf(e.stdout, "peer %s (%s)\nfingerprint %s\napproved %s, shared %s, link %s\n", one.ID, one.Domain, one.Fingerprint,
		yesNo(one.Approved), yesNo(one.Share), map[bool]string{true: "up", false: "down"}[one.LinkUp])
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
