package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLabWebUI signs in to the web cluster manager of every lab controller with the lab's
// credential, sees the same master and every machine on each, and sees a killed datanode turn
// down on each within the registration lease (leader-ttl 2s here).
func TestLabWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab")
	}
	l, drv := startLab(t, "127.0.63", 3, "--leader-ttl=2s")
	healthy(t, l)
	pem, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	// A browser's view: the CA trusted, no client certificate, cookies by hand.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	overview := func(base string, ck *http.Cookie) string {
		req, _ := http.NewRequest(http.MethodGet, base+"/ui/live/overview", nil)
		req.AddCookie(ck)
		resp, err := hc.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s overview: %d %s", base, resp.StatusCode, b)
		}
		return string(b)
	}
	master := regexp.MustCompile(`id="master-name"><a href="/machines/[^"]+">([^<]+)</a>`)
	sessions := map[string]*http.Cookie{}
	var leader string
	for _, base := range l.Endpoints.Controllers {
		resp, err := hc.PostForm(base+"/signin", url.Values{"credential": {l.credential}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "__Host-hanode-session" {
				sessions[base] = ck
			}
		}
		if resp.StatusCode != http.StatusSeeOther || sessions[base] == nil {
			t.Fatalf("%s sign-in: %d, cookie %v", base, resp.StatusCode, sessions[base])
		}
		page := overview(base, sessions[base])
		m := master.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("%s names no master", base)
		}
		if leader == "" {
			leader = m[1]
		} else if m[1] != leader {
			t.Errorf("%s names master %s, another controller %s", base, m[1], leader)
		}
		for _, name := range []string{"m1", "m2", "m3"} {
			if !strings.Contains(page, `data-machine="`+name+`" data-state="up"`) {
				t.Errorf("%s: machine %s not shown up", base, name)
			}
		}
	}
	if err := l.Signal(drv, "m3/datanode", "KILL"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, base := range l.Endpoints.Controllers {
		waitFor(t, base+" showing m3's datanode down", 10*time.Second, func() bool {
			page := overview(base, sessions[base])
			return strings.Contains(page, `data-machine="m3" data-state="degraded"`) && strings.Contains(page, `<span class="st-down">datanode down`)
		})
		t.Logf("%s shows m3/datanode down %s after the kill", base, time.Since(killed).Round(100*time.Millisecond))
	}
	if d := time.Since(killed); d > 6*time.Second {
		t.Errorf("the killed datanode was shown down after %s; its lease is 2s", d)
	}
}
