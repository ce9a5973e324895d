// Package cli is what the project's commands share on the command line:
// flags that may also come from the environment, help that spells every
// flag --name, and exit statuses (0 for help, 2 for a mistake in how the
// command was called, 1 for anything else).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// UsageError is a mistake in how a command was called: exit status 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error { return UsageError{Msg: fmt.Sprintf(format, args...)} }

// ExitCode is the status a command's error exits with.
func ExitCode(err error) int {
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// Command is one command's flags. Every flag can also be given in the
// environment, as EnvPrefix and the flag's name in upper case with dashes
// as underscores (--max-timeout is MFA_MAX_TIMEOUT with prefix "MFA_"); a
// flag on the command line wins.
type Command struct {
	Flags *flag.FlagSet
	// EnvPrefix names the command's environment variables.
	EnvPrefix string
	// MoreEnv lists further environment variables per flag, consulted in
	// order after the prefixed one.
	MoreEnv map[string][]string
	// NoEnv names flags never read from the environment: repeatable ones,
	// and those a forgotten variable must not set (--auto approve).
	NoEnv map[string]bool
	// Args says the command takes positional arguments; without it any
	// is refused.
	Args bool

	name, help string
	out        io.Writer
}

// New makes a command. name is how it is invoked ("mfa-broker identity
// list"), help what -h prints before the flags; help goes to out.
func New(name, help, envPrefix string, out io.Writer) *Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print its own error and usage; Parse says
	// once what was wrong, and -h prints the help.
	fs.SetOutput(io.Discard)
	return &Command{Flags: fs, EnvPrefix: envPrefix, MoreEnv: map[string][]string{}, NoEnv: map[string]bool{}, name: name, help: help, out: out}
}

// EnvName is the environment variable of a flag.
func (c *Command) EnvName(flagName string) string {
	return c.EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads args, where flags may come before, between and after the
// positional arguments ("identity approve ID --valid-for 8760h"), then
// fills every flag not given from the environment. It returns the
// positional arguments. -h prints the help and returns flag.ErrHelp.
func (c *Command) Parse(args []string, getenv func(string) string) ([]string, error) {
	var positional []string
	for {
		if err := c.Flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.PrintHelp()
				return nil, err
			}
			return nil, Usagef("%s: %v (see '%s -h')", c.name, err, c.name)
		}
		if c.Flags.NArg() == 0 {
			break
		}
		positional = append(positional, c.Flags.Arg(0))
		args = c.Flags.Args()[1:]
	}
	if !c.Args && len(positional) > 0 {
		return nil, Usagef("%s: unexpected argument %q (flags start with --)", c.name, positional[0])
	}
	set := make(map[string]bool)
	c.Flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	c.Flags.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || c.NoEnv[f.Name] {
			return
		}
		for _, name := range append([]string{c.EnvName(f.Name)}, c.MoreEnv[f.Name]...) {
			if v := getenv(name); v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, Usagef("%s: %v", name, err))
				}
				return
			}
		}
	})
	return positional, errors.Join(errs...)
}

// PrintHelp writes the help and the flags.
func (c *Command) PrintHelp() {
	fmt.Fprintln(c.out, strings.TrimSpace(c.help))
	if HasFlags(c.Flags) {
		fmt.Fprintln(c.out, "\nFlags:")
		PrintFlags(c.out, c.Flags)
	}
}

// HasFlags reports whether fs defines any flag.
func HasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// PrintFlags lists fs's flags as flag.PrintDefaults does, but spelled
// --name, as the commands' help and the README spell them.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		fmt.Fprintf(&b, "  --%s", f.Name)
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			b.WriteString(" " + name)
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, b.String())
	})
}
