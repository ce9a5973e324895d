package notify

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/legalmfa/mfa/identity"
)

// DeviceConnectOptions authenticate a device's connection with its
// identity key (NATS nkeys are Ed25519, like identity keys), and give it
// the inbox its permissions allow (package bus decides them). The
// handshake waits for the broker's authorization callout (a store lookup),
// so it is given longer than nats.go's default 2 s: a busy broker is not a
// refusal.
func DeviceConnectOptions(key ed25519.PrivateKey) ([]nats.Option, error) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, key.Seed())
	if err != nil {
		return nil, fmt.Errorf("device NATS key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("device NATS key: %w", err)
	}
	dev := identity.DeviceIDOf(key.Public().(ed25519.PublicKey))
	return []nats.Option{
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(DeviceInbox(dev)),
		nats.Timeout(deviceConnectTimeout),
	}, nil
}

// deviceConnectTimeout bounds a device's connection handshake.
const deviceConnectTimeout = 10 * time.Second

// DeviceInbox is the prefix of a device's reply subjects.
func DeviceInbox(dev string) string { return "_INBOX." + dev }

// DeviceAnswerSubjects is the wildcard of every answer subject of a device,
// whichever broker process it answers.
func DeviceAnswerSubjects(dev string) string { return answerPrefix + dev + ".>" }
