package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/syncbuf"
)

// brokerRig is a whole broker in this process, started the way mfa-broker
// starts one: embedded NATS with the authorization callout, the bbolt
// identity store, the pusher, HTTP and the operator socket.
type brokerRig struct {
	t     *testing.T
	url   string
	admin string // the operator socket
}

func newBrokerRig(t *testing.T) *brokerRig {
	t.Helper()
	svc, err := service.Start(context.Background(), service.Config{
		HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Domain: "broker.test",
		DataDir: filepath.Join(t.TempDir(), "data"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Shutdown(context.Background()) })
	return &brokerRig{t: t, url: svc.HTTPURL(), admin: svc.Config().AdminSocket}
}

// device is one device directory, used through the commands.
type device struct {
	rig     *brokerRig
	env     map[string]string
	legalID string
}

// apply runs 'mfa-device apply' in a fresh directory, as a script would.
func (r *brokerRig) apply(props ...string) *device {
	r.t.Helper()
	d := &device{rig: r, env: map[string]string{
		"MFA_DEVICE_DIR": filepath.Join(r.t.TempDir(), "device"),
		"MFA_BROKER_URL": r.url,
	}}
	args := []string{"apply"}
	for _, p := range props {
		args = append(args, "--property", p)
	}
	res := runCmd(r.t, d.env, "", args...)
	if res.err != nil {
		r.t.Fatalf("apply: %v\n%s", res.err, res.stderr)
	}
	d.legalID = strings.TrimSpace(res.stdout)
	if err := identity.ValidateID(d.legalID); err != nil || strings.Count(res.stdout, "\n") != 1 {
		r.t.Fatalf("apply printed %q; want only the LegalId on one line", res.stdout)
	}
	return d
}

// approve does what an operator does: asks the broker over its operator
// socket.
func (d *device) approve() {
	d.rig.t.Helper()
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.rig.admin)
		},
	}}
	resp, err := client.Post("http://broker/identities/"+url.PathEscape(d.legalID)+"/approve", "application/json", nil)
	if err != nil {
		d.rig.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		d.rig.t.Fatalf("approve: %s %s", resp.Status, body)
	}
}

// listen runs 'mfa-device listen' until the test ends.
func (d *device) listen(args ...string) (stdout, stderr *syncbuf.Buffer) {
	d.rig.t.Helper()
	return d.listenFrom(strings.NewReader(""), args...)
}

// listenFrom is listen with stdin as its standard input.
func (d *device) listenFrom(stdin io.Reader, args ...string) (stdout, stderr *syncbuf.Buffer) {
	t := d.rig.t
	t.Helper()
	stdout, stderr = &syncbuf.Buffer{}, &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"listen"}, args...), stdin, stdout, stderr, envOf(d.env))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("listen: %v\n%s", err, stderr)
			}
		case <-time.After(10 * time.Second):
			t.Error("listen did not stop within 10 s of cancel")
		}
	})
	stderr.Expect(t, "listening for requests to "+d.legalID)
	return stdout, stderr
}

// mfa posts an MFA request and returns the status and the answer's code.
func (r *brokerRig) mfa(contentType, body string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+"/MFA", strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var answer struct{ Code, Message string }
	if err := json.Unmarshal(data, &answer); err != nil {
		r.t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, data)
	}
	return resp.StatusCode, answer.Code
}

const personProps = "FIRST=Alice,LAST=Smith,PNR=19791231-1234,COUNTRY=SE"

func TestIntegrationListenAnswers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		auto   string
		status int
		code   string
		line   string
	}{
		{"approve", http.StatusOK, "approved", "approved "},
		{"deny", http.StatusForbidden, "denied", "denied "},
	} {
		t.Run(tt.auto, func(t *testing.T) {
			t.Parallel()
			rig := newBrokerRig(t)
			alice := rig.apply(strings.Split(personProps, ",")...)

			st := runCmd(t, alice.env, "", "status")
			if st.err != nil || !strings.Contains(st.stdout, "State:      Created") || !strings.Contains(st.stdout, "waiting for an operator") {
				t.Fatalf("status before approval: %v\n%s", st.err, st.stdout)
			}
			alice.approve()
			st = runCmd(t, alice.env, "", "status")
			if st.err != nil || !strings.Contains(st.stdout, "State:      Approved") || !strings.Contains(st.stdout, "Usable:     yes") {
				t.Fatalf("status after approval: %v\n%s", st.err, st.stdout)
			}

			out, _ := alice.listen("--auto", tt.auto)
			status, code := rig.mfa("application/json",
				`{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":30,"Reason":"Log in to **Example Bank**\n\nfrom a new browser"}`)
			if status != tt.status || code != tt.code {
				t.Fatalf("POST /MFA = %d %s, want %d %s", status, code, tt.status, tt.code)
			}
			prompt := out.Expect(t, ": Log in to **Example Bank**\n")
			if !strings.HasPrefix(prompt, "prompt ") || !strings.Contains(prompt, " from unverified 127.0.0.1") {
				t.Fatalf("prompt line %q", prompt)
			}
			requestID := strings.Fields(prompt)[1]
			out.Expect(t, tt.line+requestID+"\n")
			if strings.Contains(out.String(), "19791231") {
				t.Fatal("listen printed the PNR")
			}
		})
	}
}

// A device that comes online after the push still gets it, from the sync.
func TestIntegrationLateDevice(t *testing.T) {
	t.Parallel()
	rig := newBrokerRig(t)
	alice := rig.apply(strings.Split(personProps, ",")...)
	alice.approve()
	type answer struct {
		status int
		code   string
	}
	got := make(chan answer, 1)
	go func() {
		s, c := rig.mfa("application/x-www-form-urlencoded", "PNR=19791231-1234&COUNTRY=SE&Timeout=30&Reason=Late+device")
		got <- answer{s, c}
	}()
	time.Sleep(300 * time.Millisecond) // the push is out before the device listens
	out, _ := alice.listen("--auto", "approve")
	out.Expect(t, ": Late device\n")
	out.Expect(t, "approved ")
	select {
	case a := <-got:
		if a.status != http.StatusOK || a.code != "approved" {
			t.Fatalf("POST /MFA = %d %s", a.status, a.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the MFA request")
	}
}

// A requester identity signs with 'mfa-device sign'; each encoding of the
// body verifies at the broker, and the person's device sees the requester
// as verified, by name.
func TestIntegrationSignedRequests(t *testing.T) {
	t.Parallel()
	rig := newBrokerRig(t)
	alice := rig.apply(strings.Split(personProps, ",")...)
	alice.approve()
	bank := rig.apply("ORGNAME=Example Bank")
	bank.approve()
	out, _ := alice.listen("--auto", "approve")

	for _, f := range []struct{ format, contentType string }{
		{"json", "application/json"},
		{"xml", "application/xml"},
		{"form", "application/x-www-form-urlencoded"},
	} {
		reason := "Approve the payment of **100 €** to \\<Example & Co>\n\nreference " + f.format
		signed := runCmd(t, bank.env, "", "sign", "--pnr", "19791231-1234", "--country", "SE", "--timeout", "30",
			"--reason", reason, "--format", f.format)
		if signed.err != nil {
			t.Fatalf("sign --format %s: %v\n%s", f.format, signed.err, signed.stderr)
		}
		status, code := rig.mfa(f.contentType, signed.stdout)
		if status != http.StatusOK || code != "approved" {
			t.Fatalf("%s: POST /MFA = %d %s\n%s", f.format, status, code, signed.stdout)
		}
		line := out.Expect(t, "\n")
		want := `from verified ` + bank.legalID + ` "Example Bank": Approve the payment of **100 €** to \<Example & Co>`
		if !strings.HasPrefix(line, "prompt ") || !strings.Contains(line, want) {
			t.Fatalf("%s: prompt line %q, want a verified requester: %s", f.format, line, want)
		}
		out.Expect(t, "approved "+strings.Fields(line)[1]+"\n")

		// The signature covers the fields: change one and it fails.
		tampered := strings.Replace(signed.stdout, "30", "31", 1)
		if status, code := rig.mfa(f.contentType, tampered); status != http.StatusUnauthorized || code != "invalid-signature" {
			t.Fatalf("%s: tampered request = %d %s, want 401 invalid-signature", f.format, status, code)
		}
	}
}

// The interactive UI against the real broker: the countdown, the answer
// typed on stdin, and the broker's verdict.
func TestIntegrationInteractive(t *testing.T) {
	t.Parallel()
	rig := newBrokerRig(t)
	alice := rig.apply(strings.Split(personProps, ",")...)
	alice.approve()

	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"listen"}, pr, stdout, stderr, envOf(alice.env)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	stderr.Expect(t, "listening for requests")

	codes := make(chan string, 1)
	go func() {
		_, code := rig.mfa("application/json", `{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":30,"Reason":"# Log in\n\nto **Example Bank**"}`)
		codes <- code
	}()
	shown := stdout.Expect(t, questionText)
	for _, want := range []string{unverifiedPrefix + "127.0.0.1", "Broker: broker.test", reasonGutter + "# Log in", "⏳ expires in 0:"} {
		if !strings.Contains(shown, want) {
			t.Errorf("prompt lacks %q:\n%s", want, shown)
		}
	}
	time.Sleep(600 * time.Millisecond) // past the minimum reading time
	io.WriteString(pw, "d\n")
	stdout.Expect(t, "✖ denied request")
	stdout.Expect(t, "the broker accepted your answer")
	select {
	case code := <-codes:
		if code != "denied" {
			t.Fatalf("code %s, want denied", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the MFA request")
	}
	if strings.Contains(stdout.String()+stderr.String(), "19791231") {
		t.Fatal("listen printed the PNR")
	}
}
