package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/internal/cli"
)

// TestCommandLine: every command and subcommand answers -h with its own
// help on stdout and status 0, spells flags --name, and offers only the
// flags that apply; version prints the version; mistakes are status 2.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	dashFlag := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	cases := []struct {
		args      []string
		status    int
		want, not []string
	}{
		{[]string{"-h"}, 0, []string{"mfa-broker identity COMMAND", "mfa-broker block COMMAND", "version"}, nil},
		{[]string{"help"}, 0, []string{"mfa-broker nats-config"}, nil},
		{[]string{"serve", "-h"}, 0, []string{"--http-addr", "--max-timeout", "--data-dir", "--log-level"}, nil},
		{[]string{"identity", "-h"}, 0, []string{"identity list", "identity approve", "life cycle"}, nil},
		{[]string{"identity", "list", "-h"}, 0, []string{"--state", "--json", "--data-dir"}, []string{"--valid-for", "--from", "--log-level"}},
		{[]string{"identity", "approve", "--help"}, 0, []string{"--valid-for"}, []string{"--state", "--from"}},
		{[]string{"identity", "reject", "-h"}, 0, []string{"--from"}, []string{"--valid-for", "--state"}},
		{[]string{"block", "-h"}, 0, []string{"block list", "block remove", "not me"}, nil},
		{[]string{"block", "list", "-h"}, 0, []string{"--pnr", "--country", "--requester", "--ip"}, nil},
		{[]string{"nats-config", "-h"}, 0, []string{"--broker-key-file"}, []string{"--log-level"}},
		{[]string{"version"}, 0, []string{"mfa-broker "}, nil},
		{[]string{"frobnicate"}, 2, nil, nil},
		{[]string{"identity"}, 2, nil, nil},
		{[]string{"identity", "list", "--valid-for", "1h"}, 2, nil, nil},
		{[]string{"serve", "--no-such-flag"}, 2, nil, nil},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, &stdout, &stderr, func(string) string { return "" })
		if got := cli.ExitCode(err); got != c.status {
			t.Errorf("%v: status %d (%v), want %d", c.args, got, err, c.status)
			continue
		}
		out := stdout.String()
		if c.status == 0 && dashFlag.MatchString(out) {
			t.Errorf("%v: help spells a flag -name:\n%s", c.args, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("%v: offers %s, which does not apply:\n%s", c.args, n, out)
			}
		}
	}
}
