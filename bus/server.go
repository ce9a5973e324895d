// Package bus runs the broker's message bus and decides who may use it:
// the embedded NATS server devices connect to, the broker's own NATS
// credentials, and the authorization callout that admits a device only
// with the key of an approved identity, confined to its own subjects.
// Devices do not link it: their side of the protocol is package notify.
package bus

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is host:port for devices; port 0 picks a free port.
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	// Credentials make the broker the server's only user and its callout
	// the judge of every other connection (see auth.go).
	Credentials *BrokerCredentials
	// TLS, when set, is required of every client.
	TLS    *tls.Config
	Logger *slog.Logger
}

// EmbeddedServer is a nats-server with JetStream running in this process.
type EmbeddedServer struct {
	*server.Server
}

// StartServer starts the embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*EmbeddedServer, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("NATS listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("NATS listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.Credentials == nil {
		return nil, fmt.Errorf("NATS server: broker credentials are required: it accepts no anonymous clients")
	}
	if host == "" {
		host = "0.0.0.0"
	}
	opts := &server.Options{
		ServerName: "mfa-broker",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// The broker process handles signals itself.
		NoSigs: true,
		// Pushes are small; a tight payload limit bounds abuse.
		MaxPayload: 64 * 1024,
		Nkeys:      []*server.NkeyUser{{Nkey: cfg.Credentials.UserPublicKey()}},
		AuthCallout: &server.AuthCallout{
			Issuer:    cfg.Credentials.IssuerPublicKey(),
			AuthUsers: []string{cfg.Credentials.UserPublicKey()},
		},
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS
		opts.TLS = true
		opts.TLSTimeout = 5
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("NATS server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s.SetLoggerV2(natsLogger{logger.With("component", "nats")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("NATS server did not start listening on %s within 10 s", cfg.Listen)
	}
	return &EmbeddedServer{s}, nil
}

// Stop shuts the server down and waits until it has.
func (e *EmbeddedServer) Stop() {
	e.Shutdown()
	e.WaitForShutdown()
}

// natsLogger routes nats-server's log lines into slog.
type natsLogger struct{ l *slog.Logger }

// Noticef is nats-server's chatty start-up banner; the broker logs its own
// summary, so these go to debug.
func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
