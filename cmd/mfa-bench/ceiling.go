package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/identity"
)

// The bare pipeline is the least any correct broker must do for one MFA:
// take an HTTP POST, send a NATS request to the device, have it sign the
// request ID with Ed25519, verify that signature, and answer. No parsing,
// no store, no durability. It runs in its own process (this binary,
// re-executed with ceilingCommand), with an embedded nats-server, just as
// the broker does; its responders run in this process, as the devices do.
const (
	ceilingCommand = "ceiling-serve"
	ceilingSubject = "bench.ceiling.sign"
	// ceilingResponders is how many NATS connections answer for the bare
	// pipeline; signing is quick, so a few keep up with any load here.
	ceilingResponders = 4
)

// serveCeiling is the child process: it serves the bare pipeline until its
// standard input closes, which happens when the parent ends or dies.
func serveCeiling(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(ceilingCommand, flag.ContinueOnError)
	responderKey := fs.String("responder-key", "", "base64 Ed25519 public key the responders sign with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pub, err := identity.ParsePublicKey(*responderKey)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, MaxPayload: 64 << 10,
	})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server did not start")
	}
	// In-process, as the broker connects to its embedded server.
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// HTTP/2 in clear text too, so that --http2 compares like with like.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: ceilingHandler{nc: nc, pub: pub}, ReadHeaderTimeout: 10 * time.Second, Protocols: protocols}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(stdout, "http=%s nats=%s\n", ln.Addr(), ns.ClientURL())
	io.Copy(io.Discard, stdin)
	return nil
}

type ceilingHandler struct {
	nc  *nats.Conn
	pub ed25519.PublicKey
}

func (h ceilingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Read, not parsed: a keep-alive connection needs the body consumed.
	if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10)); err != nil {
		http.Error(w, `{"Code":"malformed"}`, http.StatusBadRequest)
		return
	}
	id := strings.ToLower(rand.Text())
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	asked := time.Now()
	m, err := h.nc.RequestWithContext(ctx, ceilingSubject, []byte(id))
	waited := time.Since(asked)
	if err != nil {
		http.Error(w, `{"Code":"push-unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if !ed25519.Verify(h.pub, []byte(id), m.Data) {
		http.Error(w, `{"Code":"invalid-signature"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	// The broker's header, so that the report can set one against the other.
	w.Header().Set("Server-Timing", broker.ServerTiming(time.Since(start), waited))
	w.Write([]byte(`{"Code":"approved","RequestId":"` + id + `"}`))
}

// ceiling is a running bare pipeline and its responders.
type ceiling struct {
	url        string
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	responders []*nats.Conn
}

func (c *ceiling) pid() int { return c.cmd.Process.Pid }

// startCeiling starts the bare pipeline's process and its responders.
func startCeiling(ctx context.Context) (*ceiling, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, ceilingCommand, "--responder-key", identity.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the bare pipeline: %w", err)
	}
	c := &ceiling{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	var ready string
	select {
	case ready = <-line:
	case <-time.After(15 * time.Second):
	case <-ctx.Done():
	}
	var httpAddr, natsURL string
	if _, err := fmt.Sscanf(strings.TrimSpace(ready), "http=%s nats=%s", &httpAddr, &natsURL); err != nil {
		c.close()
		return nil, fmt.Errorf("the bare pipeline did not start (%q): %v", ready, err)
	}
	c.url = "http://" + httpAddr + "/MFA"
	for range ceilingResponders {
		nc, err := nats.Connect(natsURL, nats.Name("mfa-bench responder"))
		if err != nil {
			c.close()
			return nil, err
		}
		c.responders = append(c.responders, nc)
		if _, err := nc.QueueSubscribe(ceilingSubject, "responders", func(m *nats.Msg) {
			m.Respond(ed25519.Sign(key, m.Data))
		}); err != nil {
			c.close()
			return nil, err
		}
		if err := nc.Flush(); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *ceiling) close() {
	for _, nc := range c.responders {
		nc.Close()
	}
	c.stdin.Close()
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}
