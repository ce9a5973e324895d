package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// auditEvents reads every event of a broker's audit trail, oldest first.
func (tb *testBroker) auditEvents() []audit.Record {
	tb.t.Helper()
	var recs []audit.Record
	err := audit.Tail(context.Background(), service.AuditDir(tb.cfg.DataDir), audit.TailOptions{Last: -1}, func(e audit.Entry) error {
		if !e.OK {
			return fmt.Errorf("a line that is not an event: %s", e.Line)
		}
		recs = append(recs, e.Record)
		return nil
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	return recs
}

// auditBytes is everything in a broker's audit directory.
func (tb *testBroker) auditBytes() []byte {
	tb.t.Helper()
	dir := service.AuditDir(tb.cfg.DataDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.t.Fatal(err)
	}
	var all []byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// findEvent is the one event that match accepts; the test fails unless
// there is exactly one.
func findEvent(t *testing.T, recs []audit.Record, what string, match func(audit.Event) bool) audit.Event {
	t.Helper()
	var found []audit.Event
	for _, r := range recs {
		if match(r.Event) {
			found = append(found, r.Event)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d events, want 1: %+v", what, len(found), found)
	}
	return found[0]
}

// pnrSpellings are the ways a personal number could be written: as given,
// without its separator, without its century, and both.
func pnrSpellings(pnr string) []string {
	plain := strings.ReplaceAll(pnr, "-", "")
	return []string{pnr, plain, pnr[2:], plain[2:]}
}

// TestAuditTrail: approve, deny and "not me", a signed request, an order,
// a federated request, and operators' decisions on identities, peers and
// blocks each leave one event with what an auditor needs, in a chain that
// verifies; no personal number appears in the trail in any spelling.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	f := startFederation(t)
	a, b := f.a, f.b
	const (
		approverPNR = "19121212-1212"
		denierPNR   = "19231123-4567"
		notMePNR    = "19340304-0303"
		remotePNR   = "19450505-5050"
		signedPNR   = "19560606-6060"
		orderPNR    = "19670707-7070"
	)
	approver := a.person(approverPNR, "SE", notifytest.Always(notify.Approve))
	denier := a.person(denierPNR, "SE", notifytest.Always(notify.Deny))
	notMe := a.person(notMePNR, "NO", notifytest.Always(notify.NotMe))
	signedDev := a.person(signedPNR, "DK", notifytest.Always(notify.Approve))
	orderDev := a.person(orderPNR, "FI", notifytest.Always(notify.Deny))
	remote := f.personAtB(remotePNR, "IS", notifytest.Always(notify.Approve))

	ask := func(pnr, country string, m mfaBody) outcome {
		m.PNR, m.COUNTRY, m.Timeout, m.Reason = pnr, country, 30, "Audit "+pnr
		return a.postMFA(context.Background(), "json", m, "application/json")
	}
	approved := ask(approverPNR, "SE", mfaBody{})
	denied := ask(denierPNR, "SE", mfaBody{})
	notMeO := ask(notMePNR, "NO", mfaBody{})
	if blocked := ask(notMePNR, "NO", mfaBody{}); blocked.code != "blocked" {
		t.Fatalf("after not me: %s", blocked.code)
	}
	rpID, rpKey := a.requester()
	sm := mfaBody{PNR: signedPNR, COUNTRY: "DK", Timeout: 30, Reason: "Signed", LegalId: rpID}
	sign(rpKey, &sm)
	signed := a.postMFA(context.Background(), "json", sm, "application/json")
	remoteO := ask(remotePNR, "IS", mfaBody{})
	placed := a.placeOrder("json", mfaBody{PNR: orderPNR, COUNTRY: "FI", Timeout: 30, Reason: "Order"}, "")
	ordered := a.outcomeOf(orderCall{ref: placed.order["Ref"]})
	for _, c := range []struct {
		o    outcome
		want string
	}{{approved, "approved"}, {denied, "denied"}, {notMeO, "denied-not-me"}, {signed, "approved"}, {remoteO, "approved"}, {ordered, "denied"}} {
		if c.o.code != c.want {
			t.Fatalf("request %s: %s (%s), want %s", c.o.requestID, c.o.code, c.o.message, c.want)
		}
	}

	// Operators' decisions: identities, blocks, peers.
	if out, err := a.operator("identity", "obsolete", approver.LegalID); err != nil {
		t.Fatalf("obsolete: %v: %s", err, out)
	}
	if out, err := a.operator("identity", "compromise", signedDev.LegalID); err != nil {
		t.Fatalf("compromise: %v: %s", err, out)
	}
	rejected, _ := a.applyIdentity("FIRST", "Im", "LAST", "Poster", "PNR", approverPNR, "COUNTRY", "SE")
	if out, err := a.operator("identity", "reject", rejected); err != nil {
		t.Fatalf("reject: %v: %s", err, out)
	}
	out, err := a.operator("block", "list", "--json")
	var blocks []broker.AdminBlock
	if err != nil || json.Unmarshal([]byte(out), &blocks) != nil || len(blocks) != 1 {
		t.Fatalf("block list: %v: %s", err, out)
	}
	if out, err := a.operator("block", "remove", blocks[0].Key); err != nil {
		t.Fatalf("block remove: %v: %s", err, out)
	}
	a.peerCommand("unshare", f.bID)
	a.peerCommand("withdraw", f.bID)
	if out, err := a.operator("peer", "remove", f.bID); err != nil {
		t.Fatalf("peer remove: %v: %s", err, out)
	}

	recs := a.auditEvents()
	mfa := func(o outcome) func(audit.Event) bool {
		return func(e audit.Event) bool { return e.Kind == audit.KindMFA && e.Request == o.requestID }
	}
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	ev := findEvent(t, recs, "approved", mfa(approved))
	if ev.Code != "approved" || ev.Decision != "approve" || ev.Device != approver.LegalID || ev.Remote != "127.0.0.1" ||
		ev.Requester != "" || ev.Peer != "" || !hex16.MatchString(ev.Person) || ev.Order {
		t.Errorf("approved: %+v", ev)
	}
	approverHash := ev.Person
	ev = findEvent(t, recs, "denied", mfa(denied))
	if ev.Code != "denied" || ev.Decision != "deny" || ev.Device != denier.LegalID || ev.Person == approverHash || !hex16.MatchString(ev.Person) {
		t.Errorf("denied: %+v", ev)
	}
	ev = findEvent(t, recs, "not me", mfa(notMeO))
	if ev.Code != "denied-not-me" || ev.Decision != "not-me" || ev.Device != notMe.LegalID {
		t.Errorf("not me: %+v", ev)
	}
	nm := findEvent(t, recs, "the not-me report", func(e audit.Event) bool { return e.Kind == audit.KindNotMe })
	if nm.Request != notMeO.requestID || nm.Person != ev.Person || nm.Block != blocks[0].Key || nm.Until.Before(time.Now().Add(23*time.Hour)) {
		t.Errorf("not-me report: %+v, want the block %s for a day", nm, blocks[0].Key)
	}
	ev = findEvent(t, recs, "signed", mfa(signed))
	if ev.Code != "approved" || ev.Requester != rpID || ev.Device != signedDev.LegalID {
		t.Errorf("signed: %+v", ev)
	}
	ev = findEvent(t, recs, "order", mfa(ordered))
	if ev.Code != "denied" || !ev.Order || ev.Device != orderDev.LegalID {
		t.Errorf("order: %+v", ev)
	}
	ev = findEvent(t, recs, "federated", mfa(remoteO))
	if ev.Code != "approved" || ev.Device != remote.LegalID || ev.Peer != f.bID || ev.Domain != "b.test" {
		t.Errorf("federated, at the asking broker: %+v", ev)
	}
	atB := findEvent(t, b.auditEvents(), "federated, at the home broker", func(e audit.Event) bool {
		return e.Kind == audit.KindPeerMFA && e.Request == remoteO.requestID
	})
	if atB.Code != "approved" || atB.Device != remote.LegalID || atB.Peer != f.aID || atB.Domain != "a.test" || atB.Remote != "127.0.0.1" || !hex16.MatchString(atB.Person) {
		t.Errorf("federated, at the home broker: %+v", atB)
	}
	for _, c := range []struct{ id, action, from, to string }{
		{approver.LegalID, "approve", "Created", "Approved"},
		{approver.LegalID, "obsolete", "Approved", "Obsoleted"},
		{signedDev.LegalID, "compromise", "Approved", "Compromised"},
		{rejected, "reject", "Created", "Rejected"},
		{rpID, "approve", "Created", "Approved"},
	} {
		ev := findEvent(t, recs, c.action+" "+c.id, func(e audit.Event) bool {
			return e.Kind == audit.KindIdentity && e.Identity == c.id && e.Action == c.action
		})
		if ev.From != c.from || ev.To != c.to {
			t.Errorf("%s %s: %+v", c.action, c.id, ev)
		}
		if c.id == approver.LegalID && ev.Person != approverHash {
			t.Errorf("%s %s names the person %s, the MFA event %s", c.action, c.id, ev.Person, approverHash)
		}
		if c.id == rpID && ev.Person != "" {
			t.Errorf("an identity without a PNR has a person: %+v", ev)
		}
	}
	findEvent(t, recs, "reject of the second applicant", func(e audit.Event) bool {
		return e.Kind == audit.KindIdentity && e.Identity == rejected && e.Person == approverHash
	})
	findEvent(t, recs, "unblock", func(e audit.Event) bool {
		return e.Kind == audit.KindUnblock && e.Block == blocks[0].Key && e.Request == notMeO.requestID
	})
	for _, action := range []string{"add", "approve", "share", "unshare", "withdraw", "remove"} {
		ev := findEvent(t, recs, "peer "+action, func(e audit.Event) bool { return e.Kind == audit.KindPeer && e.Action == action })
		if ev.Peer != f.bID || ev.Domain != "b.test" {
			t.Errorf("peer %s: %+v", action, ev)
		}
	}
	// Refused before a push: not a decision, not in the trail.
	for _, r := range recs {
		if r.Code == "blocked" {
			t.Errorf("a refusal before any push was recorded: %+v", r)
		}
	}

	for _, tb := range []*testBroker{a, b} {
		out, err := tb.operator("audit", "verify")
		if err != nil || !strings.Contains(out, "the chain holds") {
			t.Fatalf("audit verify: %v\n%s", err, out)
		}
		trail := tb.auditBytes()
		for _, pnr := range []string{approverPNR, denierPNR, notMePNR, remotePNR, signedPNR, orderPNR} {
			for _, s := range pnrSpellings(pnr) {
				if bytes.Contains(trail, []byte(s)) {
					t.Errorf("the audit trail holds the personal number %s as %q", pnr, s)
				}
			}
		}
	}
	out, err = a.operator("audit", "tail", "--lines", "3")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, "action=remove") {
		t.Fatalf("audit tail: %v\n%s", err, out)
	}
	t.Logf("audit tail:\n%s", out)
}

// TestAuditCommandLine: the audit commands' help, usage mistakes, and a
// directory without a trail.
func TestAuditCommandLine(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	cases := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"audit", "-h"}, 0, "audit verify"},
		{[]string{"audit", "verify", "-h"}, 0, "--anchor"},
		{[]string{"audit", "tail", "-h"}, 0, "--follow"},
		{[]string{"-h"}, 0, "mfa-broker audit COMMAND"},
		{[]string{"audit"}, 2, ""},
		{[]string{"audit", "frobnicate"}, 2, ""},
		{[]string{"audit", "verify", "--anchor", "12"}, 2, ""},
		{[]string{"audit", "tail", "--anchor", "1:" + strings.Repeat("a", 64)}, 2, ""},
		{[]string{"audit", "verify", "--data-dir", empty}, 1, ""},
		{[]string{"audit", "tail", "--data-dir", empty}, 1, ""},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, &stdout, &stderr, func(string) string { return "" })
		if got := cli.ExitCode(err); got != c.status {
			t.Errorf("%v: status %d (%v), want %d", c.args, got, err, c.status)
		}
		if !strings.Contains(stdout.String(), c.want) {
			t.Errorf("%v: output lacks %q:\n%s", c.args, c.want, stdout.String())
		}
		if c.status == 1 && !errors.Is(err, audit.ErrNoTrail) {
			t.Errorf("%v: %v, want no audit trail", c.args, err)
		}
	}
}

// TestAuditVerifyFindsTampering: verify run on a real broker's trail
// passes, and fails with status 1 naming the file and line once a line is
// edited or deleted.
func TestAuditVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(lines []string) []string
		line   int
	}{
		{"edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"code":"denied"`, `"code":"approved"`, 1)
			return l
		}, 4},
		{"deleted", func(l []string) []string { return append(l[:2:2], l[3:]...) }, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t)
			tb.person("19780808-0808", "SE", notifytest.Always(notify.Deny))
			for range 3 {
				if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19780808-0808", COUNTRY: "SE", Timeout: 30, Reason: "x"}, ""); o.code != "denied" {
					t.Fatalf("%s", o.code)
				}
			}
			if out, err := tb.operator("audit", "verify"); err != nil {
				t.Fatalf("before: %v\n%s", err, out)
			}
			// Events: the approval of the identity, then three denials.
			path := filepath.Join(service.AuditDir(tb.cfg.DataDir), audit.CurrentFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(data), "\n")
			if err := os.WriteFile(path, []byte(strings.Join(c.change(lines), "")), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := tb.operator("audit", "verify")
			if cli.ExitCode(err) != 1 || !strings.Contains(err.Error(), fmt.Sprintf("%s line %d", audit.CurrentFile, c.line)) {
				t.Fatalf("after the line was %s: %v\n%s", c.name, err, out)
			}
		})
	}
}

// TestAuditCrashSafety runs the broker as a process of its own, with a
// small rotation size, makes decisions from several callers at once, and
// kills it with SIGKILL in the middle: mfa-broker audit verify (the real
// process) passes up to the last complete line, every decision a caller
// was answered is in the trail, and the broker started again continues
// the chain.
func TestAuditCrashSafety(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr := freeAddr(t)
	bp := &brokerProcess{
		args: []string{"--data-dir", dataDir, "--domain", "crash.test", "--http-addr", httpAddr, "--nats-listen", freeAddr(t),
			"--log-format", "json", "--rate-identity", "0", "--rate-caller", "0", "--audit-rotate-size", "8192"},
		out: &syncbuf.Buffer{},
	}
	bp.testBroker = &testBroker{t: t, cfg: config{Config: service.Config{DataDir: dataDir}}, logs: bp.out, client: http.DefaultClient, httpURL: "http://" + httpAddr}
	bp.start()
	t.Cleanup(func() {
		bp.kill()
		if t.Failed() {
			t.Logf("broker log:\n%s", bp.out.String())
		}
	})
	const people = 8
	pnrs := make([]string, people)
	devices := make([]*notifytest.Device, people)
	for i := range pnrs {
		pnrs[i] = fmt.Sprintf("1980010%d-%04d", i, 1000+i)
		devices[i] = bp.person(pnrs[i], "SE", notifytest.Always([]notify.Decision{notify.Approve, notify.Deny}[i%2]))
	}

	// The burst: each caller asks its person again as soon as it has an
	// answer, until the broker is gone.
	var mu sync.Mutex
	var answered []string // request IDs of decisions a caller was told
	var wg sync.WaitGroup
	for i := range people {
		wg.Go(func() {
			for {
				id, code, err := postRaw(bp.url("/MFA"), mfaBody{PNR: pnrs[i], COUNTRY: "SE", Timeout: 30, Reason: "burst"})
				if err != nil {
					return
				}
				if code == "approved" || code == "denied" {
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
				}
			}
		})
	}
	auditDir := service.AuditDir(dataDir)
	poll.For(t, 30*time.Second, func() error {
		if files, _ := os.ReadDir(auditDir); len(files) < 4 {
			return fmt.Errorf("%d audit files", len(files))
		}
		return nil
	})
	bp.kill()
	wg.Wait()

	out, err := runVerifyProcess(dataDir)
	if err != nil || !strings.Contains(out, "the chain holds") {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
	recs := bp.auditEvents()
	inTrail := map[string]bool{}
	for _, r := range recs {
		inTrail[r.Request] = true
	}
	for _, id := range answered {
		if !inTrail[id] {
			t.Errorf("request %s was answered but is not in the trail", id)
		}
	}
	before := recs[len(recs)-1].Seq
	t.Logf("%d decisions answered, %d events in the trail when killed; %s", len(answered), len(recs), strings.TrimSpace(out))

	// Started again, the broker continues the chain.
	bp.start()
	again := bp.deviceFor(devices[0].LegalID, devices[0].Key, notifytest.Always(notify.Approve))
	again.Start()
	if o := bp.postMFA(context.Background(), "json", mfaBody{PNR: pnrs[0], COUNTRY: "SE", Timeout: 30, Reason: "after"}, ""); o.code != "approved" {
		t.Fatalf("after the restart: %s (%s)", o.code, o.message)
	}
	if err := bp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bp.cmd.Wait()
	bp.cmd = nil
	out, err = runVerifyProcess(dataDir)
	if err != nil || !strings.Contains(out, "the chain holds") || strings.Contains(out, "cut short") {
		t.Fatalf("audit verify after a restart: %v\n%s", err, out)
	}
	if recs := bp.auditEvents(); recs[len(recs)-1].Seq <= before || recs[len(recs)-1].Code != "approved" {
		t.Fatalf("after the restart the trail ends with %+v, event %d was the last before", recs[len(recs)-1], before)
	}
}

// runVerifyProcess runs mfa-broker audit verify as a process of its own.
func runVerifyProcess(dataDir string) (string, error) {
	cmd := exec.Command(os.Args[0], "audit", "verify", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// postRaw sends an MFA request and reads the outcome code, without
// failing the test: the broker may be killed under it.
func postRaw(url string, m mfaBody) (requestID, code string, err error) {
	ct, body := m.encode("json")
	resp, err := http.Post(url, ct, strings.NewReader(body))
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var r api.Response
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", "", err
	}
	return r.RequestID, string(r.Code), nil
}

// TestAuditUnanswered: requests that reached a device but no decision are
// recorded too: a timeout, and a caller that went away first.
func TestAuditUnanswered(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	silent := tb.person("19890909-0909", "SE", nil)
	timedOut := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19890909-0909", COUNTRY: "SE", Timeout: 1, Reason: "t"}, "")
	if timedOut.code != "timeout" {
		t.Fatalf("%s, want timeout", timedOut.code)
	}
	silent.NextPrompt()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ct, body := mfaBody{PNR: "19890909-0909", COUNTRY: "SE", Timeout: 30, Reason: "gone"}.encode("json")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tb.url("/MFA"), strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	gone := silent.NextPrompt()
	cancel()
	<-done
	poll.Until(t, "the caller gone in the trail", func() bool {
		for _, r := range tb.auditEvents() {
			if r.Request == gone.Push.RequestID {
				return r.Kind == audit.KindMFA && r.Code == "caller-gone" && r.Decision == "" && r.Device == ""
			}
		}
		return false
	})
	ev := findEvent(t, tb.auditEvents(), "timeout", func(e audit.Event) bool { return e.Request == timedOut.requestID })
	if ev.Kind != audit.KindMFA || ev.Code != "timeout" || ev.Device != "" || ev.Person == "" {
		t.Fatalf("timeout: %+v", ev)
	}
}

// TestAuditStartupFailure: a trail the broker cannot continue (its last
// lines are not events: more than a crash leaves) stops the start with
// one line that says what to run.
func TestAuditStartupFailure(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(service.AuditDir(dataDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(service.AuditDir(dataDir), audit.CurrentFile), []byte("not an event\nnor this\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-level", "warn"},
		&bytes.Buffer{}, &stderr, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "audit verify") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start on a damaged trail: %v, want one line naming audit verify", err)
	}
	if stderr.Len() > 0 {
		t.Errorf("logged before failing:\n%s", stderr.String())
	}
}
