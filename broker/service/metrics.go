package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/metrics"
	"github.com/legalmfa/mfa/notify"
)

// metricsPath is where the metrics listener serves the metrics.
const metricsPath = "/metrics"

// checkMetricsAddr refuses a metrics address on the public HTTP port: the
// metrics tell how busy the broker is and which peers it has, which is
// the operator's business, not the callers'.
func (c *Config) checkMetricsAddr() error {
	if c.MetricsAddr == "" {
		return nil
	}
	port, err := listenPort(c.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics-addr %q: %w", c.MetricsAddr, err)
	}
	if httpPort, err := listenPort(c.HTTPAddr); err == nil && port != 0 && port == httpPort {
		return fmt.Errorf("metrics-addr %q: the metrics are never served on the public HTTP port; give another port", c.MetricsAddr)
	}
	return nil
}

// bindMetrics opens the metrics listener, when one is configured, and
// makes the registry the broker's parts report to.
func (s *Service) bindMetrics() error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("metrics address %s is in use by another program (choose another with --metrics-addr)", s.cfg.MetricsAddr)
	}
	if err != nil {
		return fmt.Errorf("metrics address %s: %w", s.cfg.MetricsAddr, err)
	}
	s.metricsLn, s.metricsURL = ln, "http://"+ln.Addr().String()+metricsPath
	s.metrics = metrics.New()
	return nil
}

// pusherObserver and brokerObserver hand the metrics to the pusher and
// the broker, or nothing when there are none.
func (s *Service) pusherObserver() notify.PusherOption {
	if s.metrics == nil {
		return func(*notify.Pusher) {}
	}
	return notify.WithObserver(s.metrics)
}

func (s *Service) brokerObserver() broker.Option {
	if s.metrics == nil {
		return func(*broker.Broker) {}
	}
	return broker.WithObserver(s.metrics)
}

// watchMetrics registers what the metrics read at scrape time from the
// parts already running; rawStore is the store as opened, so that a
// scrape's ping is not timed as the broker's own work.
func (s *Service) watchMetrics(storeName string, rawStore interface {
	Ping(context.Context) error
}) {
	if s.metrics == nil {
		return
	}
	pusher, nc := s.pusher, s.nc
	src := metrics.Sources{
		Pending:        pusher.Pending,
		PendingLimit:   s.cfg.MaxPending,
		OrdersRunning:  s.orders.Running,
		BlocksInForce:  func() int { return s.blocks.InForce(time.Now()) },
		NATSConnected:  func() bool { return nc.Status() == nats.CONNECTED },
		NATSReconnects: func() uint64 { return nc.Stats().Reconnects },
		Store:          storeName,
		StorePing:      rawStore.Ping,
	}
	if fed := s.fed; fed != nil {
		src.Peers = func() []metrics.Peer {
			var out []metrics.Peer
			for _, p := range fed.Peers() {
				out = append(out, metrics.Peer{
					ID: p.ID, Domain: p.Domain, Approved: p.Approved, Share: p.Share,
					LinkUp: p.LinkUp, References: p.References,
				})
			}
			return out
		}
	}
	s.metrics.Watch(src)
}

// serveMetrics serves the metrics on their own listener.
func (s *Service) serveMetrics() {
	if s.metricsLn == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, s.metrics.Handler())
	s.metricsSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A scrape's answer is written at once; the store ping it makes
		// is bounded well within this.
		WriteTimeout: 30 * time.Second,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv, ln := s.metricsSrv, s.metricsLn
	go func() { s.serveErr <- srv.Serve(ln) }()
}

// MetricsURL is where the metrics are served, "" when they are not
// (--metrics-addr unset).
func (s *Service) MetricsURL() string { return s.metricsURL }
