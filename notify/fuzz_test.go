package notify

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
)

// FuzzDeviceInput feeds arbitrary bytes to everything that decodes what a
// device or a NATS subject can carry: the broker's answer, receipt and sync
// handlers,
// and the device's push handler. Nothing may panic, no answer without the
// device's key may win the pending request, no sync may end it, and no
// unsigned push or unmatched withdrawal may reach the person.
func FuzzDeviceInput(f *testing.F) {
	key, err := identity.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	// A bare server: what is fuzzed are the handlers, which the server's
	// authorization (package bus) only ever narrows.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		f.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		f.Fatal("NATS server did not start")
	}
	f.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL(), nats.NoEcho())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(nc.Close)
	quiet := slog.New(slog.DiscardHandler)
	p, err := NewPusher(context.Background(), nc, key, "broker.test", WithLogger(quiet))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close(context.Background()) })

	deviceKey, err := identity.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	devicePub := deviceKey.Public().(ed25519.PublicKey)
	dev := identity.DeviceIDOf(devicePub)
	const legalID = "fuzz@legal.broker.test"
	req, err := p.open(Question{
		RequestID: NewRequestID(),
		Targets:   []Target{{LegalID: legalID, PublicKey: devicePub}},
		Reason:    "Log in",
		Expires:   time.Now().Add(time.Hour),
	})
	if err != nil {
		f.Fatal(err)
	}
	// Before the pusher's Close, which waits for every request to end.
	f.Cleanup(func() { p.finish(req, WhyShutdown) })
	d, err := NewDevice(nc, DeviceConfig{LegalID: legalID, Key: deviceKey, BrokerKey: p.PublicKey(), Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}

	push := req.devices[dev]
	answer := Answer{Version: ProtocolVersion, RequestID: req.id, LegalID: legalID, Decision: Approve}
	forged := answer
	forged.Signature = ed25519.Sign(key, AnswerForm(push.push, push.pushBytes, Approve, "")) // the broker's key, not the device's
	f.Add(marshal(forged), kindPush, "")
	f.Add(marshal(answer), kindWithdraw, "")
	f.Add(marshal(syncRequest{Held: []heldPrompt{{RequestID: req.id, Broker: p.instance}, {RequestID: "ended", Broker: p.instance}}}), kindPush, encodeSignature(ed25519.Sign(deviceKey, push.pushBytes)))
	f.Add(marshal(Withdrawal{Version: ProtocolVersion, RequestID: req.id, Why: WhyAnswered, Token: "00"}), kindWithdraw, "")
	// The genuine push with a signature by another key. The broker's own
	// signature is never in the corpus: with it, the push would be genuine.
	f.Add(push.pushBytes, kindPush, encodeSignature(ed25519.Sign(deviceKey, messageForm(kindPush, push.pushBytes))))
	f.Add([]byte(`{"Held":[{"RequestId":null}]}`), "", "%%%")
	f.Add(marshal(receipt{RequestID: req.id, Stage: StageShown}), kindReceipt, "")
	f.Add(marshal(answer), kindReceipt, "")

	f.Fuzz(func(t *testing.T, data []byte, kind, signature string) {
		p.handleAnswer(&nats.Msg{Subject: AnswerSubject(dev, p.instance), Data: data})
		// The same bytes as a receipt, or as whatever kind the input names.
		asKind := nats.NewMsg(AnswerSubject(dev, p.instance))
		asKind.Data = data
		asKind.Header.Set(headerKind, kind)
		p.handleAnswer(asKind)
		p.handleSync(&nats.Msg{Subject: SyncSubject(dev), Data: data})
		p.mu.Lock()
		won, stillPending := req.decided(), p.pending[req.id] == req
		p.mu.Unlock()
		if won || !stillPending {
			t.Fatalf("input %q ended the pending request (answered %v, pending %v)", data, won, stillPending)
		}

		m := nats.NewMsg(PushSubject(dev))
		m.Data = data
		m.Header.Set(headerKind, kind)
		m.Header.Set(headerSignature, signature)
		d.handlePush(m)
		select {
		case e := <-d.Events():
			t.Fatalf("input %q (kind %q) reached the person: prompt %v, withdrawal %+v", data, kind, e.Prompt != nil, e.Withdrawal)
		default:
		}
	})
}
