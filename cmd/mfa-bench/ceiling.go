//go:build linux

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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/identity"
)

// The bare pipeline is the least any correct broker must do for one MFA:
// take an HTTP POST, send a NATS request to the person's device, have it
// sign the request ID with Ed25519, verify that signature, and answer. No
// parsing, no store, no durability. It runs in its own process (this
// binary, re-executed with ceilingCommand), with an embedded nats-server,
// just as the broker does; its responders run in this process, as the
// devices do.
//
// By default there is a responder per person, each on its own connection
// and subject, taken in turn: a broker's every push goes to a different
// phone's socket, and a few shared responders would let the server write
// dozens of requests to one socket at once, which no broker can.
const (
	ceilingCommand = "ceiling-serve"
	ceilingSubject = "bench.ceiling.sign"
)

// responderSubject is the subject responder i answers on.
func responderSubject(i int) string { return ceilingSubject + "." + strconv.Itoa(i) }

// serveCeiling is the child process: it serves the bare pipeline until its
// standard input closes, which happens when the parent ends or dies.
func serveCeiling(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(ceilingCommand, flag.ContinueOnError)
	responderKey := fs.String("responder-key", "", "base64 Ed25519 public key the responders sign with")
	responders := fs.Int("responders", 1, "how many responders there are, each on its own subject")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *responders < 1 {
		return fmt.Errorf("--responders %d: need at least one", *responders)
	}
	subjects := make([]string, *responders)
	for i := range subjects {
		subjects[i] = responderSubject(i)
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
	srv := &http.Server{Handler: &ceilingHandler{nc: nc, pub: pub, subjects: subjects}, ReadHeaderTimeout: 10 * time.Second, Protocols: protocols}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(stdout, "http=%s nats=%s\n", ln.Addr(), ns.ClientURL())
	io.Copy(io.Discard, stdin)
	return nil
}

type ceilingHandler struct {
	nc  *nats.Conn
	pub ed25519.PublicKey
	// subjects are the responders' subjects, asked in turn: the handler
	// parses nothing, so it cannot pick by person as the broker does.
	subjects []string
	next     atomic.Uint64
}

func (h *ceilingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	subject := h.subjects[h.next.Add(1)%uint64(len(h.subjects))]
	m, err := h.nc.RequestWithContext(ctx, subject, []byte(id))
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
	// base is its base URL, as the client library takes it; url is its
	// POST /MFA.
	base, url  string
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	responders []*nats.Conn
	// answered counts each responder's answers, to show the requests were
	// spread over all of them.
	answered []atomic.Int64
}

func (c *ceiling) pid() int { return c.cmd.Process.Pid }

// startCeiling starts the bare pipeline's process and its responders, each
// on a NATS connection of its own.
func startCeiling(ctx context.Context, responders int) (*ceiling, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, ceilingCommand,
		"--responder-key", identity.EncodePublicKey(key.Public().(ed25519.PublicKey)),
		"--responders", strconv.Itoa(responders))
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
	c.base = "http://" + httpAddr
	c.url = c.base + "/MFA"
	c.responders, c.answered = make([]*nats.Conn, responders), make([]atomic.Int64, responders)
	err = forEach(ctx, responders, deviceStarters, func(i int) error {
		nc, err := nats.Connect(natsURL, nats.Name("mfa-bench responder"))
		if err != nil {
			return err
		}
		c.responders[i] = nc
		if _, err := nc.Subscribe(responderSubject(i), func(m *nats.Msg) {
			c.answered[i].Add(1)
			m.Respond(ed25519.Sign(key, m.Data))
		}); err != nil {
			return err
		}
		return nc.Flush()
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("the bare pipeline's responders: %w", err)
	}
	return c, nil
}

func (c *ceiling) close() {
	for _, nc := range c.responders {
		if nc != nil {
			nc.Close()
		}
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
