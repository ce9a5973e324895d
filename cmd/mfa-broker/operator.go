package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/identity"
)

// runIdentity runs an operator command against the running broker.
func runIdentity(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{"identity: give a command: list, show, approve, reject, obsolete or compromise"}
	}
	verb := args[0]
	var cfg config
	fs := flag.NewFlagSet("mfa-broker identity "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &cfg)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	state := fs.String("state", "", "list: only identities in this state")
	validFor := fs.String("valid-for", "", "approve: how long the approval lasts, e.g. 8760h (default: the broker's --identity-validity)")
	from := fs.String("from", "", "the state the change starts from (default: Created for approve and reject, Approved for obsolete and compromise); e.g. reject --from Approved revokes an approved identity")
	positional, err := parseInterleaved(fs, args[1:], getenv)
	if err != nil {
		return err
	}
	cfg.Defaults()
	op := operatorClient{socket: cfg.AdminSocket}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	switch verb {
	case "list":
		if len(positional) != 0 {
			return usageError{"identity list takes no arguments"}
		}
		return op.list(ctx, stdout, *state, *asJSON)
	case "show", "approve", "reject", "obsolete", "compromise":
		if len(positional) != 1 {
			return usageError{fmt.Sprintf("identity %s takes exactly one LEGALID", verb)}
		}
		var id broker.AdminIdentity
		if verb == "show" {
			err = op.call(ctx, http.MethodGet, "/identities/"+url.PathEscape(positional[0]), nil, &id)
		} else {
			err = op.call(ctx, http.MethodPost, "/identities/"+url.PathEscape(positional[0])+"/"+verb,
				broker.TransitionRequest{ValidFor: *validFor, From: identity.State(*from)}, &id)
		}
		if err != nil {
			return err
		}
		return printIdentity(stdout, id, *asJSON)
	}
	return usageError{fmt.Sprintf("identity: unknown command %q", verb)}
}

// parseInterleaved lets flags follow positional arguments, as in
// "identity approve ID --valid-for 8760h".
func parseInterleaved(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args, getenv); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// operatorClient speaks HTTP over the broker's operator socket.
type operatorClient struct{ socket string }

func (o operatorClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://broker"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", o.socket)
		},
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the broker's operator socket %s (is the broker running with this --data-dir, as this user?): %w", o.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("%s (%s)", e.Message, e.Code)
		}
		return fmt.Errorf("broker answered %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}

func (o operatorClient) list(ctx context.Context, w io.Writer, state string, asJSON bool) error {
	var all []broker.AdminIdentity
	after := ""
	for {
		q := url.Values{}
		if state != "" {
			q.Set("state", state)
		}
		if after != "" {
			q.Set("after", after)
		}
		var page broker.AdminList
		if err := o.call(ctx, http.MethodGet, "/identities?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Identities...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if asJSON {
		return writeJSON(w, all)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tNAME\tCOUNTRY\tCREATED\tVALID TO")
	for _, id := range all {
		name := identity.Identity{ID: "-", Properties: id.Properties}.DisplayName()
		country := identity.Identity{Properties: id.Properties}.Property(identity.PropCountry)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id.ID, id.State, name, orDash(country),
			id.Created.Format(time.DateTime), formatTime(id.ValidTo))
	}
	return tw.Flush()
}

func printIdentity(w io.Writer, id broker.AdminIdentity, asJSON bool) error {
	if asJSON {
		return writeJSON(w, id)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\nState\t%s\nValid\t%s – %s\nDevice\t%s\nPublic key\t%s\nCreated\t%s\nUpdated\t%s\n",
		id.ID, id.State, formatTime(id.ValidFrom), formatTime(id.ValidTo), id.DeviceID, id.PublicKey,
		id.Created.Format(time.RFC3339), id.Updated.Format(time.RFC3339))
	for _, p := range id.Properties {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Value)
	}
	return tw.Flush()
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
