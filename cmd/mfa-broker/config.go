package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/service"
)

// config is the command line: the service's configuration plus what only
// the process needs. Every flag can also be given as an environment
// variable: the flag's name in upper case with dashes as underscores,
// prefixed MFA_ (--max-timeout is MFA_MAX_TIMEOUT). A flag on the command
// line wins over the environment.
type config struct {
	service.Config
	trustedProxies  string
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
}

// seconds is a flag holding a duration given either as whole seconds
// ("300") or as a Go duration ("5m").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		*s.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is neither whole seconds nor a duration such as 5m", v)
	}
	*s.d = d
	return nil
}

// commonFlags are shared by the server and the operator commands, which
// find the running broker through the data directory.
func commonFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", "mfa-data", "directory for the identity store, keys, JetStream and the operator socket")
	fs.StringVar(&c.AdminSocket, "admin-socket", "", "operator socket (default <data-dir>/admin.sock)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
}

// keyFlags locate the broker's secrets.
func keyFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.BrokerKeyFile, "broker-key-file", "", "Ed25519 key that signs pushes and authenticates the broker to NATS; replicas share it (default <data-dir>/broker.key)")
}

func serverFlags(fs *flag.FlagSet, c *config) {
	commonFlags(fs, c)
	keyFlags(fs, c)
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP listen address")
	fs.StringVar(&c.Domain, "domain", "localhost", "the broker's domain; identities are named <uuid>@legal.<domain>")
	fs.StringVar(&c.PublicURL, "public-url", "", "external base URL of the broker, for links in answers (default: from the request's Host)")
	fs.StringVar(&c.MongoDBURI, "mongodb-uri", "", "MongoDB connection string (mongodb:// or mongodb+srv://): keeps identities in MongoDB instead of the data directory")
	c.MongoDBTimeout = 3 * time.Second
	fs.Var(seconds{&c.MongoDBTimeout}, "mongodb-timeout", "deadline of every MongoDB operation")
	fs.StringVar(&c.NATSListen, "nats-listen", ":4222", "listen address of the embedded NATS server, for devices")
	fs.StringVar(&c.NATSURL, "nats-url", "", "URL of an external NATS server or cluster, configured with 'mfa-broker nats-config'; disables the embedded server")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", 1, "copies JetStream keeps of the shared buckets (3 on a three-server cluster)")
	fs.StringVar(&c.NATSDeviceURL, "nats-device-url", "", "NATS URL devices are told to use (default: nats://<host they reached the broker on>:<NATS port>)")
	c.MaxTimeout = 300 * time.Second
	fs.Var(seconds{&c.MaxTimeout}, "max-timeout", "largest Timeout a request may ask for, in seconds or as a duration")
	c.IdentityValidity = 2 * 365 * 24 * time.Hour
	fs.Var(seconds{&c.IdentityValidity}, "identity-validity", "how long an approval lasts unless the operator says otherwise")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed")
	fs.StringVar(&c.PNRHashKeyFile, "pnr-hash-key-file", "", "key of the hash that names people in logs (default <data-dir>/pnr-hash.key)")
	c.shutdownTimeout = 30 * time.Second
	fs.Var(seconds{&c.shutdownTimeout}, "shutdown-timeout", "how long a graceful shutdown may take")
	c.CallerRate = broker.Rate{Events: 3000, Per: time.Minute}
	fs.Var(rateFlag{&c.CallerRate}, "rate-caller", "requests allowed per caller (requester identity, or remote address when unsigned), as N/duration; 0 for no limit")
	c.IdentityRate = broker.Rate{Events: 6, Per: time.Minute}
	fs.Var(rateFlag{&c.IdentityRate}, "rate-identity", "pushes allowed per identity, as N/duration; 0 for no limit")
	c.NotMeBlock = 24 * time.Hour
	fs.Var(seconds{&c.NotMeBlock}, "not-me-block", "how long a caller may not ask a person again after the person answered 'not me'")
	c.SignatureWindow = 5 * time.Minute
	fs.Var(seconds{&c.SignatureWindow}, "signature-window", "how far a signed request's Issued time may be from the broker's clock")
	fs.IntVar(&c.MaxPending, "max-pending", 100000, "most MFA requests waiting for an answer at once; more get 503 too-busy")
	fs.IntVar(&c.MaxConnections, "max-connections", 100000, "most HTTP connections open at once; more are answered 503 too-busy at once")
	c.ReadHeaderTimeout = 10 * time.Second
	fs.Var(seconds{&c.ReadHeaderTimeout}, "http-read-header-timeout", "how long a client may take to send its request headers")
	c.IdleTimeout = 2 * time.Minute
	fs.Var(seconds{&c.IdleTimeout}, "http-idle-timeout", "how long an idle keep-alive connection is kept")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS; with --tls-key, the broker serves HTTPS only")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", "", "PEM certificate for the embedded NATS server; with --nats-tls-key, devices must use TLS")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", "", "PEM private key for --nats-tls-cert")
	fs.StringVar(&c.TLSMinVersion, "tls-min-version", "1.3", "oldest TLS version accepted: 1.3, or 1.2 for older clients (AEAD suites only)")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "PEM CA that an external NATS server's certificate chains to (with --nats-url)")
}

// rateFlag is a flag holding a broker.Rate.
type rateFlag struct{ r *broker.Rate }

func (f rateFlag) String() string {
	if f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f rateFlag) Set(v string) error {
	r, err := broker.ParseRate(v)
	if err != nil {
		return err
	}
	*f.r = r
	return nil
}

// parseFlags parses args, then fills every flag not given on the command
// line from its MFA_* environment variable.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "MFA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// resolve completes the configuration the flags left open.
func (c *config) resolve() error {
	c.TrustedProxies = nil
	for _, p := range strings.Split(c.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.Defaults()
	return c.Check()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", format)
}
