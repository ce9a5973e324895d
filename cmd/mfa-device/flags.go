package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/legalmfa/mfa/identity"
)

// usageError is a mistake in how the command was called: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// globalFlags are accepted before the command and by every command.
type globalFlags struct {
	dir    string
	dirSet bool
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.Func("dir", "device directory holding device.key and device.json (env MFA_DEVICE_DIR; default $HOME/.mfa-device)", func(v string) error {
		g.dir, g.dirSet = v, true
		return nil
	})
}

// loadDevice reads what an applied device has: its configuration and key.
func (g globalFlags) loadDevice(getenv func(string) string) (deviceConfig, ed25519.PrivateKey, error) {
	dir, err := g.resolveDir(getenv)
	if err != nil {
		return deviceConfig{}, nil, err
	}
	cfg, err := dir.loadConfig()
	if err != nil {
		return deviceConfig{}, nil, err
	}
	key, err := dir.loadKey()
	if err != nil {
		return deviceConfig{}, nil, err
	}
	return cfg, key, nil
}

// resolveDir picks the device directory: --dir, then MFA_DEVICE_DIR, then
// $HOME/.mfa-device.
func (g globalFlags) resolveDir(getenv func(string) string) (deviceDir, error) {
	dir := g.dir
	if !g.dirSet {
		dir = getenv("MFA_DEVICE_DIR")
	}
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return deviceDir{}, errors.New("no device directory: give --dir or set MFA_DEVICE_DIR (HOME is not set)")
		}
		dir = filepath.Join(home, ".mfa-device")
	}
	return deviceDir{path: dir}, nil
}

// command is one subcommand's flag set with the global flags added.
type command struct {
	fs *flag.FlagSet
	g  *globalFlags
	// env lists extra environment variables per flag, consulted after
	// MFA_DEVICE_<FLAG>, in order.
	env map[string][]string
	// noEnv names flags that take no value from the environment, such as
	// repeatable ones.
	noEnv map[string]bool
}

func newCommand(e env, g globalFlags, name, help string) *command {
	c := &command{fs: flag.NewFlagSet("mfa-device "+name, flag.ContinueOnError), g: &g,
		env: map[string][]string{}, noEnv: map[string]bool{"dir": true}}
	c.fs.SetOutput(e.stderr)
	c.fs.Usage = func() {
		fmt.Fprintf(e.stderr, "%s\nFlags:\n", strings.TrimSpace(help))
		c.fs.PrintDefaults()
	}
	c.g.register(c.fs)
	return c
}

// parse parses args, refuses positional arguments, and fills every flag
// not given on the command line from the environment.
func (c *command) parse(args []string, getenv func(string) string) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q (flags start with --)", c.fs.Name(), c.fs.Arg(0))}
	}
	set := make(map[string]bool)
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	c.fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || c.noEnv[f.Name] {
			return
		}
		for _, name := range append([]string{envName(f.Name)}, c.env[f.Name]...) {
			if v := getenv(name); v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, usageError{fmt.Sprintf("%s: %v", name, err)})
				}
				return
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "MFA_DEVICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// propertiesFlag collects repeated --property NAME=VALUE.
type propertiesFlag struct {
	props []identity.Property
	// malformed counts values without '='. They are reported after parsing
	// rather than from Set, because the flag package would quote the value
	// in its error, and a mistyped value may well be a personal number.
	malformed []int
}

func (p *propertiesFlag) String() string {
	if p == nil {
		return ""
	}
	names := make([]string, len(p.props))
	for i, prop := range p.props {
		names[i] = prop.Name
	}
	return strings.Join(names, ",")
}

func (p *propertiesFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		p.malformed = append(p.malformed, len(p.props)+len(p.malformed)+1)
		return nil
	}
	p.props = append(p.props, identity.Property{Name: strings.TrimSpace(name), Value: value})
	return nil
}

func (p *propertiesFlag) check() error {
	if len(p.malformed) > 0 {
		return usageError{fmt.Sprintf("--property number %d is not NAME=VALUE, such as FIRST=Alice", p.malformed[0])}
	}
	return nil
}
