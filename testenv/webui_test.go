package testenv

import (
	"context"
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

	"github.com/chromedp/chromedp"

	"github.com/hanode/hanode/internal/browsertest"
)

// TestLabWebUI signs in to the web cluster manager of every controller of a supervised lab (one
// agent per machine runs its roles) with the lab's credential, sees the same master and every
// machine on each, stops and starts a role with the machine page's buttons in chromium (through the agent),
// and sees a machine whose processes are all killed turn down on the other controllers within
// its registrations' lease (leader-ttl 2s here).
func TestLabWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab")
	}
	l, err := Up(context.Background(), Spec{Machines: 3, Dir: t.TempDir(), Binary: binary, AddressPrefix: "127.0.63",
		ExtraArgs: []string{"--leader-ttl=2s"}, ReadyTimeout: 60 * time.Second, Supervised: true}, nil)
	drv, _ := NewDriver("process")
	if l != nil {
		t.Cleanup(func() { _ = l.Down(drv, true) })
	}
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
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
	sessions := map[string]*http.Cookie{}
	fetch := func(base, path string) string {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.AddCookie(sessions[base])
		resp, err := hc.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s%s: %d %s", base, path, resp.StatusCode, b)
		}
		return string(b)
	}
	overview := func(base string) string { return fetch(base, "/ui/live/overview") }
	master := regexp.MustCompile(`id="master-name"><a href="/machines/[^"]+">([^<]+)</a>`)
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
		waitFor(t, base+" showing every machine up", 15*time.Second, func() bool {
			page := overview(base)
			return strings.Contains(page, `data-machine="m1" data-state="up"`) && strings.Contains(page, `data-machine="m2" data-state="up"`) &&
				strings.Contains(page, `data-machine="m3" data-state="up"`)
		})
		m := master.FindStringSubmatch(overview(base))
		if m == nil {
			t.Fatalf("%s names no master", base)
		}
		if leader == "" {
			leader = m[1]
		} else if m[1] != leader {
			t.Errorf("%s names master %s, another controller %s", base, m[1], leader)
		}
	}

	// The machine page's buttons, pressed in a real browser (Debian's chromium): sign in on the
	// first controller, stop m3's datanode, then start it.
	base := l.Endpoints.Controllers[0]
	bctx := browsertest.Start(t, 2*time.Minute)
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="credential"]`), l.credential),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("master-name")),
	); err != nil {
		t.Fatalf("browser sign-in on %s: %v", base, err)
	}
	press := func(action string) {
		t.Helper()
		if err := chromedp.Do(bctx,
			chromedp.Navigate(base+"/machines/m3"),
			chromedp.WaitVisible(chromedp.ID(action+"-datanode")),
			chromedp.Click(chromedp.ID(action+"-datanode")),
			chromedp.WaitVisible(chromedp.ID("done")),
		); err != nil {
			t.Fatalf("the %s button of m3's datanode: %v", action, err)
		}
	}
	press("stop")
	for _, b := range l.Endpoints.Controllers {
		waitFor(t, b+" showing m3's datanode stopped", 15*time.Second, func() bool {
			page := overview(b)
			return strings.Contains(page, `<span class="st-stopped">datanode stopped`) && strings.Contains(page, `data-machine="m3" data-state="up"`)
		})
	}
	press("start")
	for _, b := range l.Endpoints.Controllers {
		waitFor(t, b+" showing m3's datanode running again", 15*time.Second, func() bool {
			page := overview(b)
			return !strings.Contains(page, `datanode stopped`) && strings.Contains(page, `data-machine="m3" data-state="up"`)
		})
	}

	// hanode node drain and undrain, as a user of the lab types them: the overview follows.
	for _, step := range []struct {
		cmd  string
		want bool
	}{{"drain", true}, {"undrain", false}} {
		if out, _, err := envCmd(l, binary, "node", step.cmd, "m2"); err != nil {
			t.Fatalf("hanode node %s m2: %v\n%s", step.cmd, err, out)
		}
		waitFor(t, "the overview after hanode node "+step.cmd, 10*time.Second, func() bool {
			page := overview(base)
			i := strings.Index(page, `data-machine="m2"`)
			if i < 0 {
				return false
			}
			row := page[i:min(len(page), i+600)]
			return strings.Contains(row, `tag warn">draining`) == step.want
		})
	}

	// Every process of m3 killed, its agent included: the other controllers show it down.
	if err := l.Signal(drv, "m3", "KILL"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, b := range l.Endpoints.Controllers[:2] {
		waitFor(t, b+" showing m3 down", 10*time.Second, func() bool {
			return strings.Contains(overview(b), `data-machine="m3" data-state="down"`)
		})
		t.Logf("%s shows m3 down %s after the kill", b, time.Since(killed).Round(100*time.Millisecond))
	}
	if d := time.Since(killed); d > 6*time.Second {
		t.Errorf("the killed machine was shown down after %s; its leases are 2s", d)
	}
}
