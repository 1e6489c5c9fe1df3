package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ProxyUpstream is one entry of proxy-upstreams.
type ProxyUpstream struct {
	ID  string
	URL *url.URL
}

var (
	upstreamIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	// A DNS name for a certificate: letters, digits and '-' in dot-separated labels, optionally
	// a leading "*." wildcard label.
	dnsNameRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// An HTTP header name (an RFC 9110 token).
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// ParseProxyUpstreams parses proxy-upstreams entries, id=URL with an http or https URL that has
// no path: requests are forwarded with their path unchanged, since SigV4 signs it.
func ParseProxyUpstreams(entries []string) ([]ProxyUpstream, error) {
	var out []ProxyUpstream
	seen := map[string]bool{}
	for _, e := range entries {
		id, raw, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || !upstreamIDRE.MatchString(id) {
			return nil, keyErr("proxy-upstreams", e, "id=http(s)://host:port entries, comma-separated; ids of letters, digits, '.', '_' and '-'")
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.User != nil {
			return nil, keyErr("proxy-upstreams", e, "id=http(s)://host:port entries: a URL without path, query or user")
		}
		if seen[id] {
			return nil, keyErr("proxy-upstreams", e, "each upstream id once")
		}
		seen[id] = true
		u.Path = ""
		out = append(out, ProxyUpstream{ID: id, URL: u})
	}
	return out, nil
}

// ParseProxyTrusted parses proxy-trusted: CIDRs or single addresses.
func ParseProxyTrusted(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, keyErr("proxy-trusted", e, "CIDRs (10.0.0.0/8) or addresses, comma-separated")
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ValidCertName reports whether s may be a certificate name: an IP address or a lower-case DNS
// name (a leading "*." wildcard allowed).
func ValidCertName(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	return len(s) <= 253 && dnsNameRE.MatchString(s)
}

// ProxyCertNames are the names the proxy gets certificates for: proxy-names, or else this
// machine's address and name.
func (c *Config) ProxyCertNames() []string {
	if len(c.ProxyNames) > 0 {
		return slices.Clone(c.ProxyNames)
	}
	names := []string{strings.ToLower(c.Address)}
	if n := strings.ToLower(c.Name); n != names[0] {
		names = append(names, n)
	}
	return names
}

// ProxyStandalone reports whether the proxy runs without the cluster: it is the only role, its
// upstreams are fixed and its certificate comes from files, so it needs nothing from etcd (each
// such proxy signs its own pins and session tickets).
func (c *Config) ProxyStandalone() bool {
	r := c.Roles()
	return len(r) == 1 && r[0] == RoleProxy && len(c.ProxyUpstreams) > 0 && c.ProxyCertFile != ""
}

func (c *Config) checkProxy() error {
	if _, err := ParseProxyUpstreams(c.ProxyUpstreams); err != nil {
		return err
	}
	if _, err := ParseProxyTrusted(c.ProxyTrusted); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range c.ProxyNames {
		if !ValidCertName(n) {
			return keyErr("proxy-names", n, "lower-case DNS names (*.example.com allowed) or IP addresses, comma-separated")
		}
		if seen[n] {
			return keyErr("proxy-names", n, "each name once")
		}
		seen[n] = true
	}
	if (c.ProxyCertFile == "") != (c.ProxyKeyFile == "") {
		return keyErr("proxy-cert-file", c.ProxyCertFile, "set together with proxy-key-file, or neither")
	}
	if d := c.ProxyACMEDirectory; d != "" {
		u, err := url.Parse(d)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			return keyErr("proxy-acme-directory", d, "an https:// ACME directory URL")
		}
		if c.ProxyCertFile != "" {
			return keyErr("proxy-acme-directory", d, "empty when proxy-cert-file is set: certificates come from one source")
		}
		if len(c.ProxyNames) == 0 {
			return keyErr("proxy-names", "", "the public DNS names to get ACME certificates for (required with proxy-acme-directory)")
		}
	}
	if e := c.ProxyACMEEmail; e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " ,")) {
		return keyErr("proxy-acme-email", e, "an e-mail address")
	}
	if h := c.ProxyAffinityHeader; h != "" {
		switch canon := strings.ToLower(h); {
		case !headerNameRE.MatchString(h):
			return keyErr("proxy-affinity-header", h, "an HTTP header name")
		case canon == "cookie" || canon == "hanode-affinity":
			return keyErr("proxy-affinity-header", h, "a header other than Cookie and Hanode-Affinity (the proxy's own pin)")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"proxy-health-interval", c.ProxyHealthInterval}, {"proxy-health-timeout", c.ProxyHealthTimeout}} {
		if d.v < 10*time.Millisecond {
			return keyErr(d.key, d.v.String(), "a duration of at least 10ms")
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"proxy-health-fall", c.ProxyHealthFall}, {"proxy-health-rise", c.ProxyHealthRise}} {
		if n.v < 1 || n.v > 100 {
			return keyErr(n.key, fmt.Sprint(n.v), "1 to 100")
		}
	}
	return nil
}
