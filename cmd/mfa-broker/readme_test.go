package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/internal/cli"
)

// TestREADMEConfiguration holds the README's configuration table to the
// flags, whose defaults come from service.DefaultConfig: every flag is in
// the table with its environment variable, nothing else is, and every
// default the table states is the flag's (read through the flag's own
// parser, so "5m", "300" and "5m0s" agree).
func TestREADMEConfiguration(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(readme, []byte("\n## Configuration\n"))
	if !ok {
		t.Fatal("the README has no Configuration section")
	}
	table, _, _ = bytes.Cut(table, []byte("\n## "))

	var cfg config
	c := cli.New("mfa-broker serve", "", envPrefix, &bytes.Buffer{})
	serverFlags(c, &cfg)
	inTable := map[string]bool{}
	backticked := regexp.MustCompile("`([^`]*)`")
	for _, line := range strings.Split(string(table), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 4 {
			t.Fatalf("table row %q", line)
		}
		flags := backticked.FindAllStringSubmatch(cells[0], -1)
		envs := backticked.FindAllStringSubmatch(cells[1], -1)
		if len(flags) != len(envs) {
			t.Errorf("row %q: %d flags, %d environment variables", line, len(flags), len(envs))
			continue
		}
		for i, m := range flags {
			name := strings.TrimPrefix(m[1], "--")
			inTable[name] = true
			f := c.Flags.Lookup(name)
			if f == nil {
				t.Errorf("the README documents --%s, which mfa-broker does not have", name)
				continue
			}
			if env := envs[i][1]; env != c.EnvName(name) {
				t.Errorf("--%s: the README says %s, the flag reads %s", name, env, c.EnvName(name))
			}
			stated := backticked.FindStringSubmatch(cells[2])
			switch {
			case f.DefValue == "":
				// Derived (<data-dir>/broker.key) or off: the text says.
			case stated == nil:
				t.Errorf("--%s: the README states no default; the flag's is %s", name, f.DefValue)
			default:
				if got := parsedAs(t, name, stated[1]); got != f.DefValue {
					t.Errorf("--%s: the README's default %q is %s, the flag's %s", name, stated[1], got, f.DefValue)
				}
			}
		}
	}
	c.Flags.VisitAll(func(f *flag.Flag) {
		if !inTable[f.Name] {
			t.Errorf("--%s is missing from the README's configuration table", f.Name)
		}
	})
}

// parsedAs is what a flag of a fresh command line holds after being set
// to v: the flag's own reading of a default as the README writes it.
func parsedAs(t *testing.T, name, v string) string {
	var cfg config
	c := cli.New("mfa-broker serve", "", envPrefix, &bytes.Buffer{})
	serverFlags(c, &cfg)
	f := c.Flags.Lookup(name)
	if err := f.Value.Set(v); err != nil {
		t.Errorf("--%s: the README's default %q does not parse: %v", name, v, err)
	}
	return f.Value.String()
}
