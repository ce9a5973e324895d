package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"path/filepath"
	"strings"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/cli"
)

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

// envPrefix names mfa-device's environment variables: MFA_DEVICE_<FLAG>.
const envPrefix = "MFA_DEVICE_"

// command is one subcommand's flags with the global flags added.
type command struct {
	*cli.Command
	g *globalFlags
}

func newCommand(e env, g globalFlags, name, help string) *command {
	c := &command{Command: cli.New("mfa-device "+name, help, envPrefix, e.stdout), g: &g}
	c.g.register(c.Flags)
	// resolveDir reads MFA_DEVICE_DIR itself, after --dir given before the
	// command.
	c.NoEnv["dir"] = true
	return c
}

// parse parses args, refusing positional arguments, and fills every flag
// not given on the command line from the environment.
func (c *command) parse(args []string, getenv func(string) string) error {
	_, err := c.Parse(args, getenv)
	return err
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
		return cli.Usagef("--property number %d is not NAME=VALUE, such as FIRST=Alice", p.malformed[0])
	}
	return nil
}
