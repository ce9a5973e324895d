// Package service assembles and runs one broker: the identity store, NATS
// (embedded or external) with its authorization callout, the pusher, the
// public HTTP server and the operator socket. mfa-broker runs it, and so do
// the tests and tools that need a whole broker.
package service

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/bus"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/guard"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
	"github.com/legalmfa/mfa/identity/mongostore"
	"github.com/legalmfa/mfa/metrics"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/order"
	"github.com/legalmfa/mfa/schema"
)

// Config is a broker's configuration; mfa-broker's flags fill it in.
type Config struct {
	HTTPAddr  string
	DataDir   string
	Domain    string
	PublicURL string
	// MongoDBURI selects the MongoDB identity store; empty keeps the
	// embedded store in the data directory.
	MongoDBURI     string
	MongoDBTimeout time.Duration
	NATSListen     string
	NATSURL        string
	NATSDeviceURL  string
	// NATSReplicas is how many copies JetStream keeps of the shared
	// buckets: 3 on a three-server cluster, 1 embedded.
	NATSReplicas int
	// FederationListen is the address of the NATS leaf-node listener that
	// approved peer brokers connect to (e.g. ":7422"); empty, the broker
	// does not federate. FederationURL is the leaf URL the federation
	// document tells peers (nats-leaf:// or tls://); empty, it is derived
	// from the host a peer reached the broker on and FederationListen's
	// port. Either one makes the federation document give a LeafUrl.
	FederationListen string
	FederationURL    string
	MaxTimeout       time.Duration
	IdentityValidity time.Duration
	TrustedProxies   []string
	// AdminSocket, BrokerKeyFile and PNRHashKeyFile default to files in
	// the data directory.
	AdminSocket    string
	BrokerKeyFile  string
	PNRHashKeyFile string
	// AuditRotateSize is the size in bytes past which the audit trail's
	// file is rotated.
	AuditRotateSize int64

	// TLS: a certificate and key turn on HTTPS (and, for NATS, TLS for
	// devices). TLSMinVersion is "1.3" (the default) or "1.2".
	TLSCert, TLSKey         string
	NATSTLSCert, NATSTLSKey string
	TLSMinVersion           string
	// NATSCA verifies an external NATS server's certificate (--nats-url).
	NATSCA string

	// MetricsAddr is the address of the listener that serves Prometheus
	// metrics at /metrics, apart from the public API (e.g.
	// "127.0.0.1:9090"); empty, no metrics are served.
	MetricsAddr string

	// Slow and idle clients.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxConnections    int

	// Abuse limits (see broker.WithCallerRate and friends). Zero is no
	// limit: DefaultConfig has the limits a broker should run with.
	CallerRate         broker.Rate
	IdentityRate       broker.Rate
	SignedIdentityRate broker.Rate
	ApplyRate          broker.Rate
	NotMeBlock         time.Duration
	SignatureWindow    time.Duration
	MaxPending         int
	// MaxBodyMemory bounds the request bodies being read at once, in bytes.
	MaxBodyMemory int64

	// Orders: how long an ended order can be collected, and whether number
	// matching is up to each order or required of all.
	OrderRetention time.Duration
	NumberMatching broker.NumberMatching

	// ApplicationsClosed refuses POST /Identities; ApplicationExpiry
	// deletes applications no operator decided on within it (0: never).
	ApplicationsClosed bool
	ApplicationExpiry  time.Duration

	// Clock replaces time.Now for the broker's decisions (validity windows,
	// signature windows), for tests that must not wait for time to pass.
	Clock func() time.Time

	// The process around the service: how long Shutdown may take, and its
	// log.
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
}

// DefaultConfig is every setting's default, and the one place where they
// are set: mfa-broker's flags start from it, Start fills in from it what a
// Config leaves unset, and a test holds the README's table to it.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:           ":8080",
		DataDir:            "mfa-data",
		Domain:             "localhost",
		MongoDBTimeout:     3 * time.Second,
		NATSListen:         ":4222",
		NATSReplicas:       1,
		MaxTimeout:         300 * time.Second,
		IdentityValidity:   2 * 365 * 24 * time.Hour,
		TLSMinVersion:      "1.3",
		MetricsAddr:        "", // off: an operator chooses where metrics may be read
		ReadHeaderTimeout:  10 * time.Second,
		IdleTimeout:        2 * time.Minute,
		MaxConnections:     100_000,
		CallerRate:         broker.Rate{Events: 3000, Per: time.Minute},
		IdentityRate:       broker.Rate{Events: 6, Per: time.Minute},
		SignedIdentityRate: broker.Rate{Events: 6, Per: time.Minute},
		ApplyRate:          broker.Rate{Events: 10, Per: time.Hour},
		MaxBodyMemory:      32 << 20,
		AuditRotateSize:    audit.DefaultMaxFileBytes,
		ApplicationExpiry:  7 * 24 * time.Hour,
		NotMeBlock:         24 * time.Hour,
		SignatureWindow:    5 * time.Minute,
		MaxPending:         100_000,
		OrderRetention:     10 * time.Minute,
		NumberMatching:     broker.NumberMatchingOptional,
		ShutdownTimeout:    30 * time.Second,
		LogLevel:           "info",
		LogFormat:          "text",
	}
}

// Defaults fills in from DefaultConfig what is unset and cannot be zero,
// and derives the paths inside the data directory. The limits, where zero
// means none, are left as they are.
func (c *Config) Defaults() {
	d := DefaultConfig()
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fillDuration := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.HTTPAddr, d.HTTPAddr)
	fill(&c.NATSListen, d.NATSListen)
	fill(&c.DataDir, d.DataDir)
	fill(&c.Domain, d.Domain)
	fill(&c.TLSMinVersion, d.TLSMinVersion)
	fill(&c.LogLevel, d.LogLevel)
	fill(&c.LogFormat, d.LogFormat)
	fill(&c.AdminSocket, filepath.Join(c.DataDir, "admin.sock"))
	fill(&c.BrokerKeyFile, filepath.Join(c.DataDir, "broker.key"))
	fill(&c.PNRHashKeyFile, filepath.Join(c.DataDir, "pnr-hash.key"))
	fillDuration(&c.MaxTimeout, d.MaxTimeout)
	fillDuration(&c.IdentityValidity, d.IdentityValidity)
	fillDuration(&c.NotMeBlock, d.NotMeBlock)
	fillDuration(&c.SignatureWindow, d.SignatureWindow)
	fillDuration(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	fillDuration(&c.IdleTimeout, d.IdleTimeout)
	fillDuration(&c.ShutdownTimeout, d.ShutdownTimeout)
	fillDuration(&c.MongoDBTimeout, d.MongoDBTimeout)
	fillDuration(&c.OrderRetention, d.OrderRetention)
	if c.NumberMatching == "" {
		c.NumberMatching = d.NumberMatching
	}
	if c.NATSReplicas == 0 {
		c.NATSReplicas = d.NATSReplicas
	}
	if c.AuditRotateSize == 0 {
		c.AuditRotateSize = d.AuditRotateSize
	}
}

// Check reports settings that cannot work.
func (c *Config) Check() error {
	if c.MaxTimeout < time.Second {
		return errors.New("max-timeout must be at least 1 second")
	}
	if c.IdentityValidity <= 0 {
		return errors.New("identity-validity must be positive")
	}
	if c.NotMeBlock < 0 || c.SignatureWindow <= 0 || c.MaxPending < 0 || c.MaxConnections < 0 {
		return errors.New("not-me-block, signature-window, max-pending and max-connections must not be negative")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return errors.New("a TLS certificate needs its key, and a key its certificate")
	}
	if _, err := tlsVersion(c.TLSMinVersion); err != nil {
		return err
	}
	if c.OrderRetention < 0 {
		return errors.New("order-retention must not be negative")
	}
	if c.AuditRotateSize < 0 {
		return errors.New("audit-rotate-size must be positive")
	}
	if _, err := broker.ParseNumberMatching(string(c.NumberMatching)); err != nil {
		return err
	}
	if c.FederationListen != "" {
		if c.NATSURL != "" {
			return errors.New("federation-listen: with nats-url, the NATS servers listen for peers (mfa-broker nats-config --federation-listen); give their address with federation-url instead")
		}
		if _, err := listenPort(c.FederationListen); err != nil {
			return fmt.Errorf("federation-listen %q: %w", c.FederationListen, err)
		}
	}
	if c.FederationURL != "" {
		if err := api.CheckLeafURL(c.FederationURL); err != nil {
			return fmt.Errorf("federation-url: %w", err)
		}
	}
	return c.checkMetricsAddr()
}

// Federates reports whether the broker federates: with the embedded NATS
// server, when it listens for peers; with an external one, when peers are
// told where the servers listen for them.
func (c *Config) Federates() bool {
	return c.FederationListen != "" || (c.NATSURL != "" && c.FederationURL != "")
}

// listenPort is the port of a listen address, host:port with a host that
// may be empty; 0 asks for a random port.
func listenPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, errors.New("want host:port or :port")
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, errors.New("the port must be a number from 0 to 65535")
	}
	return port, nil
}

// orderLostAfter is how long past its expiry an order without an outcome
// is taken for lost: far longer than its replica takes to write one.
const orderLostAfter = 15 * time.Second

// Service is a running broker.
type Service struct {
	cfg    Config
	log    *slog.Logger
	broker *broker.Broker
	store  identity.Store
	nats   *bus.EmbeddedServer // nil with an external NATS
	nc     *nats.Conn
	auth   *bus.AuthService
	pusher *notify.Pusher
	blocks *guard.Blocklist
	orders *order.Book
	peers  *federation.Peers      // nil when the broker does not federate
	index  *federation.Index      // the references peers share
	fed    *federation.Federation // the links with approved peers
	trail  *audit.Writer          // the audit trail

	http, admin     *http.Server
	httpLn, adminLn net.Listener
	httpTLS         *tls.Config
	releaseDataDir  func()
	stopPurging     func()
	serveErr        chan error
	httpURL         string
	natsURL         string

	// metrics is nil unless MetricsAddr is set; then its listener is
	// metricsLn, at metricsURL.
	metrics    *metrics.Metrics
	metricsSrv *http.Server
	metricsLn  net.Listener
	metricsURL string
}

// Start brings a broker up. It takes what others could hold first (the
// data directory, the HTTP address, the operator socket) so that a clash is
// found before anything starts, and every part it started is stopped again
// if a later part fails: the error is all that is left.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, serveErr: make(chan error, 3)}
	if err := s.start(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *Service) start(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	release, err := takeDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	s.releaseDataDir = release
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory holds keys and the operator socket but others may enter it; chmod 700 it", "dir", cfg.DataDir, "mode", fi.Mode().Perm().String())
	}
	if err := s.bind(); err != nil {
		return err
	}
	brokerKey, err := identity.LoadOrCreateKeyFile(cfg.BrokerKeyFile)
	if err != nil {
		return fmt.Errorf("broker key: %w", err)
	}
	creds, err := bus.NewBrokerCredentials(brokerKey)
	if err != nil {
		return err
	}
	hashKey, err := identity.LoadOrCreateSecret(cfg.PNRHashKeyFile, 32)
	if err != nil {
		return fmt.Errorf("PNR hash key: %w", err)
	}
	if err := s.openAudit(); err != nil {
		return err
	}
	if s.store, err = openStore(ctx, cfg, log); err != nil {
		return err
	}
	rawStore := s.store
	if s.metrics != nil {
		s.store = timedStore{Store: s.store, obs: s.metrics}
	}
	if err := s.connectNATS(creds, api.PeerID(brokerKey.Public().(ed25519.PublicKey))); err != nil {
		return err
	}
	// The callout must answer before any device can connect.
	var authOpts []bus.AuthOption
	if s.nats != nil {
		authOpts = append(authOpts, bus.WithConnectionLimit(s.nats, bus.MaxDeviceConnections))
	}
	if cfg.Federates() {
		// The callout admits approved peers' links: it must know them
		// before it answers.
		if s.peers, err = federation.OpenPeers(ctx, s.nc, cfg.NATSReplicas, log); err != nil {
			return fmt.Errorf("federation peers: %w", err)
		}
		authOpts = append(authOpts, bus.WithPeers(s.peers))
	}
	if s.auth, err = bus.StartAuthService(s.nc, creds, s.store, log, authOpts...); err != nil {
		return err
	}
	if s.pusher, err = notify.NewPusher(ctx, s.nc, brokerKey, cfg.Domain,
		notify.WithLogger(log), s.pusherObserver()); err != nil {
		return err
	}
	if s.blocks, err = guard.NewBlocklist(ctx, s.nc, max(cfg.NotMeBlock, time.Minute), cfg.NATSReplicas, log); err != nil {
		return err
	}
	// Nonces are remembered for twice the window: a request can be up to one
	// window early or late.
	replays, err := guard.NewReplayGuard(ctx, s.nc, 2*cfg.SignatureWindow, cfg.NATSReplicas)
	if err != nil {
		return err
	}
	if s.orders, err = order.Open(ctx, s.nc, order.Config{
		MaxTimeout: cfg.MaxTimeout, Retention: cfg.OrderRetention, LostAfter: orderLostAfter,
		Replicas: cfg.NATSReplicas, Logger: log, Now: cfg.Clock,
	}); err != nil {
		return err
	}
	xsd, err := schema.Load()
	if err != nil {
		return err
	}
	decoder := encoding.NewDecoder(xsd, int(cfg.MaxTimeout/time.Second))
	if s.broker, err = broker.New(s.store, s.pusher, decoder, brokerKey.Public().(ed25519.PublicKey),
		broker.WithLogger(log),
		broker.WithDomain(cfg.Domain),
		broker.WithPublicURL(cfg.PublicURL),
		broker.WithDeviceNATS(cfg.NATSDeviceURL, s.natsPort(), cfg.NATSTLSCert != ""),
		broker.WithFederation(cfg.FederationURL, s.federationPort(), cfg.NATSTLSCert != ""),
		broker.WithIdentityValidity(cfg.IdentityValidity),
		broker.WithTrustedProxies(cfg.TrustedProxies),
		broker.WithPNRHashKey(hashKey),
		broker.WithAudit(s.trail),
		broker.WithReadinessCheck(s.auditReady),
		broker.WithReadinessCheck(s.natsReady),
		broker.WithCallerRate(cfg.CallerRate),
		broker.WithIdentityRate(cfg.IdentityRate, cfg.SignedIdentityRate),
		broker.WithApplyRate(cfg.ApplyRate),
		broker.WithOpenApplications(!cfg.ApplicationsClosed),
		broker.WithBodyMemory(cfg.MaxBodyMemory),
		broker.WithNotMeBlock(s.blocks, cfg.NotMeBlock),
		broker.WithReplayGuard(replays, cfg.SignatureWindow),
		broker.WithMaxPending(cfg.MaxPending),
		broker.WithOrders(s.orders, s.pusher, cfg.NumberMatching),
		broker.WithClock(cfg.Clock),
		s.brokerObserver(),
	); err != nil {
		return err
	}
	if s.peers != nil {
		if err := s.startFederation(ctx, brokerKey, creds); err != nil {
			return err
		}
	}
	if cfg.ApplicationExpiry > 0 {
		s.startPurging(cfg.ApplicationExpiry)
	}
	storeName := "embedded"
	if cfg.MongoDBURI != "" {
		storeName = "mongodb"
	}
	s.watchMetrics(storeName, rawStore)
	if err := s.serve(); err != nil {
		return err
	}
	log.Info("broker started", "http", s.httpURL, "nats", s.natsURL, "admin", cfg.AdminSocket, "domain", cfg.Domain, "data", cfg.DataDir, "store", storeName)
	return nil
}

// startFederation opens the index of the peers' references and brings up
// the links with the approved peers; the broker asks through them from
// then on, and tells them of every change to an identity.
func (s *Service) startFederation(ctx context.Context, brokerKey ed25519.PrivateKey, creds *bus.BrokerCredentials) error {
	me := api.PeerID(brokerKey.Public().(ed25519.PublicKey))
	fcfg := federation.Config{
		Key: brokerKey, Creds: creds, NATSURL: s.natsURL,
		Domain: s.cfg.Domain, Peers: s.peers, Identities: s.store,
		Home: s.broker, Logger: s.log.With("component", "federation"),
	}
	if s.nats != nil {
		fcfg.Server, fcfg.NATSURL = s.nats, s.nats.ClientURL()
	} else {
		// Peers reach this broker's buckets by the servers' JetStream
		// domain: a cluster configured otherwise cannot federate.
		js, err := jetstream.New(s.nc)
		if err != nil {
			return err
		}
		info, err := js.AccountInfo(ctx)
		if err != nil {
			return fmt.Errorf("federation: JetStream on the NATS servers: %w", err)
		}
		if info.Domain != me {
			return fmt.Errorf("federation: the NATS servers' JetStream domain is %q; federation needs %q (mfa-broker nats-config --federation-listen)", info.Domain, me)
		}
		if s.cfg.NATSCA != "" {
			fcfg.ConnectOptions = append(fcfg.ConnectOptions, nats.RootCAs(s.cfg.NATSCA))
		}
	}
	var err error
	if s.index, err = federation.OpenIndex(filepath.Join(s.cfg.DataDir, "federation.db")); err != nil {
		return fmt.Errorf("federation index: %w", err)
	}
	fcfg.Index, fcfg.LookupKey = s.index, federation.DeriveLookupKey(brokerKey)
	if s.fed, err = federation.Start(ctx, fcfg); err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	s.broker.UseFederation(s.fed, s.fed.IdentityChanged)
	s.broker.UsePeerAdmin(s.fed)
	return nil
}

// startPurging deletes, now and then, the applications no operator decided
// on within expiry, so that anyone applying without end cannot fill the
// store or the operator's queue.
func (s *Service) startPurging(expiry time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopPurging = func() {
		cancel()
		<-done
	}
	every := min(max(expiry/4, time.Second), time.Hour)
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Minute)
			n, err := s.store.PurgeApplications(pctx, time.Now().Add(-expiry))
			pcancel()
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("applications not purged", "err", err)
			case n > 0:
				s.log.Info("applications no operator decided on purged", "count", n, "older than", expiry)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// openStore opens MongoDB when a URI is configured, else the embedded
// store. MongoDB is opened lazily: a broker starts while MongoDB is down,
// reports not ready, answers MFA requests 503 store-unavailable, and
// recovers by itself when MongoDB is back.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (identity.Store, error) {
	if cfg.MongoDBURI == "" {
		return boltstore.Open(filepath.Join(cfg.DataDir, "identities.db"))
	}
	opts := []mongostore.Option{mongostore.WithLazyOpen(), mongostore.WithLogger(log.With("component", "mongostore"))}
	if cfg.MongoDBTimeout > 0 {
		opts = append(opts, mongostore.WithOperationTimeout(cfg.MongoDBTimeout))
	}
	return mongostore.Open(ctx, cfg.MongoDBURI, opts...)
}

// connectNATS starts the embedded server, unless an external one is
// configured, and connects to it. domain names the server's JetStream for
// peers, which address its share buckets by it; only a federating broker
// needs one.
func (s *Service) connectNATS(creds *bus.BrokerCredentials, domain string) error {
	opts := append(creds.ConnectOptions(),
		nats.Name("mfa-broker"),
		// The pusher ends its own superseded requests directly; hearing its
		// announcements to the other replicas back would be wasted work.
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("NATS reconnected") }),
	)
	url := s.cfg.NATSURL
	if url == "" {
		var natsTLS *tls.Config
		if s.cfg.NATSTLSCert != "" {
			var err error
			if natsTLS, err = serverTLS(s.cfg.NATSTLSCert, s.cfg.NATSTLSKey, s.cfg.TLSMinVersion); err != nil {
				return fmt.Errorf("NATS TLS: %w", err)
			}
		}
		natsCfg := bus.ServerConfig{
			Listen: s.cfg.NATSListen, StoreDir: filepath.Join(s.cfg.DataDir, "jetstream"),
			Credentials: creds, TLS: natsTLS, Logger: s.log,
			LeafListen: s.cfg.FederationListen,
		}
		if s.cfg.FederationListen != "" {
			natsCfg.Domain = domain
		}
		srv, err := bus.StartServer(natsCfg)
		if err != nil {
			return err
		}
		s.nats = srv
		// The broker talks to its own server without a socket.
		opts = append(opts, nats.InProcessServer(srv))
		s.natsURL = srv.ClientURL()
	} else {
		s.natsURL = url
		if s.cfg.NATSCA != "" {
			opts = append(opts, nats.RootCAs(s.cfg.NATSCA))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", s.natsURL, err)
	}
	s.nc = nc
	return nil
}

// natsPort is the port devices use when no device URL is configured.
func (s *Service) natsPort() int {
	if s.nats != nil {
		if addr, ok := s.nats.Addr().(*net.TCPAddr); ok {
			return addr.Port
		}
	}
	return 4222
}

// federationPort is the leaf-node port peers are told when no federation
// URL is configured: the one the leaf listener took (a random one for
// ":0"); 0 for a broker that does not federate.
func (s *Service) federationPort() int {
	if s.cfg.FederationListen == "" {
		return 0
	}
	if s.nats != nil {
		return s.nats.LeafPort()
	}
	port, _ := listenPort(s.cfg.FederationListen) // Check has refused a bad one
	return port
}

func (s *Service) natsReady(context.Context) error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection is %s", st)
	}
	return nil
}

// bind opens the HTTP listener and the operator socket, serving nothing
// yet.
func (s *Service) bind() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("HTTP address %s is in use by another program (choose another with --http-addr)", s.cfg.HTTPAddr)
	}
	if err != nil {
		return fmt.Errorf("HTTP address %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn, s.httpURL = ln, "http://"+ln.Addr().String()
	if s.cfg.TLSCert != "" {
		if s.httpTLS, err = serverTLS(s.cfg.TLSCert, s.cfg.TLSKey, s.cfg.TLSMinVersion); err != nil {
			return fmt.Errorf("HTTPS: %w", err)
		}
		s.httpURL = "https://" + ln.Addr().String()
	}
	if s.cfg.MaxConnections > 0 {
		s.httpLn = limitConnections(s.httpLn, s.cfg.MaxConnections, s.httpTLS == nil, s.log)
	}
	if s.httpTLS != nil {
		// Offered in ALPN so that TLS callers negotiate HTTP/2; without
		// it they would all fall back to HTTP/1.1.
		s.httpTLS.NextProtos = []string{"h2", "http/1.1"}
		s.httpLn = tls.NewListener(s.httpLn, s.httpTLS)
	}
	if s.adminLn, err = listenAdmin(s.cfg.AdminSocket); err != nil {
		return err
	}
	return s.bindMetrics()
}

// serve starts serving the public API and the operator socket.
func (s *Service) serve() error {
	handler, err := s.broker.Handler()
	if err != nil {
		return err
	}
	s.http = &http.Server{
		Protocols: httpProtocols(),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: http2MaxStreams,
			// Flow control bounds what a connection's streams may send
			// before their handlers read it: one body's worth a stream, a
			// few in all. Bodies being read are bounded again across every
			// connection (MaxBodyMemory).
			MaxReceiveBufferPerStream:     128 << 10,
			MaxReceiveBufferPerConnection: 1 << 20,
			// Pending requests send nothing for up to MaxTimeout; pings
			// find callers that vanished without closing the connection.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
		Handler: handler,
		// Slow clients get a bounded time to send headers and body.
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadHeaderTimeout + 20*time.Second,
		// Answers wait for a person: up to the longest timeout, plus slack.
		WriteTimeout:   s.cfg.MaxTimeout + 30*time.Second,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.admin = &http.Server{Handler: s.broker.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	// The goroutines get the servers, not the fields: a Shutdown right
	// after Start clears the fields, perhaps before they run.
	httpSrv, adminSrv, httpLn, adminLn := s.http, s.admin, s.httpLn, s.adminLn
	go func() { s.serveErr <- httpSrv.Serve(httpLn) }()
	go func() { s.serveErr <- adminSrv.Serve(adminLn) }()
	s.serveMetrics()
	return nil
}

// http2MaxStreams is how many requests a caller may have pending on one
// HTTP/2 connection. Each costs a handler goroutine whether it shares a
// connection or not; sharing saves the caller's and the broker's sockets,
// and --max-pending still bounds the total.
const http2MaxStreams = 1000

// httpProtocols serves HTTP/1.1 and HTTP/2: over TLS by ALPN, and in clear
// text with prior knowledge (h2c), which is how a relying party's backend
// or a load balancer in front of the broker multiplexes many pending
// requests over a few connections.
func httpProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// listenAdmin opens the operator socket, readable and writable by the
// broker's user only. A socket left by a broker that died is replaced; one
// that still answers means another broker uses this data directory.
func listenAdmin(path string) (net.Listener, error) {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("operator socket %s is in use: another broker runs on this data directory", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale operator socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("operator socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("operator socket permissions: %w", err)
	}
	return ln, nil
}

// HTTPURL is the public listener's base URL.
func (s *Service) HTTPURL() string { return s.httpURL }

// NATSURL is where the broker's NATS is (the embedded server's client URL,
// or the external one).
func (s *Service) NATSURL() string { return s.natsURL }

// EmbeddedNATS reports whether the broker runs its own NATS server.
func (s *Service) EmbeddedNATS() bool { return s.nats != nil }

// Pending is the number of MFA requests waiting for an answer.
func (s *Service) Pending() int { return s.pusher.Pending() }

// Config is the configuration the service runs with, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Done delivers the error of a listener that stopped serving on its own.
func (s *Service) Done() <-chan error { return s.serveErr }

// Shutdown stops taking MFA requests, answers the pending ones (503
// shutting-down, and their devices are told to withdraw), then stops
// everything else.
func (s *Service) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return errors.New("already shut down")
	}
	s.log.Info("shutting down", "pending", s.pusher.Pending())
	s.broker.BeginShutdown()
	var errs []error
	if err := s.pusher.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	// The pusher's Close ended every order running here; each writes its
	// outcome (shutting-down) where the other replicas read it.
	if err := s.broker.WaitOrders(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
	}
	if err := s.admin.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("operator socket shutdown: %w", err))
	}
	if s.metricsSrv != nil {
		if err := s.metricsSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics shutdown: %w", err))
		}
		s.metricsSrv = nil
	}
	s.http, s.admin, s.pusher = nil, nil, nil
	s.stop()
	return errors.Join(errs...)
}

// stop releases whatever Start got as far as acquiring.
func (s *Service) stop() {
	if s.http != nil {
		s.http.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.metricsSrv != nil {
		s.metricsSrv.Close()
	}
	if s.metricsLn != nil {
		s.metricsLn.Close()
	}
	if s.stopPurging != nil {
		s.stopPurging()
	}
	if s.pusher != nil {
		s.pusher.Close(context.Background())
	}
	if s.blocks != nil {
		s.blocks.Close()
	}
	if s.orders != nil {
		s.orders.Close()
	}
	if s.fed != nil {
		s.fed.Close()
	}
	if s.index != nil {
		s.index.Close()
	}
	if s.peers != nil {
		s.peers.Close()
	}
	if s.auth != nil {
		s.auth.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil {
		s.nats.Stop()
	}
	// Closed after everything that records in it (the servers, the
	// pusher whose Close ended the pending requests, federation).
	s.closeAudit()
	if s.store != nil {
		if err := s.store.Close(context.Background()); err != nil {
			s.log.Error("close identity store", "err", err)
		}
	}
	if s.releaseDataDir != nil {
		s.releaseDataDir()
	}
}
