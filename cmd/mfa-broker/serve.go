package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/schema"
)

// server is a running broker: HTTP, the operator socket, NATS (embedded or
// external), the pusher and the identity store.
type server struct {
	cfg    config
	log    *slog.Logger
	broker *broker.Broker
	store  identity.Store
	nats   *notify.EmbeddedServer // nil with an external NATS
	nc     *nats.Conn
	pusher *notify.Pusher

	http, admin       *http.Server
	httpLn, adminLn   net.Listener
	serveErr          chan error
	httpURL, natsURLs string
}

// start brings the broker up; every part it started is stopped again if a
// later part fails.
func start(ctx context.Context, cfg config, log *slog.Logger) (s *server, err error) {
	s = &server{cfg: cfg, log: log, serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if fi, err := os.Stat(cfg.dataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory holds keys and the operator socket but others may enter it; chmod 700 it", "dir", cfg.dataDir, "mode", fi.Mode().Perm().String())
	}
	brokerKey, err := identity.LoadOrCreateKeyFile(cfg.brokerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker key: %w", err)
	}
	hashKey, err := loadOrCreateSecret(cfg.pnrHashKeyFile, 32)
	if err != nil {
		return nil, fmt.Errorf("PNR hash key: %w", err)
	}
	if s.store, err = boltstore.Open(filepath.Join(cfg.dataDir, "identities.db")); err != nil {
		return nil, err
	}
	if err := s.connectNATS(); err != nil {
		return nil, err
	}
	if s.pusher, err = notify.NewPusher(ctx, s.nc, brokerKey, cfg.domain,
		notify.WithLogger(log), notify.WithMaxTimeout(cfg.maxTimeout)); err != nil {
		return nil, err
	}
	xsd, err := schema.Load()
	if err != nil {
		return nil, err
	}
	decoder := encoding.NewDecoder(xsd, encoding.WithMaxTimeout(int(cfg.maxTimeout/time.Second)))
	if s.broker, err = broker.New(s.store, s.pusher, decoder, brokerKey.Public().(ed25519.PublicKey),
		broker.WithLogger(log),
		broker.WithDomain(cfg.domain),
		broker.WithPublicURL(cfg.publicURL),
		broker.WithDeviceNATS(cfg.natsDeviceURL, s.natsPort()),
		broker.WithIdentityValidity(cfg.identityValidity),
		broker.WithTrustedProxies(cfg.proxies()),
		broker.WithPNRHashKey(hashKey),
		broker.WithReadinessCheck(s.natsReady),
	); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	log.Info("broker started", "http", s.httpURL, "nats", s.natsURLs, "admin", cfg.adminSocket, "domain", cfg.domain, "data", cfg.dataDir)
	return s, nil
}

func (s *server) connectNATS() error {
	opts := []nats.Option{
		nats.Name("mfa-broker"),
		nats.MaxReconnects(-1),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("NATS reconnected") }),
	}
	url := s.cfg.natsURL
	if url == "" {
		srv, err := notify.StartServer(notify.ServerConfig{
			Listen: s.cfg.natsListen, StoreDir: filepath.Join(s.cfg.dataDir, "jetstream"), Logger: s.log,
		})
		if err != nil {
			return err
		}
		s.nats = srv
		// The broker talks to its own server without a socket.
		opts = append(opts, nats.InProcessServer(srv))
		s.natsURLs = srv.ClientURL()
	} else {
		s.natsURLs = url
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", s.natsURLs, err)
	}
	s.nc = nc
	return nil
}

// natsPort is the port devices use when no device URL is configured.
func (s *server) natsPort() int {
	if s.nats != nil {
		if addr, ok := s.nats.Addr().(*net.TCPAddr); ok {
			return addr.Port
		}
	}
	return 4222
}

func (s *server) natsReady(context.Context) error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection is %s", st)
	}
	return nil
}

func (s *server) listen() error {
	handler, err := s.broker.Handler()
	if err != nil {
		return err
	}
	if s.httpLn, err = net.Listen("tcp", s.cfg.httpAddr); err != nil {
		return fmt.Errorf("HTTP listen: %w", err)
	}
	s.httpURL = "http://" + s.httpLn.Addr().String()
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Answers wait for a person: up to the longest timeout, plus slack.
		WriteTimeout:   s.cfg.maxTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.adminLn, err = listenAdmin(s.cfg.adminSocket); err != nil {
		return err
	}
	s.admin = &http.Server{Handler: s.broker.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.serveErr <- s.http.Serve(s.httpLn) }()
	go func() { s.serveErr <- s.admin.Serve(s.adminLn) }()
	return nil
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

// shutdown stops taking MFA requests, answers the pending ones (503
// shutting-down, and their devices are told to withdraw), then stops
// everything else.
func (s *server) shutdown(ctx context.Context) error {
	s.log.Info("shutting down", "pending", s.pusher.Pending())
	s.broker.BeginShutdown()
	var errs []error
	if err := s.pusher.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
	}
	if err := s.admin.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("operator socket shutdown: %w", err))
	}
	s.http, s.admin, s.pusher = nil, nil, nil
	s.stop()
	return errors.Join(errs...)
}

// stop releases whatever start got as far as acquiring.
func (s *server) stop() {
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
	if s.pusher != nil {
		s.pusher.Close(context.Background())
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil {
		s.nats.Stop()
	}
	if s.store != nil {
		if err := s.store.Close(context.Background()); err != nil {
			s.log.Error("close identity store", "err", err)
		}
	}
}
