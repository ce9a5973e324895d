// Package operator is the client of a running broker's operator socket:
// what mfa-broker's identity and block commands say to it, and what tools
// that drive a broker (mfa-bench, benchmarks) ask of it. The socket speaks
// HTTP with JSON; broker.AdminHandler serves it.
package operator

import (
	"bytes"
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
	"github.com/legalmfa/mfa/federation"
)

// Client talks to one broker's operator socket.
type Client struct {
	socket string
	http   *http.Client
}

// New is a client of the socket at path.
func New(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
	}}}
}

// Error is the broker's refusal: its outcome code and message.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Message + " (" + e.Code + ")"
}

// maxAnswer bounds what is read of one answer: a page of identities.
const maxAnswer = 64 << 20

// Call sends body (JSON, when not nil) and decodes the answer into out
// (when not nil). An answer other than 2xx is an *Error.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://broker"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the broker's operator socket %s (is the broker running with this --data-dir, as this user?): %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Code, e.Message = "", "the broker answered "+resp.Status
		}
		return e
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Identities lists every identity, in the given state when not "".
func (c *Client) Identities(ctx context.Context, state string) ([]broker.AdminIdentity, error) {
	all := []broker.AdminIdentity{}
	after := ""
	for {
		q := url.Values{}
		if state != "" {
			q.Set("state", state)
		}
		if after != "" {
			q.Set("after", after)
		}
		var page broker.AdminList
		if err := c.Call(ctx, http.MethodGet, "/identities?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Identities...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// Identity is one identity, properties and all.
func (c *Client) Identity(ctx context.Context, id string) (broker.AdminIdentity, error) {
	var out broker.AdminIdentity
	err := c.Call(ctx, http.MethodGet, "/identities/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Decide applies an operator's decision (approve, reject, obsolete,
// compromise) to an identity and returns it as it is now.
func (c *Client) Decide(ctx context.Context, id, action string, req broker.TransitionRequest) (broker.AdminIdentity, error) {
	var out broker.AdminIdentity
	err := c.Call(ctx, http.MethodPost, "/identities/"+url.PathEscape(id)+"/"+url.PathEscape(action), req, &out)
	return out, err
}

// Blocks lists the blocks in force, narrowed by the query the broker's
// handleAdminBlocks documents (pnr and country, requester or ip).
func (c *Client) Blocks(ctx context.Context, q url.Values) ([]broker.AdminBlock, error) {
	var out broker.AdminBlocks
	err := c.Call(ctx, http.MethodGet, "/blocks?"+q.Encode(), nil, &out)
	return out.Blocks, err
}

// Unblock lifts one block and returns it.
func (c *Client) Unblock(ctx context.Context, key string) (broker.AdminBlock, error) {
	var out broker.AdminBlock
	err := c.Call(ctx, http.MethodDelete, "/blocks/"+url.PathEscape(key), nil, &out)
	return out, err
}

// Peers lists the federated peers and their links.
func (c *Client) Peers(ctx context.Context) ([]federation.PeerStatus, error) {
	out, err := c.PeerList(ctx)
	return out.Peers, err
}

// PeerList is the peers, and this broker as they see it.
func (c *Client) PeerList(ctx context.Context) (broker.AdminPeers, error) {
	var out broker.AdminPeers
	err := c.Call(ctx, http.MethodGet, "/peers", nil, &out)
	return out, err
}

// AddPeer adds the broker at url as a peer, not approved.
func (c *Client) AddPeer(ctx context.Context, brokerURL string) (federation.PeerStatus, error) {
	var out federation.PeerStatus
	err := c.Call(ctx, http.MethodPost, "/peers", broker.AddPeerRequest{URL: brokerURL}, &out)
	return out, err
}

// DecidePeer approves a peer, withdraws the approval, or starts or stops
// sharing references with it: action is approve, withdraw, share or
// unshare.
func (c *Client) DecidePeer(ctx context.Context, id, action string) (federation.PeerStatus, error) {
	var out federation.PeerStatus
	err := c.Call(ctx, http.MethodPost, "/peers/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, &out)
	return out, err
}

// RemovePeer forgets a peer.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	return c.Call(ctx, http.MethodDelete, "/peers/"+url.PathEscape(id), nil, nil)
}

// Stats is what the broker process is doing.
func (c *Client) Stats(ctx context.Context) (broker.Stats, error) {
	var st broker.Stats
	err := c.Call(ctx, http.MethodGet, "/stats", nil, &st)
	return st, err
}

// LiveHeap collects the broker's garbage (the heap profile endpoint does
// so when asked) and returns its stats after: HeapBytes is then the live
// heap, what the broker's data really takes.
func (c *Client) LiveHeap(ctx context.Context) (broker.Stats, error) {
	if err := c.Call(ctx, http.MethodGet, "/debug/pprof/heap?gc=1", nil, nil); err != nil {
		return broker.Stats{}, err
	}
	return c.Stats(ctx)
}

// Profile saves one of the broker's pprof profiles to a file: "profile"
// (CPU, over seconds) or "heap".
func (c *Client) Profile(ctx context.Context, name string, seconds int, path string) error {
	q := "/debug/pprof/" + name
	if seconds > 0 {
		q += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://broker"+q, nil)
	if err != nil {
		return err
	}
	client := *c.http
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
