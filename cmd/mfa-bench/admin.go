package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/legalmfa/mfa/broker"
)

// adminClient speaks HTTP over the broker's operator socket, as the
// mfa-broker identity commands do.
type adminClient struct {
	socket string
	client *http.Client
}

func newAdminClient(socket string) adminClient {
	return adminClient{socket: socket, client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
	}}}
}

func (a adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://broker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("operator socket %s: %w", a.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("operator socket %s %s: %s: %s", method, path, resp.Status, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// stats is GET /stats: the broker's goroutines, RSS, heap and pending
// requests.
func (a adminClient) stats(ctx context.Context) (broker.Stats, error) {
	var st broker.Stats
	err := a.do(ctx, http.MethodGet, "/stats", &st)
	return st, err
}

// approve approves a Created identity, as `mfa-broker identity approve`.
func (a adminClient) approve(ctx context.Context, id string) error {
	return a.do(ctx, http.MethodPost, "/identities/"+url.PathEscape(id)+"/approve", nil)
}

// profile saves one of the broker's pprof profiles to a file: "profile"
// (CPU, over seconds) or "heap".
func (a adminClient) profile(ctx context.Context, name string, seconds int, path string) error {
	q := "/debug/pprof/" + name
	if seconds > 0 {
		q += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://broker"+q, nil)
	if err != nil {
		return err
	}
	client := *a.client
	client.Timeout = time.Duration(seconds)*time.Second + 30*time.Second
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("profile %s: %s: %s", name, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// liveHeap collects the broker's garbage (the heap profile endpoint does
// so when asked) and returns its stats after: HeapBytes is then the live
// heap, what the broker's data really takes.
func (a adminClient) liveHeap(ctx context.Context) (broker.Stats, error) {
	if err := a.do(ctx, http.MethodGet, "/debug/pprof/heap?gc=1", nil); err != nil {
		return broker.Stats{}, err
	}
	return a.stats(ctx)
}
