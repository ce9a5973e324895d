package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/internal/cli"
)

// envPrefix names mfa-broker's environment variables: every flag can also
// be set as MFA_ and its name in upper case with dashes as underscores.
const envPrefix = "MFA_"

// config is the command line: the service's configuration and what only
// the command line has.
type config struct {
	service.Config
	trustedProxies string
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

// numberMatchingFlag is a broker.NumberMatching as a flag.
type numberMatchingFlag struct{ p *broker.NumberMatching }

func (f numberMatchingFlag) String() string {
	if f.p == nil {
		return ""
	}
	return string(*f.p)
}

func (f numberMatchingFlag) Set(v string) error {
	p, err := broker.ParseNumberMatching(v)
	if err != nil {
		return err
	}
	*f.p = p
	return nil
}

// dataDirFlags locate a broker: the server's data directory, and the
// operator socket the operator commands reach it through.
func dataDirFlags(c *cli.Command, cfg *config) {
	d := service.DefaultConfig()
	c.Flags.StringVar(&cfg.DataDir, "data-dir", d.DataDir, "directory for the identity store, keys, JetStream and the operator socket")
	c.Flags.StringVar(&cfg.AdminSocket, "admin-socket", "", "operator socket (default <data-dir>/admin.sock)")
}

// keyFlags locate the broker's key.
func keyFlags(c *cli.Command, cfg *config) {
	c.Flags.StringVar(&cfg.BrokerKeyFile, "broker-key-file", "", "Ed25519 key that signs pushes and authenticates the broker to NATS; replicas share it (default <data-dir>/broker.key)")
}

// serverFlags are mfa-broker serve's. Every default comes from
// service.DefaultConfig.
func serverFlags(c *cli.Command, cfg *config) {
	d := service.DefaultConfig()
	cfg.Config = d
	dataDirFlags(c, cfg)
	keyFlags(c, cfg)
	fs := c.Flags
	fs.StringVar(&cfg.LogLevel, "log-level", d.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", d.LogFormat, "log format: text or json")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", d.HTTPAddr, "HTTP listen address")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", d.MetricsAddr, "listen address of the Prometheus metrics (/metrics), never the public HTTP port, e.g. 127.0.0.1:9090 (default: none, no metrics are served)")
	fs.StringVar(&cfg.Domain, "domain", d.Domain, "the broker's domain; identities are named <uuid>@legal.<domain>")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "external base URL of the broker, for links in answers (default: from the request's Host)")
	fs.StringVar(&cfg.MongoDBURI, "mongodb-uri", "", "MongoDB connection string (mongodb:// or mongodb+srv://): keeps identities in MongoDB instead of the data directory")
	fs.Var(seconds{&cfg.MongoDBTimeout}, "mongodb-timeout", "deadline of every MongoDB operation")
	fs.StringVar(&cfg.NATSListen, "nats-listen", d.NATSListen, "listen address of the embedded NATS server, for devices")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "URL of an external NATS server or cluster, configured with 'mfa-broker nats-config'; disables the embedded server")
	fs.IntVar(&cfg.NATSReplicas, "nats-replicas", d.NATSReplicas, "copies JetStream keeps of the shared buckets (3 on a three-server cluster)")
	fs.StringVar(&cfg.NATSDeviceURL, "nats-device-url", "", "NATS URL devices are told to use (default: nats://<host they reached the broker on>:<NATS port>)")
	fs.StringVar(&cfg.FederationListen, "federation-listen", "", "address of the NATS leaf-node listener approved peer brokers connect to, e.g. :7422 (default: none, the broker does not federate)")
	fs.StringVar(&cfg.FederationURL, "federation-url", "", "leaf-node URL the federation document tells peers, nats-leaf:// or tls:// (default: nats-leaf://<host the peer reached the broker on>:<federation-listen port>, tls:// with --nats-tls-cert)")
	fs.Var(seconds{&cfg.MaxTimeout}, "max-timeout", "largest Timeout a request may ask for, in seconds or as a duration")
	fs.Var(seconds{&cfg.IdentityValidity}, "identity-validity", "how long an approval lasts unless the operator says otherwise")
	fs.StringVar(&cfg.trustedProxies, "trusted-proxies", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed")
	fs.StringVar(&cfg.PNRHashKeyFile, "pnr-hash-key-file", "", "key of the hash that names people in logs and blocks (default <data-dir>/pnr-hash.key)")
	fs.Var(seconds{&cfg.ShutdownTimeout}, "shutdown-timeout", "how long a graceful shutdown may take")
	fs.Var(rateFlag{&cfg.CallerRate}, "rate-caller", "requests allowed per caller (requester identity, or remote address when unsigned), as N/duration; 0 for no limit")
	fs.Var(rateFlag{&cfg.IdentityRate}, "rate-identity", "pushes per identity that unsigned requests may cause, as N/duration; 0 for no limit")
	fs.Var(rateFlag{&cfg.SignedIdentityRate}, "rate-identity-signed", "pushes per identity that signed requests may cause, a budget unsigned ones cannot spend, as N/duration; 0 for no limit")
	fs.Var(rateFlag{&cfg.ApplyRate}, "rate-apply", "identity applications allowed per remote address, as N/duration; 0 for no limit")
	fs.BoolFunc("open-applications", "let anyone apply for an identity (POST /Identities); false refuses applications (default true)", func(v string) error {
		open, err := strconv.ParseBool(v)
		cfg.ApplicationsClosed = !open
		return err
	})
	fs.Var(seconds{&cfg.ApplicationExpiry}, "application-expiry", "how long an application may wait for an operator before it is deleted; 0 for never")
	fs.Int64Var(&cfg.MaxBodyMemory, "max-body-memory", d.MaxBodyMemory, "bytes of request bodies all requests together may hold while they are read; past it, 503 too-busy")
	fs.Int64Var(&cfg.AuditRotateSize, "audit-rotate-size", d.AuditRotateSize, "size in bytes past which the audit trail's file (<data-dir>/audit/audit.jsonl) is rotated")
	fs.Var(seconds{&cfg.NotMeBlock}, "not-me-block", "how long a caller may not ask a person again after the person answered 'not me'")
	fs.Var(seconds{&cfg.SignatureWindow}, "signature-window", "how far a signed request's Issued time may be from the broker's clock")
	fs.IntVar(&cfg.MaxPending, "max-pending", d.MaxPending, "most MFA requests and orders waiting for an answer at once; more get 503 too-busy")
	fs.Var(seconds{&cfg.OrderRetention}, "order-retention", "how long an ended order can still be collected; then 404")
	fs.Var(numberMatchingFlag{&cfg.NumberMatching}, "number-matching", "orders' number matching: optional (each order says) or required (of every order)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", d.MaxConnections, "most HTTP connections open at once; more are answered 503 too-busy at once")
	fs.Var(seconds{&cfg.ReadHeaderTimeout}, "http-read-header-timeout", "how long a client may take to send its request headers")
	fs.Var(seconds{&cfg.IdleTimeout}, "http-idle-timeout", "how long an idle keep-alive connection is kept")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS; with --tls-key, the broker serves HTTPS only")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&cfg.NATSTLSCert, "nats-tls-cert", "", "PEM certificate for the embedded NATS server; with --nats-tls-key, devices must use TLS")
	fs.StringVar(&cfg.NATSTLSKey, "nats-tls-key", "", "PEM private key for --nats-tls-cert")
	fs.StringVar(&cfg.TLSMinVersion, "tls-min-version", d.TLSMinVersion, "oldest TLS version accepted: 1.3, or 1.2 for older clients (AEAD suites only)")
	fs.StringVar(&cfg.NATSCA, "nats-ca", "", "PEM CA that an external NATS server's certificate chains to (with --nats-url)")
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
