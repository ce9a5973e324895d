package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// selfSignedCert writes a certificate for 127.0.0.1 and localhost that is
// its own CA, and its key, as PEM files.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mfa-broker test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLS serves HTTPS and NATS over TLS: an MFA works end to end, and
// plain-text and outdated clients are turned away.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := selfSignedCert(t)
	tb := startBroker(t, func(c *config) {
		c.TLSCert, c.TLSKey = cert, key
		c.NATSTLSCert, c.NATSTLSKey = cert, key
	})
	if !strings.HasPrefix(tb.srv.HTTPURL(), "https://") || !strings.HasPrefix(tb.info.NATSURL, "tls://") {
		t.Fatalf("broker at %s, devices told %s", tb.srv.HTTPURL(), tb.info.NATSURL)
	}
	tb.person("19770707-0007", "SE", notifytest.Always(notify.Approve))
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19770707-0007", COUNTRY: "SE", Timeout: 30, Reason: "over TLS"}, ""); o.code != "approved" {
		t.Fatalf("MFA over HTTPS and NATS TLS: %d %s", o.status, o.code)
	}

	plain := strings.Replace(tb.srv.HTTPURL(), "https://", "http://", 1)
	if resp, err := http.Get(plain + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP served on the HTTPS port: %s", body)
		}
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: tb.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, MaxVersion: tls.VersionTLS12,
	}}}
	if _, err := old.Get(tb.srv.HTTPURL() + "/healthz"); err == nil {
		t.Fatal("a TLS 1.2 client was served with the default minimum of 1.3")
	}

	devKey, _ := identity.GenerateKey()
	opts, _ := notify.DeviceConnectOptions(devKey)
	natsAddr := strings.TrimPrefix(tb.info.NATSURL, "tls://")
	if nc, err := nats.Connect("nats://"+natsAddr, append(opts, nats.MaxReconnects(0))...); err == nil {
		nc.Close()
		t.Fatal("NATS accepted a client without TLS")
	}
}

// TestConnectionCap: past the cap, a new connection gets 503 too-busy at
// once; when connections close, service resumes.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.MaxConnections = 5 })
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	var idle []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	poll.Until(t, "cap reached", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), `"too-busy"`) && resp.Header.Get("Retry-After") != ""
	})
	for _, c := range idle {
		c.Close()
	}
	poll.Until(t, "service resumes", func() bool {
		resp, err := tb.client.Get(tb.url("/healthz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestSlowClients opens connections that send their headers a byte at a
// time, slower than allowed: the broker drops them, and serves others
// meanwhile.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.ReadHeaderTimeout = 500 * time.Millisecond })
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	const slow = 50
	dropped := make(chan time.Duration, slow)
	for i := 0; i < slow; i++ {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				dropped <- -1
				return
			}
			defer c.Close()
			start := time.Now()
			req := "POST /MFA HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: "
			for i := 0; ; i++ {
				if _, err := c.Write([]byte{req[i%len(req)]}); err != nil {
					break
				}
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(make([]byte, 512)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					break // closed by the broker
				}
				if time.Since(start) > 10*time.Second {
					break
				}
			}
			dropped <- time.Since(start)
		}()
	}
	if r := tb.do(http.MethodGet, "/healthz", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("healthz during the slow clients: %d", r.status)
	}
	for i := 0; i < slow; i++ {
		if d := <-dropped; d < 0 || d > 5*time.Second {
			t.Fatalf("slow client held its connection for %s", d)
		}
	}
}
