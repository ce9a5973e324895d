package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/cli"
)

// operatorTimeout bounds one operator command's talk with the broker.
const operatorTimeout = 30 * time.Second

const identityHelp = `
Usage:
  mfa-broker identity list [--state STATE] [--json]
  mfa-broker identity show LEGALID [--json]
  mfa-broker identity approve LEGALID [--valid-for 8760h] [--json]
  mfa-broker identity reject|obsolete|compromise LEGALID [--from STATE] [--json]

Operators decide on identities while the broker runs. The life cycle:
Created -> Approved | Rejected, and Approved -> Obsoleted | Compromised |
Rejected; the last three are final. Only an Approved identity within its
validity window is asked for MFA or may sign requests. Each decision
applies only if the identity is still in the state it starts from (Created
for approve and reject, Approved for obsolete and compromise; --from names
another), so two operators deciding at once never both win.

'mfa-broker identity COMMAND -h' shows a command's flags.
`

// identityVerbs are the identity commands and the help of each.
var identityVerbs = map[string]string{
	"list":       "Usage: mfa-broker identity list [--state STATE] [--json]\n\nLists identities: ID, state, name, country, when created, valid until.",
	"show":       "Usage: mfa-broker identity show LEGALID [--json]\n\nShows one identity, properties and all.",
	"approve":    "Usage: mfa-broker identity approve LEGALID [--valid-for 8760h] [--same-person] [--json]\n\nApproves a Created identity: from now on it is asked for MFA and may sign requests.\nWhile another identity with the same PNR and COUNTRY is Approved or waiting, the\nbroker refuses unless --same-person says they are the one person's (a second\nphone): an impostor applying with someone's number looks just like that.",
	"reject":     "Usage: mfa-broker identity reject LEGALID [--from STATE] [--json]\n\nRejects an identity: a Created one (the default), or an Approved one with --from Approved.",
	"obsolete":   "Usage: mfa-broker identity obsolete LEGALID [--from STATE] [--json]\n\nRetires an Approved identity that is no longer used, such as a lost phone's.",
	"compromise": "Usage: mfa-broker identity compromise LEGALID [--from STATE] [--json]\n\nMarks an Approved identity's key as compromised.",
}

func runIdentity(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("identity: give a command: list, show, approve, reject, obsolete or compromise (mfa-broker identity -h)")
	}
	verb := args[0]
	if isHelp(verb) {
		fmt.Fprintln(e.stdout, strings.TrimSpace(identityHelp))
		return nil
	}
	help, ok := identityVerbs[verb]
	if !ok {
		return cli.Usagef("identity: unknown command %q: use list, show, approve, reject, obsolete or compromise", verb)
	}
	var cfg config
	c := cli.New("mfa-broker identity "+verb, help, envPrefix, e.stdout)
	dataDirFlags(c, &cfg)
	asJSON := c.Flags.Bool("json", false, "print JSON instead of text")
	var state, validFor, from *string
	samePerson := new(bool)
	switch verb {
	case "list":
		state = c.Flags.String("state", "", "only identities in this state: Created, Approved, Rejected, Obsoleted or Compromised")
	case "approve":
		validFor = c.Flags.String("valid-for", "", "how long the approval lasts, e.g. 8760h (default: the broker's --identity-validity)")
		samePerson = c.Flags.Bool("same-person", false, "approve although another identity, Approved or waiting, has the same PNR and COUNTRY: it is the same person's")
	case "reject", "obsolete", "compromise":
		from = c.Flags.String("from", "", "the state the change starts from, e.g. reject --from Approved revokes an approved identity")
	}
	if verb != "list" {
		c.Args = true
	}
	positional, op, err := reach(c, &cfg, args[1:], e.getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	if verb == "list" {
		all, err := op.Identities(ctx, *state)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, all)
		}
		return printIdentities(e.stdout, all)
	}
	if len(positional) != 1 {
		return cli.Usagef("identity %s takes exactly one LEGALID", verb)
	}
	var id broker.AdminIdentity
	if verb == "show" {
		id, err = op.Identity(ctx, positional[0])
	} else {
		req := broker.TransitionRequest{SamePerson: *samePerson}
		if validFor != nil {
			req.ValidFor = *validFor
		}
		if from != nil {
			req.From = identity.State(*from)
		}
		id, err = op.Decide(ctx, positional[0], verb, req)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, id)
	}
	return printIdentity(e.stdout, id)
}

const blockHelp = `
Usage:
  mfa-broker block list [--pnr PNR --country CC] [--requester LEGALID | --ip ADDRESS] [--json]
  mfa-broker block remove KEY

When a person answers a request "not me", the caller that sent it may not
ask that person again for --not-me-block (24 hours by default). Blocks are
shared by every replica. A person who answered "not me" by mistake asks the
operator to lift the block: list finds it (by the person's PNR and COUNTRY,
by the requester's LegalId or the caller's IP address, or all), remove
lifts it on every replica at once.

Blocks name callers and people by keyed hashes, never in the clear; the
broker hashes what list is given the same way.

'mfa-broker block COMMAND -h' shows a command's flags.
`

func runBlock(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("block: give a command: list or remove (mfa-broker block -h)")
	}
	verb := args[0]
	if isHelp(verb) {
		fmt.Fprintln(e.stdout, strings.TrimSpace(blockHelp))
		return nil
	}
	var cfg config
	var c *cli.Command
	q := url.Values{}
	var asJSON *bool
	switch verb {
	case "list":
		c = cli.New("mfa-broker block list", "Usage: mfa-broker block list [--pnr PNR --country CC] [--requester LEGALID | --ip ADDRESS] [--json]\n\nLists the blocks in force: who may not ask whom, since and until when.", envPrefix, e.stdout)
		for _, name := range []struct{ flag, usage string }{
			{"pnr", "only blocks of the person with this personal number (give --country too)"},
			{"country", "the person's country, with --pnr"},
			{"requester", "only blocks of this requester (its LegalId)"},
			{"ip", "only blocks of unsigned requests from this IP address"},
		} {
			c.Flags.Func(name.flag, name.usage, func(v string) error { q.Set(name.flag, v); return nil })
			// A personal number is not read from the environment, where
			// it would linger.
			c.NoEnv[name.flag] = true
		}
		asJSON = c.Flags.Bool("json", false, "print JSON instead of text")
	case "remove":
		c = cli.New("mfa-broker block remove", "Usage: mfa-broker block remove KEY\n\nLifts a block (its KEY as block list shows it) on every replica.", envPrefix, e.stdout)
		c.Args = true
	default:
		return cli.Usagef("block: unknown command %q: use list or remove", verb)
	}
	dataDirFlags(c, &cfg)
	positional, op, err := reach(c, &cfg, args[1:], e.getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	if verb == "list" {
		blocks, err := op.Blocks(ctx, q)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, blocks)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSINCE\tUNTIL\tREQUEST")
		for _, b := range blocks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Key, formatTime(b.Since), formatTime(b.Until), orDash(b.RequestID))
		}
		return tw.Flush()
	}
	if len(positional) != 1 {
		return cli.Usagef("block remove takes exactly one KEY")
	}
	b, err := op.Unblock(ctx, positional[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "lifted block %s (it would have lasted until %s)\n", b.Key, formatTime(b.Until))
	return nil
}

// reach parses an operator command's arguments and returns them with a
// client of the broker the data directory names.
func reach(c *cli.Command, cfg *config, args []string, getenv func(string) string) ([]string, *operator.Client, error) {
	positional, err := c.Parse(args, getenv)
	if err != nil {
		return nil, nil, err
	}
	cfg.Defaults()
	return positional, operator.New(cfg.AdminSocket), nil
}

func printIdentities(w io.Writer, all []broker.AdminIdentity) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tNAME\tCOUNTRY\tCREATED\tVALID TO\tSAME PERSON")
	for _, id := range all {
		name := identity.Identity{ID: "-", Properties: id.Properties}.DisplayName()
		country := identity.Identity{Properties: id.Properties}.Property(identity.PropCountry)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id.ID, id.State, name, orDash(country),
			id.Created.Format(time.DateTime), formatTime(id.ValidTo), samePersonSummary(id.SamePerson))
	}
	return tw.Flush()
}

func printIdentity(w io.Writer, id broker.AdminIdentity) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\nState\t%s\nValid\t%s – %s\nDevice\t%s\nPublic key\t%s\nCreated\t%s\nUpdated\t%s\n",
		id.ID, id.State, formatTime(id.ValidFrom), formatTime(id.ValidTo), id.DeviceID, id.PublicKey,
		id.Created.Format(time.RFC3339), id.Updated.Format(time.RFC3339))
	for _, p := range id.Properties {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Value)
	}
	for _, o := range id.SamePerson {
		fmt.Fprintf(tw, "Same PNR+COUNTRY\t%s  %s  %q  applied %s\n", o.ID, o.State, o.Name, o.Created.Format(time.DateTime))
	}
	return tw.Flush()
}

// samePersonSummary counts the other identities of the same person by
// state: "-" when there are none.
func samePersonSummary(others []broker.SamePerson) string {
	if len(others) == 0 {
		return "-"
	}
	count := map[identity.State]int{}
	var order []identity.State
	for _, o := range others {
		if count[o.State] == 0 {
			order = append(order, o.State)
		}
		count[o.State]++
	}
	parts := make([]string, 0, len(order))
	for _, st := range order {
		parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
	}
	return strings.Join(parts, ", ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateTime)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
