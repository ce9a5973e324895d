package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/internal/cli"
)

// defaultBrokerURL is where apply goes when neither --broker nor the
// environment says otherwise: a broker started with no flags.
const defaultBrokerURL = "http://localhost:8080"

// maxResponseBytes bounds what the device reads from the broker; its
// answers are a few hundred bytes.
const maxResponseBytes = 1 << 20

// brokerClient speaks to the broker's device endpoints.
type brokerClient struct {
	base string
	http *http.Client
}

// newBrokerClient talks to the broker at raw; caFile, when set, is the CA
// its HTTPS certificate must chain to instead of the system's roots.
func newBrokerClient(raw, caFile string) (*brokerClient, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, cli.Usagef("broker URL %q: want http:// or https:// and a host, such as %s", raw, defaultBrokerURL)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if caFile != "" {
		pool, err := loadCA(caFile)
		if err != nil {
			return nil, err
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &brokerClient{base: strings.TrimRight(u.String(), "/"), http: client}, nil
}

// loadCA reads PEM certificates to trust.
func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// brokerError is an error answer from the broker: its outcome code and
// message, which never contain a personal number.
type brokerError struct {
	Status  int    `json:"-"`
	Code    string `json:"Code"`
	Message string `json:"Message"`
	Field   string `json:"Field"`
}

func (e *brokerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the broker answered %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return sanitizeLine(b.String())
}

// info is GET /Broker.
func (c *brokerClient) info(ctx context.Context) (api.BrokerInfo, error) {
	var info api.BrokerInfo
	err := c.do(ctx, http.MethodGet, "/Broker", nil, http.StatusOK, &info)
	return info, err
}

// apply is POST /Identities.
func (c *brokerClient) apply(ctx context.Context, req api.ApplicationRequest) (api.ApplicationResponse, error) {
	var resp api.ApplicationResponse
	err := c.do(ctx, http.MethodPost, "/Identities", req, http.StatusCreated, &resp)
	return resp, err
}

// identity is GET /Identities/{id}.
func (c *brokerClient) identity(ctx context.Context, legalID string) (api.PublicIdentity, error) {
	var id api.PublicIdentity
	err := c.do(ctx, http.MethodGet, "/Identities/"+url.PathEscape(legalID), nil, http.StatusOK, &id)
	return id, err
}

func (c *brokerClient) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the broker at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		be := &brokerError{Status: resp.StatusCode}
		if json.Unmarshal(data, be) != nil || be.Code == "" {
			// Not the broker's error shape: perhaps a proxy, or no broker.
			be.Code, be.Message = "", strings.TrimSpace(string(data))
			if len(be.Message) > 200 {
				be.Message = be.Message[:200] + "…"
			}
			be.Message = fmt.Sprintf("%s %s: %s", method, path, be.Message)
		}
		return be
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON the broker sends (is %s an MFA broker?): %w", method, path, c.base, err)
	}
	return nil
}

// isNotFound reports a 404 from the broker.
func isNotFound(err error) bool {
	var be *brokerError
	return errors.As(err, &be) && be.Status == http.StatusNotFound
}
