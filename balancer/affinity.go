package balancer

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxAffinityValue bounds the affinity header value used as a key; longer
// values are ignored rather than hashed, as no sane session id is that long.
const maxAffinityValue = 1024

// clientInfo fills st.client, st.trustedPeer and st.secure from the request.
//
// The client address is the TCP peer (which Listen has already replaced by
// the PROXY protocol source when the peer is trusted) unless the peer is a
// trusted proxy, in which case it is the right-most X-Forwarded-For hop that
// is not itself trusted: hops to the left of it were written by the client
// and could be anything.
func (p *Proxy) clientInfo(r *http.Request, st *reqState) {
	st.secure = r.TLS != nil
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return // not IP (tests, unix sockets): keyed by the raw address
	}
	peer := ap.Addr().Unmap().WithZone("")
	st.client = peer
	if !p.trusted(peer) {
		return
	}
	st.trustedPeer = true
	if xfp := r.Header.Get("X-Forwarded-Proto"); xfp != "" {
		st.secure = strings.EqualFold(xfp, "https")
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		if a, ok := p.clientFromXFF(xff); ok {
			st.client = a
		}
	}
}

func (p *Proxy) trusted(a netip.Addr) bool {
	for _, pf := range p.cfg.TrustedProxies {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// clientFromXFF walks the X-Forwarded-For hops right to left and returns the
// first untrusted one; if every hop is trusted, the left-most. An
// unparseable hop stops the walk at the last good one, since whoever wrote
// it cannot be vouched for.
func (p *Proxy) clientFromXFF(values []string) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return last, last.IsValid()
			}
			last = a
			if !p.trusted(a) {
				return a, true
			}
		}
	}
	return last, last.IsValid()
}

// parseHop accepts "ip", "ip:port" and "[ipv6]:port" (some proxies append
// the port).
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// affinityKey is the session key of a request without a valid pin: the
// affinity header when configured and present, else the whole client
// address (IPv6 included; unlike nginx ip_hash, not its /24).
func (p *Proxy) affinityKey(r *http.Request, st *reqState) string {
	if h := p.cfg.AffinityHeader; h != "" {
		if v := r.Header.Get(h); v != "" && len(v) <= maxAffinityValue {
			return "h:" + v
		}
	}
	if st.client.IsValid() {
		return "ip:" + st.client.String()
	}
	return "addr:" + r.RemoteAddr
}
