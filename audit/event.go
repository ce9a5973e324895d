// Package audit keeps the broker's audit trail: every decision that changes
// what a person or a relying party can do, one JSON line each, in an
// append-only file in the data directory. Each line carries the SHA-256
// hash of the line before it, so that an edited or deleted line breaks the
// chain that Verify checks; files are rotated by size and the chain runs on
// across them.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Kind names what an event records.
type Kind string

// The kinds of events.
const (
	// KindMFA: an MFA request (or an order) that was pushed to the
	// person's devices ended, with Code.
	KindMFA Kind = "mfa"
	// KindPeerMFA: a request this broker asked its own person on behalf
	// of a federated peer (Peer) ended, with Code.
	KindPeerMFA Kind = "peer-mfa"
	// KindNotMe: the person answered "not me"; Block is the block it
	// caused, until Until (empty when none was recorded).
	KindNotMe Kind = "not-me"
	// KindIdentity: an operator moved an identity From one state To
	// another (Action is approve, reject, obsolete or compromise).
	KindIdentity Kind = "identity"
	// KindPeer: an operator's decision about a peer broker (Action is
	// add, approve, withdraw, share, unshare or remove).
	KindPeer Kind = "peer"
	// KindUnblock: an operator lifted Block.
	KindUnblock Kind = "unblock"
	// KindRecovered: the writer found the last line cut short by a crash
	// and dropped its Dropped bytes before going on.
	KindRecovered Kind = "audit-recovered"
)

// Event is one decision. Only the fields that apply to its Kind are set.
// No field ever holds a personal number: a person is named by the keyed
// hash the broker's logs use.
type Event struct {
	Kind Kind `json:"kind"`
	// Request is the MFA request's ID; Order is set when it was an order.
	Request string `json:"request,omitempty"`
	Order   bool   `json:"order,omitempty"`
	// Person is the keyed hash of the person's COUNTRY and PNR.
	Person string `json:"person,omitempty"`
	// Requester is the LegalId that signed the request; Remote is the
	// caller's address (at the peer, for a peer's request).
	Requester string `json:"requester,omitempty"`
	Remote    string `json:"remote,omitempty"`
	// Code is the outcome code the caller was answered; Decision is what
	// the person's device signed, when one answered, and Device the
	// LegalId it answered as.
	Code     string `json:"code,omitempty"`
	Decision string `json:"decision,omitempty"`
	Device   string `json:"device,omitempty"`
	// Peer is the ID of a federated broker: the one whose identity
	// answered (mfa), that asked (peer-mfa), or that the operator decided
	// on (peer); Domain is its domain.
	Peer   string `json:"peer,omitempty"`
	Domain string `json:"domain,omitempty"`
	// Identity, Action, From and To are an operator's decision.
	Identity string `json:"identity,omitempty"`
	Action   string `json:"action,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	// Block is a blocklist key (keyed hashes of caller and person), in
	// force until Until.
	Block string    `json:"block,omitempty"`
	Until time.Time `json:"until,omitzero"`
	// Dropped is the number of bytes of a torn last line dropped.
	Dropped int64 `json:"dropped,omitempty"`
}

// Record is an event as a line of the trail: its place in the chain, when
// it was written, and the hash of the line before it ("" for the first).
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Prev string    `json:"prev"`
	Event
}

// Hash is the hash the next line's Prev holds: SHA-256 of the line's
// bytes, without its newline.
func Hash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}
