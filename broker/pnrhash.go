package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// pnrHasher names a person in logs by a keyed hash of COUNTRY and PNR:
// stable for one broker's key, so lines about one person correlate, but
// useless to anyone without the key, who could otherwise hash every
// possible personal number.
type pnrHasher struct {
	pool sync.Pool
}

func newPNRHasher(key []byte) *pnrHasher {
	k := append([]byte(nil), key...)
	return &pnrHasher{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

func (p *pnrHasher) sum(country, pnr string) string {
	return p.of("person", country, pnr)
}

// of hashes any parts under the same key: the names of callers in block
// keys, and nonces, stay as unlinkable as people.
func (p *pnrHasher) of(kind string, parts ...string) string {
	h := p.pool.Get().(hash.Hash)
	defer p.pool.Put(h)
	h.Reset()
	if kind != "person" {
		// "person" hashes keep their original, documented form so that log
		// correlation survives; other kinds are separated by name.
		h.Write([]byte(kind))
		h.Write([]byte{0})
	}
	for i, part := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
