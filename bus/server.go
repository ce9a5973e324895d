// Package bus runs the broker's message bus and decides who may use it:
// the embedded NATS server devices connect to, the broker's own NATS
// credentials, and the authorization callout that admits a device only
// with the key of an approved identity, confined to its own subjects.
// Devices do not link it: their side of the protocol is package notify.
package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	// Domain is the server's JetStream domain: the broker's peer ID, by
	// which a federated peer's server addresses this one's JetStream.
	Domain string
	// LeafListen, when set, is host:port of the leaf-node listener that
	// federated peers link to.
	LeafListen string
}

// EmbeddedServer is a nats-server with JetStream running in this process.
type EmbeddedServer struct {
	*server.Server

	// opts are the options the server runs with, which SetPeers changes
	// and reloads, under fedMu.
	fedMu sync.Mutex
	opts  *server.Options

	// A count of each user's open connections, taken at most every
	// connectionsEvery: the authorization callout asks it of every device
	// that connects (see Connections).
	mu          sync.Mutex
	connections map[string]int
	counted     time.Time
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
	if err := addressFree(net.JoinHostPort(host, portText)); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "mfa-broker",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// The broker process handles signals itself.
		NoSigs: true,
		// Every client's limits, the broker's own connection included: the
		// authorization callout cannot set them per device (nats-server
		// applies a user JWT's limits only in operator mode).
		MaxPayload:       MaxPayload,
		MaxSubs:          MaxSubscriptions,
		MaxClosedClients: maxClosedClients,
		Nkeys:            []*server.NkeyUser{{Nkey: cfg.Credentials.UserPublicKey()}},
		AuthCallout: &server.AuthCallout{
			Issuer:    cfg.Credentials.IssuerPublicKey(),
			AuthUsers: []string{cfg.Credentials.UserPublicKey()},
			// Named, so that leaf-node connections, which arrive in no
			// account, are put to the callout too (nats-server 7841).
			Account: globalAccount,
		},
		JetStreamDomain: cfg.Domain,
	}
	if cfg.LeafListen != "" {
		lhost, lport, err := net.SplitHostPort(cfg.LeafListen)
		if err != nil {
			return nil, fmt.Errorf("federation listen address %q: %w", cfg.LeafListen, err)
		}
		n, err := strconv.Atoi(lport)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("federation listen address %q: bad port", cfg.LeafListen)
		}
		if n == 0 {
			n = server.RANDOM_PORT
		} else if err := addressFree(cfg.LeafListen); err != nil {
			return nil, fmt.Errorf("federation: %w", err)
		}
		if lhost == "" {
			lhost = "0.0.0.0"
		}
		opts.LeafNode.Host, opts.LeafNode.Port = lhost, n
		opts.LeafNode.ReconnectInterval = leafReconnect
		if cfg.TLS != nil {
			opts.LeafNode.TLSConfig = cfg.TLS
			opts.LeafNode.TLSTimeout = 5
		}
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
	// nats-server reports a failure to start (a port taken since the check
	// above, a JetStream directory it cannot use) only in its log, with
	// Fatalf; the logger hands that to the wait below.
	fatal := make(chan string, 1)
	starting := new(atomic.Bool)
	starting.Store(true)
	s.SetLoggerV2(natsLogger{l: logger.With("component", "nats"), fatal: fatal, starting: starting}, false, false, false)
	go s.Start()
	for deadline := time.Now().Add(10 * time.Second); !s.ReadyForConnections(100 * time.Millisecond); {
		select {
		case msg := <-fatal:
			s.Shutdown()
			s.WaitForShutdown()
			return nil, fmt.Errorf("NATS server on %s: %s", cfg.Listen, msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, fmt.Errorf("NATS server did not start listening on %s within 10 s", cfg.Listen)
		}
	}
	starting.Store(false)
	return &EmbeddedServer{Server: s, opts: opts}, nil
}

// Limits every client of the broker's NATS has, on the embedded server and,
// through ServerAuthConfig, on an external one.
const (
	// MaxPayload bounds a message. The largest the broker sends is a push:
	// a Reason of 2,000 characters and a requester's name, JSON-escaped.
	MaxPayload = 64 * 1024
	// MaxSubscriptions bounds one connection's subscriptions. A device
	// needs three; the broker's connection a few dozen. A rogue device
	// subscribing without end under its own inbox is cut off here.
	MaxSubscriptions = 256
	// maxClosedClients is how many closed connections the server keeps
	// for its monitoring, each with every subscription it had; the broker
	// serves no monitoring, so a few are enough.
	maxClosedClients = 16
)

// connectionsEvery bounds how often Connections counts: a count walks
// every connection, and a reconnecting fleet asks for each device.
const connectionsEvery = 5 * time.Second

// Connections is how many open connections the user (for a device, the
// device ID its credentials name it by) has, as of a count at most connectionsEvery old, taken at counted.
func (e *EmbeddedServer) Connections(user string) (open int, counted time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.connections == nil || time.Since(e.counted) > connectionsEvery {
		e.connections = map[string]int{}
		e.counted = time.Now()
		cz, err := e.Connz(&server.ConnzOptions{Username: true, State: server.ConnOpen, Limit: math.MaxInt32})
		if err == nil {
			for _, c := range cz.Conns {
				e.connections[c.AuthorizedUser]++
			}
		}
	}
	return e.connections[user], e.counted
}

// addressFree checks that nothing listens on a TCP address, so that a
// taken port is one clear error rather than a server that never starts.
func addressFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("NATS address %s is in use by another program (choose another with --nats-listen)", addr)
	}
	if err != nil {
		return fmt.Errorf("NATS address %s: %w", addr, err)
	}
	return ln.Close()
}

// Stop shuts the server down and waits until it has.
func (e *EmbeddedServer) Stop() {
	e.Shutdown()
	e.WaitForShutdown()
}

// natsLogger routes nats-server's log lines into slog. While the server
// is starting, its fatal errors go to fatal instead, for StartServer to
// return as its one error.
type natsLogger struct {
	l        *slog.Logger
	fatal    chan<- string
	starting *atomic.Bool
}

// Noticef is nats-server's chatty start-up banner; the broker logs its own
// summary, so these go to debug.
func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if n.starting.Load() {
		select {
		case n.fatal <- msg:
		default: // the first one is the cause
		}
		return
	}
	n.l.Error(msg)
}
func (n natsLogger) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
