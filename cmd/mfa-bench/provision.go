//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"

	"github.com/legalmfa/mfa/identity"
)

// person is one provisioned, approved identity and its device key.
type person struct {
	legalID string
	key     ed25519.PrivateKey
	pnr     string
	country string
}

// provisioners bounds the applications in flight: the store serialises
// writes anyway, so more would only queue.
const provisioners = 8

// provision applies for n identities over POST /Identities, as devices do,
// and approves each over the operator socket, as an operator does. PNRs
// carry a random tag of this run, so that runs against one long-lived
// broker never find each other's identities.
func provision(ctx context.Context, t *target, info api.BrokerInfo, n int, logf func(string, ...any)) ([]person, error) {
	tag := strings.ToUpper(rand.Text()[:6])
	people := make([]person, n)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: provisioners}}
	defer client.CloseIdleConnections()
	start := time.Now()
	var done atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				logf("provisioning: %d/%d identities approved", done.Load(), n)
			case <-stop:
				return
			}
		}
	}()
	err := forEach(ctx, n, provisioners, func(i int) error {
		p, err := provisionOne(ctx, client, t, info.Domain, fmt.Sprintf("BENCH-%s-%07d", tag, i))
		if err != nil {
			return err
		}
		people[i] = p
		done.Add(1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	logf("provisioned %d approved identities in %s", n, time.Since(start).Round(time.Millisecond))
	return people, nil
}

func provisionOne(ctx context.Context, client *http.Client, t *target, domain, pnr string) (person, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return person{}, err
	}
	p := person{key: key, pnr: pnr, country: "SE"}
	props := []identity.Property{
		{Name: identity.PropFirst, Value: "Bench"},
		{Name: identity.PropLast, Value: "Person"},
		{Name: identity.PropPNR, Value: p.pnr},
		{Name: identity.PropCountry, Value: p.country},
	}
	app := identity.NewApplication(domain, props, key)
	body, err := json.Marshal(api.ApplicationRequest{
		Properties: props,
		PublicKey:  identity.EncodePublicKey(app.PublicKey),
		Proof:      base64.StdEncoding.EncodeToString(app.Proof),
	})
	if err != nil {
		return person{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.baseURL+"/Identities", bytes.NewReader(body))
	if err != nil {
		return person{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return person{}, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return person{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return person{}, fmt.Errorf("POST /Identities: %s: %s", resp.Status, data)
	}
	var ar api.ApplicationResponse
	if err := json.Unmarshal(data, &ar); err != nil {
		return person{}, fmt.Errorf("POST /Identities answer: %w", err)
	}
	p.legalID = ar.Identity.ID
	if _, err := t.admin.Decide(ctx, p.legalID, "approve", broker.TransitionRequest{}); err != nil {
		return person{}, err
	}
	return p, nil
}

// brokerInfo is GET /Broker: the NATS URL devices use and the key that
// signs pushes.
func brokerInfo(ctx context.Context, baseURL string) (api.BrokerInfo, error) {
	var info api.BrokerInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/Broker", nil)
	if err != nil {
		return info, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("GET /Broker: %s", resp.Status)
	}
	return info, json.NewDecoder(resp.Body).Decode(&info)
}
