package config

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestProxyKeys(t *testing.T) {
	bad := []struct {
		name, file, key string
	}{
		{"upstream without id", "proxy-upstreams: [https://a:9000]\n", "proxy-upstreams"},
		{"upstream with path", "proxy-upstreams: [a=https://a:9000/x]\n", "proxy-upstreams"},
		{"upstream ftp", "proxy-upstreams: [a=ftp://a:21]\n", "proxy-upstreams"},
		{"upstream twice", "proxy-upstreams: [a=http://a:1, a=http://b:1]\n", "proxy-upstreams"},
		{"bad trusted", "proxy-trusted: [10.0.0.0/33]\n", "proxy-trusted"},
		{"bad name", "proxy-names: [Upper.Example]\n", "proxy-names"},
		{"name twice", "proxy-names: [a.test, a.test]\n", "proxy-names"},
		{"cert without key", "proxy-cert-file: /c.pem\n", "proxy-cert-file"},
		{"acme over http", "proxy-acme-directory: http://acme.test/dir\nproxy-names: [a.test]\n", "proxy-acme-directory"},
		{"acme without names", "proxy-acme-directory: https://acme.test/dir\n", "proxy-names"},
		{"acme and files", "proxy-acme-directory: https://acme.test/dir\nproxy-names: [a.test]\nproxy-cert-file: /c\nproxy-key-file: /k\n", "proxy-acme-directory"},
		{"bad email", "proxy-acme-email: nobody\n", "proxy-acme-email"},
		{"reserved header", "proxy-affinity-header: Hanode-Affinity\n", "proxy-affinity-header"},
		{"bad header", "proxy-affinity-header: x y\n", "proxy-affinity-header"},
		{"fall zero", "proxy-health-fall: 0\n", "proxy-health-fall"},
		{"interval tiny", "proxy-health-interval: 1ms\n", "proxy-health-interval"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(Sources{File: writeFile(t, tt.file)})
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != tt.key {
				t.Fatalf("error %v, want one for %s", err, tt.key)
			}
		})
	}

	c, _, err := Load(Sources{File: writeFile(t, "name: edge\naddress: 10.1.2.3\nrole: proxy\n"+
		"proxy-upstreams: [a=http://10.0.0.1:8000, b=https://b.test:9000/]\nproxy-cert-file: /c.pem\nproxy-key-file: /k.pem\n"+
		"proxy-trusted: [10.0.0.0/8, '::ffff:192.168.1.1']\nproxy-affinity-header: X-Session-Id\n")})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := ParseProxyUpstreams(c.ProxyUpstreams)
	if err != nil || len(ups) != 2 || ups[1].ID != "b" || ups[1].URL.String() != "https://b.test:9000" {
		t.Fatalf("upstreams %+v, %v", ups, err)
	}
	tr, err := ParseProxyTrusted(c.ProxyTrusted)
	if err != nil || !slices.Equal(tr, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32")}) {
		t.Fatalf("trusted %v, %v", tr, err)
	}
	if !c.ProxyStandalone() {
		t.Error("proxy with fixed upstreams and certificate files is not standalone")
	}
	if got := c.ProxyCertNames(); !slices.Equal(got, []string{"10.1.2.3", "edge"}) {
		t.Errorf("default names %v", got)
	}
	c.Role = []string{RoleAll}
	if c.ProxyStandalone() {
		t.Error("a proxy beside other roles is standalone")
	}
}
