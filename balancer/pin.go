package balancer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A pin tells any proxy sharing the pin keys which upstream a session is on:
//
//	base64url(node) "." sid "." issued "." base64url(mac)
//
// sid is the session id (see sidFor), issued the placement time in unix
// seconds (base 36; the newer of a pin and a table entry wins) and mac the
// first 16 bytes of HMAC-SHA256 over the rest under a pin key. The MAC is
// what stops clients from choosing their coordinator and thereby defeating
// the load bound.

const (
	pinMACLen   = 16
	maxPinLen   = 512
	pinMACLabel = "hanode-pin-v1\x00" // domain separation from other HMAC uses of the key
	minPinKey   = 16
	// pinFuture is how far in the future a pin's issue time may be (clocks of proxies differ).
	pinFuture = 5 * 60
)

// pinKeys is an immutable key set; macs pools HMAC states per key since
// hmac.New costs two hash initialisations and a key schedule.
type pinKeys struct {
	keys [][]byte // keys[0] signs; all verify
	macs []*sync.Pool
}

type pinInfo struct {
	node   string
	sid    string
	issued int64
	raw    string
	stale  bool // verified by a non-current key: re-issue under the current one
}

// SetPinKeys sets the key that signs new pins and the keys that are still
// accepted, for rotation: deploy the new key as accepted everywhere, then
// make it current everywhere, then drop the old one. Every proxy that shares
// the keys honours every other proxy's pins. Keys must be at least 16 bytes.
func (p *Proxy) SetPinKeys(current []byte, accepted ...[]byte) error {
	all := append([][]byte{current}, accepted...)
	ks := &pinKeys{}
	for _, k := range all {
		if len(k) < minPinKey {
			return errors.New("proxy: pin keys must be at least 16 bytes")
		}
		key := append([]byte(nil), k...)
		ks.keys = append(ks.keys, key)
		ks.macs = append(ks.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	p.pins.Store(ks)
	return nil
}

func (ks *pinKeys) mac(i int, payload string, dst []byte) []byte {
	h := ks.macs[i].Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(pinMACLabel))
	h.Write([]byte(payload))
	dst = h.Sum(dst)
	ks.macs[i].Put(h)
	return dst
}

// signPin returns the pin for sid on node.
func (p *Proxy) signPin(node, sid string, issued int64) string {
	ks := p.pins.Load()
	var b strings.Builder
	b.Grow(len(node)*4/3 + len(sid) + 8 + 24)
	b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(node)))
	b.WriteByte('.')
	b.WriteString(sid)
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(issued, 36))
	payload := b.String()
	var buf [sha256.Size]byte
	m := ks.mac(0, payload, buf[:0])
	return payload + "." + base64.RawURLEncoding.EncodeToString(m[:pinMACLen])
}

// pinMemo is the last pin issued, with its cookie, as header values (one element each, shared
// read-only by the responses that carry them). A client without a cookie jar is issued a pin
// on every response, and signPin gives the same string for the same node, session, second and
// key, so the next response of the session within the second reuses it instead of an HMAC and
// ten allocations.
type pinMemo struct {
	ks        *pinKeys
	node, sid string
	issued    int64
	secure    bool
	pin       []string
	cookie    []string
}

// pinFor returns the pin (and cookie) of sid on node issued now.
func (p *Proxy) pinFor(node, sid string, secure bool) *pinMemo {
	ks, now := p.pins.Load(), p.now().Unix()
	if m := p.lastPin.Load(); m != nil && m.ks == ks && m.issued == now && m.secure == secure && m.node == node && m.sid == sid {
		return m
	}
	v := p.signPin(node, sid, now)
	m := &pinMemo{ks: ks, node: node, sid: sid, issued: now, secure: secure,
		pin: []string{v}, cookie: []string{pinCookie(v, secure)}}
	p.lastPin.Store(m)
	return m
}

// verifyPin parses and authenticates a pin; nil means invalid or expired (older than
// PinTTL), which callers treat exactly like no pin. A pin past half its lifetime is stale:
// re-issued.
func (p *Proxy) verifyPin(v string) *pinInfo {
	if v == "" || len(v) > maxPinLen {
		return nil
	}
	dot := strings.LastIndexByte(v, '.')
	if dot < 0 {
		return nil
	}
	payload := v[:dot]
	var want [pinMACLen]byte
	enc := v[dot+1:]
	if len(enc) != base64.RawURLEncoding.EncodedLen(pinMACLen) {
		return nil
	}
	// Strict: one canonical encoding per MAC, so a pin cannot be varied.
	if n, err := base64.RawURLEncoding.Strict().Decode(want[:], []byte(enc)); err != nil || n != pinMACLen {
		return nil
	}
	ks := p.pins.Load()
	idx := -1
	var buf [sha256.Size]byte
	for i := range ks.keys {
		if hmac.Equal(ks.mac(i, payload, buf[:0])[:pinMACLen], want[:]) {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[1] == "" {
		return nil
	}
	node, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || len(node) == 0 {
		return nil
	}
	issued, err := strconv.ParseInt(parts[2], 36, 64)
	if err != nil {
		return nil
	}
	now, ttl := p.now().Unix(), int64(p.cfg.PinTTL/time.Second)
	if issued > now+pinFuture || now-issued > ttl {
		return nil
	}
	return &pinInfo{node: string(node), sid: parts[1], issued: issued, raw: v, stale: idx > 0 || now-issued > ttl/2}
}

// readPin returns the request's valid pin: the cookie first, then the
// header (clients without a cookie jar).
func (p *Proxy) readPin(r *http.Request) *pinInfo {
	if c, err := r.Cookie(PinCookie); err == nil {
		if pin := p.verifyPin(c.Value); pin != nil {
			return pin
		}
	}
	if v := r.Header.Get(PinHeader); v != "" {
		return p.verifyPin(v)
	}
	return nil
}

// sidFor derives the session id from an affinity key. It is a hash so that
// every proxy derives the same id (and HRW order) for the same client, and
// so that the pin does not carry the raw key.
func sidFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// pinCookie renders the Set-Cookie value for a pin.
func pinCookie(v string, secure bool) string {
	c := http.Cookie{
		Name:     PinCookie,
		Value:    v,
		Path:     "/",
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}
