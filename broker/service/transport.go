package service

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tlsVersion reads the configured minimum TLS version.
func tlsVersion(v string) (uint16, error) {
	switch v {
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	}
	return 0, fmt.Errorf("TLS minimum version %q: want 1.3 or 1.2", v)
}

// serverTLS is the broker's TLS: TLS 1.3 unless 1.2 is allowed, and then
// only forward-secret AEAD suites.
func serverTLS(certFile, keyFile, minVersion string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	v, err := tlsVersion(minVersion)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   v,
		// Consulted for TLS 1.2 only; TLS 1.3's suites are all AEAD.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}, nil
}

// limitConnections caps open connections. Over the cap a connection is
// answered at once with 503 too-busy (on plain HTTP; a TLS handshake has
// nowhere to say it, so there it is closed) instead of being left to wait,
// so neither the caller nor the broker's file descriptors hang.
func limitConnections(ln net.Listener, max int, plain bool, log *slog.Logger) net.Listener {
	return &limitListener{Listener: ln, max: int64(max), plain: plain, log: log}
}

type limitListener struct {
	net.Listener
	max    int64
	open   atomic.Int64
	plain  bool
	log    *slog.Logger
	warned atomic.Bool
}

const tooBusyBody = `{"Code":"too-busy","Message":"The broker has as many connections open as it may; try again shortly."}`

// tooBusyResponse is written by hand: over the cap there is no HTTP server
// to write it.
func tooBusyResponse() []byte {
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json; charset=utf-8\r\n"+
		"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(tooBusyBody), tooBusyBody)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			l.warned.Store(false)
			return &countedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		if !l.warned.Swap(true) {
			l.log.Warn("connection limit reached; refusing new connections with 503", "max", l.max)
		}
		go l.refuse(c)
	}
}

func (l *limitListener) refuse(c net.Conn) {
	defer c.Close()
	if l.plain {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(tooBusyResponse())
	}
}

// countedConn gives its place back exactly once, however often it is
// closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
