package balancer

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds the wait for a PROXY header, so a peer that
// connects and sends nothing cannot hold header detection open.
const proxyHeaderTimeout = 5 * time.Second

// Listen wraps ln so that PROXY protocol v1/v2 headers are honoured from
// trusted peers only (the load balancers in front of the proxy; use the same
// prefixes as Config.TrustedProxies):
//
//   - trusted peer: USE — the header is optional (health checks of the load
//     balancer may connect directly); when present, the connection's
//     RemoteAddr becomes the client address it carries.
//   - any other peer: REJECT — a PROXY header is a spoofing attempt or a
//     misconfiguration, and the connection fails on its first read instead
//     of being served with a forged address; plain connections are served.
//
// With no trusted prefixes ln is returned unchanged: nobody may send a
// header, and one that arrives is just bytes the TLS or HTTP layer rejects.
// The header comes before TLS, so wrap TLS around the result, not inside it.
// The header is read lazily on the connection's goroutine (net/http asks for
// RemoteAddr there), never in Accept, so a slow peer does not stall others.
func Listen(ln net.Listener, trusted []netip.Prefix) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	pfx := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		pfx[i] = p.Masked()
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: proxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			a, err := addrOf(o.Upstream)
			if err != nil {
				// Wrapping ErrInvalidUpstream drops just this connection.
				return proxyproto.REJECT, fmt.Errorf("%w: %w", proxyproto.ErrInvalidUpstream, err)
			}
			for _, p := range pfx {
				if p.Contains(a) {
					return proxyproto.USE, nil
				}
			}
			return proxyproto.REJECT, nil
		},
	}
}

func addrOf(a net.Addr) (netip.Addr, error) {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap(), nil
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q: %w", a, err)
	}
	return ap.Addr().Unmap(), nil
}
